"""Data quality: feature logging, drift and consistency monitoring, freshness, validation."""
