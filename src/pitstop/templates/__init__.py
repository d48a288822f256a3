"""Feature repo templates used by ``pitstop init``."""
