"""The offline engine protocol: what the retrieval and materialization services ask of a backend.

An engine executes :class:`~pitstop.offline.pit.PitPlan` (historical retrieval), reads a view's
rows in a time range (entity-less retrieval) and the latest row per key in a range
(materialization). It declares what it can do in :class:`EngineCapabilities`; callers branch on
those flags, never on an engine's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.offline.aggregate import AggregateJoin
    from pitstop.offline.job import RetrievalJob
    from pitstop.offline.pit import PitPlan, ViewJoin

__all__ = ["EngineCapabilities", "EntityInput", "LatestRows", "OfflineEngine"]

#: An entity frame: a ``pyarrow.Table``, a pandas or polars ``DataFrame`` (anything speaking the
#: Arrow C stream interface works), or a SQL query string the engine runs itself.
EntityInput: TypeAlias = "pa.Table | str | Any"


class LatestRows(NamedTuple):
    """The latest row per key, streamed, and how many rows the stream holds (for progress)."""

    batches: pa.RecordBatchReader
    rows: int


@dataclass(frozen=True, kw_only=True)
class EngineCapabilities:
    """What an offline engine supports, as data the services can check.

    Attributes:
        entity_sql: accepts a SQL query string as the entity frame.
        streaming: results stream in record batches without being materialised whole.
        spills_to_disk: joins larger than memory spill to a temp directory instead of failing.
        file_formats: source file formats the engine reads.
        catalog_sources: reads tables and queries of its own catalog
            (:attr:`~pitstop.offline.pit.SourceRef.table`, ``query``), not only files.
    """

    entity_sql: bool = False
    streaming: bool = False
    spills_to_disk: bool = False
    file_formats: tuple[str, ...] = ("parquet",)
    catalog_sources: bool = False


@runtime_checkable
class OfflineEngine(Protocol):
    """A backend that executes point-in-time plans over offline sources."""

    capabilities: EngineCapabilities

    def historical(self, entity: EntityInput, plan: PitPlan) -> RetrievalJob:
        """Join every view of ``plan`` onto ``entity`` point-in-time correctly (lazily)."""
        ...

    def range(self, view: ViewJoin, start: datetime | None, end: datetime | None) -> RetrievalJob:
        """All rows of ``view`` with ``start <= event_ts <= end``: keys, timestamp, features."""
        ...

    def latest(
        self,
        view: ViewJoin,
        start: datetime | None,
        end: datetime | None,
        *,
        key_order: bool = False,
    ) -> LatestRows:
        """Per key, the latest row of ``view`` in ``[start, end]`` (ties: created ts), streamed,
        and the number of such rows; ``key_order``: sorted by the entity key columns."""
        ...

    def aggregate(self, entity: pa.Table, ts_column: str, join: AggregateJoin) -> pa.Table:
        """Windowed aggregations of ``join`` per entity row: ``t - window < event_ts <= t``."""
        ...

    def close(self) -> None:
        """Release connections and temporary files."""
        ...
