"""The offline engine protocol: what the retrieval, materialization and push services ask of a
backend.

Read side: an engine executes a :class:`~pitstop.offline.pit.PitPlan` (historical retrieval,
windowed aggregations included), reads a view's rows in a time range (entity-less retrieval,
tile backfills) and the latest row per key in a range (materialization). Write side: it appends
rows to a source's pushed data, says whether a source has any data, and reports a source's
columns. It declares what it can do in :class:`EngineCapabilities`; callers check those flags,
never an engine's name.

Column names: plan entries speak of a source's columns *after* its field mapping; :meth:`schema`
and :meth:`append` speak of the columns as the source stores them (before it), since they
describe and extend the stored data itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.offline.job import RetrievalJob
    from pitstop.offline.pit import PitPlan, SourceRef, ViewJoin

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
    """What an offline engine supports, as data the services check.

    Attributes:
        entity_sql: accepts a SQL query string (in its own dialect) as the entity frame.
        file_formats: source file formats the engine reads.
        catalog_sources: reads tables and queries of its own catalog
            (:attr:`~pitstop.offline.pit.SourceRef.table`, ``query``), not only files.
    """

    entity_sql: bool = False
    file_formats: tuple[str, ...] = ("parquet",)
    catalog_sources: bool = False


@runtime_checkable
class OfflineEngine(Protocol):
    """A backend that executes point-in-time plans over offline sources and appends to them.

    An engine comes with a config model, a subclass of :class:`pitstop.config.OfflineStoreConfig`
    whose ``open(repo_path)`` returns the engine (importing its module and driver only then);
    :mod:`pitstop.backends` maps each ``offline_store: {type: ...}`` to its config model (built-in
    table, or the entry point group ``pitstop.offline_engines``).
    """

    capabilities: EngineCapabilities

    def historical(self, entity: EntityInput, plan: PitPlan) -> RetrievalJob:
        """Join every view and aggregation of ``plan`` onto ``entity`` point-in-time correctly
        (lazily): the entity frame's columns, then :attr:`PitPlan.output_columns`, one row per
        entity row in input order."""
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

    def schema(self, source: SourceRef) -> pa.Schema:
        """The stored columns of ``source``'s data (its files and pushed rows) and their Arrow
        types, read from metadata, not rows. A missing or unreadable source is a
        :class:`~pitstop.errors.DataSourceError` naming it."""
        ...

    def has_rows(self, source: SourceRef) -> bool:
        """Whether ``source`` has any data to read yet (a push-fed source has none before its
        first offline push)."""
        ...

    def append(self, source: SourceRef, table: pa.Table, *, label: str | None = None) -> None:
        """Add ``table``'s rows (stored column names) to ``source``'s pushed data, atomically:
        a failed append leaves nothing behind, readers see all of it or none.

        ``label`` (letters, digits, ``-_.``; an engine may reserve some, the file engines
        those starting with ``part-``) names the append: appending again under the same label
        replaces those rows (a retried append stays one), and ``table``'s schema metadata is
        kept with them for :meth:`labels`."""
        ...

    def labels(self, source: SourceRef, prefix: str) -> Mapping[str, Mapping[bytes, bytes]]:
        """The labelled appends of ``source`` whose label starts with ``prefix``: label -> the
        schema metadata appended with it (values may be read lazily, on lookup)."""
        ...

    def close(self) -> None:
        """Release connections and temporary files."""
        ...
