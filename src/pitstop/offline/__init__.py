"""Offline retrieval: the point-in-time plan and the engines that execute it.

:mod:`.pit` holds the one plan every engine executes, :mod:`.base` the engine protocol,
:mod:`.job` the lazy result and :mod:`.duckdb` the default engine; :mod:`.assemble`,
:mod:`.sources`, :mod:`.entity` and :mod:`.typemap` hold the rules every engine shares and
:mod:`.files` the storage of engines that read files. Importing this package loads
nothing heavy: the names below load on first use, DuckDB and pandas when a query runs or a frame
is converted.

Example::

    from pitstop.offline import DuckDBEngine, PitPlan, SourceRef, ViewJoin

    source = SourceRef("/data/driver_stats.parquet", "parquet", "event_timestamp", "created")
    view = ViewJoin("driver_stats", source, ("driver_id",), ("driver_id",),
                    (("conv_rate", "conv_rate"),), ttl=timedelta(days=1))
    table = DuckDBEngine().historical(entity_table, PitPlan((view,))).to_arrow()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pitstop.offline.base import EngineCapabilities, EntityInput, OfflineEngine
    from pitstop.offline.duckdb import DuckDBEngine
    from pitstop.offline.job import BatchTransform, RetrievalJob
    from pitstop.offline.pit import (
        AggregateJoin,
        PitPlan,
        Rank,
        SourceRef,
        ViewJoin,
        WindowAggregate,
    )

__all__ = [
    "AggregateJoin",
    "BatchTransform",
    "DuckDBEngine",
    "EngineCapabilities",
    "EntityInput",
    "OfflineEngine",
    "PitPlan",
    "Rank",
    "RetrievalJob",
    "SourceRef",
    "ViewJoin",
    "WindowAggregate",
]

# Names load on first use, so importing a light submodule (``offline.pit``) stays light.
_HOMES = {
    "AggregateJoin": "pit",
    "BatchTransform": "job",
    "DuckDBEngine": "duckdb",
    "EngineCapabilities": "base",
    "EntityInput": "base",
    "OfflineEngine": "base",
    "PitPlan": "pit",
    "Rank": "pit",
    "RetrievalJob": "job",
    "SourceRef": "pit",
    "ViewJoin": "pit",
    "WindowAggregate": "pit",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pitstop.offline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pitstop.offline.{home}"), name)
