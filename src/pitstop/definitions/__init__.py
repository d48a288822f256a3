"""Feature definitions: pure, immutable, validated at construction, JSON-serialisable."""

from pitstop.definitions.access import Permission, Role
from pitstop.definitions.datasets import Model, SavedDataset, SavedDatasetFileStorage
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_logging import FileLoggingDestination, LoggingConfig
from pitstop.definitions.feature_view import FeatureView, Projection
from pitstop.definitions.field import Feature, Field
from pitstop.definitions.on_demand import OnDemandFeatureView, on_demand_feature_view
from pitstop.definitions.project import Project
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import (
    DataSource,
    FileSource,
    KafkaSource,
    PushMode,
    PushSource,
    RequestSource,
    SparkSource,
)
from pitstop.definitions.stream import Aggregation, StreamFeatureView

__all__ = [
    "Aggregation",
    "DataSource",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureView",
    "Field",
    "FileLoggingDestination",
    "FileSource",
    "KafkaSource",
    "LoggingConfig",
    "Model",
    "OnDemandFeatureView",
    "Permission",
    "Project",
    "Projection",
    "PushMode",
    "PushSource",
    "RequestSource",
    "Role",
    "SavedDataset",
    "SavedDatasetFileStorage",
    "SparkSource",
    "StreamFeatureView",
    "on_demand_feature_view",
]
