"""The Spark offline engine (``offline_store: {type: spark}``; needs ``pitstop[spark]``).

:mod:`.config` holds its settings (pydantic only), :mod:`.session` the process's one
SparkSession, :mod:`.reader` reads sources, :mod:`.sql` builds the point-in-time plans as
DataFrame operations, :mod:`.results` streams and writes results and :mod:`.engine` ties them
together. Nothing here imports pyspark until a session is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pitstop.offline.spark.config import SparkOfflineConfig
    from pitstop.offline.spark.engine import SparkEngine

__all__ = ["SparkEngine", "SparkOfflineConfig"]


def __getattr__(name: str) -> Any:
    if name == "SparkEngine":
        from pitstop.offline.spark.engine import SparkEngine

        return SparkEngine
    if name == "SparkOfflineConfig":
        from pitstop.offline.spark.config import SparkOfflineConfig

        return SparkOfflineConfig
    raise AttributeError(f"module 'pitstop.offline.spark' has no attribute {name!r}")
