"""pitstop: a fast, correct feature store that runs Feast-style code unchanged.

>>> from pitstop import Entity, FeatureStore, FeatureView, Field, FileSource
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pitstop.definitions import (
    Aggregation,
    DataSource,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    KafkaSource,
    OnDemandFeatureView,
    Project,
    PushMode,
    PushSource,
    RequestSource,
    SparkSource,
    StreamFeatureView,
    on_demand_feature_view,
)
from pitstop.types import ValueType

if TYPE_CHECKING:
    from pitstop.config import RepoConfig
    from pitstop.feature_store import FeatureStore
    from pitstop.quality.expectations import (
        between,
        freshness,
        in_set,
        matches,
        max_null_rate,
        not_in_future,
        not_null,
        of_type,
        row_count,
        unique,
    )

__version__ = "0.1.0"

__all__ = [
    "Aggregation",
    "DataSource",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "FileSource",
    "KafkaSource",
    "OnDemandFeatureView",
    "Project",
    "PushMode",
    "PushSource",
    "RepoConfig",
    "RequestSource",
    "SparkSource",
    "StreamFeatureView",
    "ValueType",
    "__version__",
    "between",
    "freshness",
    "in_set",
    "matches",
    "max_null_rate",
    "not_in_future",
    "not_null",
    "of_type",
    "on_demand_feature_view",
    "row_count",
    "unique",
]

_EXPECTATIONS = ("between", "freshness", "in_set", "matches", "max_null_rate", "not_in_future",
                 "not_null", "of_type", "row_count", "unique")  # fmt: skip
_LAZY = {
    "FeatureStore": "pitstop.feature_store",
    "RepoConfig": "pitstop.config",
    **dict.fromkeys(_EXPECTATIONS, "pitstop.quality.expectations"),
}


def __getattr__(name: str) -> Any:
    """Import the store, the config and the expectations only when used, so ``import
    pitstop`` stays fast."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pitstop' has no attribute {name!r}")
