"""Offline retrieval: the point-in-time plan and the engines that execute it.

:mod:`.pit` holds the one plan every engine executes, :mod:`.base` the engine protocol,
:mod:`.job` the lazy result and :mod:`.duckdb` the default engine. Importing this package does
not import DuckDB or pandas; they load when a query runs or a frame is converted.

Example::

    from pitstop.offline import DuckDBEngine, PitPlan, SourceRef, ViewJoin

    source = SourceRef("/data/driver_stats.parquet", "parquet", "event_timestamp", "created")
    view = ViewJoin("driver_stats", source, ("driver_id",), ("driver_id",),
                    (("conv_rate", "conv_rate"),), ttl=timedelta(days=1))
    table = DuckDBEngine().historical(entity_table, PitPlan((view,))).to_arrow()
"""

from pitstop.offline.base import EngineCapabilities, EntityInput, OfflineEngine
from pitstop.offline.duckdb import DuckDBEngine
from pitstop.offline.job import BatchTransform, RetrievalJob
from pitstop.offline.pit import PitPlan, SourceRef, ViewJoin

__all__ = [
    "BatchTransform",
    "DuckDBEngine",
    "EngineCapabilities",
    "EntityInput",
    "OfflineEngine",
    "PitPlan",
    "RetrievalJob",
    "SourceRef",
    "ViewJoin",
]
