"""The default offline engine: DuckDB over Parquet and CSV files, Arrow in and out.

DuckDB is imported only when a query runs, so ``import pitstop.offline`` stays light. The entity
frame is registered with DuckDB as an Arrow table (never converted to pandas); sources are read
in place with ``read_parquet``/``read_csv``. The SQL is built by :mod:`.sql`; the matched rows
are placed back into the entity frame by :mod:`pitstop.offline.assemble`.

Example::

    engine = DuckDBEngine(memory_limit="4GB")
    table = engine.historical(entity_df, plan).to_arrow()
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, count
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pitstop.errors import RetrievalError
from pitstop.offline import files
from pitstop.offline.assemble import place, utc_batches
from pitstop.offline.base import EngineCapabilities, EntityInput, LatestRows
from pitstop.offline.duckdb import sql as dsql
from pitstop.offline.duckdb.aggregate import (
    entity_relation,
    lower_bound,
    planned_aggregates,
    source_view,
)
from pitstop.offline.duckdb.scan import execute, guarded, scan_source
from pitstop.offline.entity import PreparedEntity, prepare_entity, to_arrow_table
from pitstop.offline.job import RetrievalJob
from pitstop.offline.pit import PitPlan, Rank, ViewJoin
from pitstop.offline.sources import check_key_types

if TYPE_CHECKING:
    import duckdb

__all__ = ["DuckDBEngine"]

_IDS = count()


def _utc_naive(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _lower_bound(t_min: datetime | None, ttl: timedelta | None) -> datetime | None:
    """The oldest event time any entity row can use, ``None`` when unbounded."""
    if t_min is None or ttl is None:
        return None
    try:
        return t_min - ttl
    except OverflowError:
        return None


@dataclass(frozen=True)
class _Prepared:
    """A historical retrieval ready to run: entity frames and the query text."""

    entity: PreparedEntity
    sql: str


def _private_temp() -> str:
    """A fresh path for DuckDB's spill files inside this user's ``pitstop-duckdb-<uid>``
    folder (mode 0700) in the system's temporary directory. DuckDB creates the path only
    when it spills and removes it on close, so a process that is killed leaves nothing
    behind unless it was spilling."""
    import uuid

    uid = os.getuid() if hasattr(os, "getuid") else None
    base = os.path.join(tempfile.gettempdir(), f"pitstop-duckdb-{uid}")
    if uid is not None:
        os.makedirs(base, mode=0o700, exist_ok=True)
        info = os.lstat(base)
        if info.st_uid == uid and stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o077:
            return os.path.join(base, f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
    return tempfile.mkdtemp(prefix="pitstop-duckdb-")  # not a folder of ours alone


class DuckDBEngine(files.FileStorage):
    """Execute point-in-time plans with an embedded DuckDB.

    Args:
        threads: worker threads (default: one per core).
        memory_limit: DuckDB memory limit such as ``"4GB"`` (default: DuckDB's, 80% of RAM);
            larger joins spill to ``temp_directory``.
        temp_directory: where DuckDB spills (default: a private temporary directory, removed
            by :meth:`close`).
        batch_size: rows per streamed record batch.
        hash_max_rows_per_key: join keys with at most this many entity rows are joined by
            hashing (fast, work grows with entity rows x source rows per key), keys with more
            by sorting (ASOF, robust to skew). ``0`` sorts everything.
    """

    capabilities = EngineCapabilities(entity_sql=True, file_formats=("parquet", "csv"))

    def __init__(
        self,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | None = None,
        *,
        batch_size: int = 250_000,
        hash_max_rows_per_key: int = dsql.HASH_MAX_ROWS_PER_KEY,
    ) -> None:
        self._threads = threads
        self._memory_limit = memory_limit
        self._temp_directory = temp_directory
        self._own_temp: str | None = None
        self.batch_size = batch_size
        self.hash_max_rows_per_key = hash_max_rows_per_key
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection ----------------------------------------------------------------------------

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                import duckdb

                temp = self._temp_directory
                if temp is None:
                    temp = self._own_temp = _private_temp()
                    weakref.finalize(self, shutil.rmtree, temp, ignore_errors=True)
                # insertion order stays preserved (DuckDB's default): an entity SQL query's rows
                # keep their order; it costs the ORDER BY'd join nothing measurable.
                config: dict[str, Any] = {"temp_directory": temp}
                if self._threads:
                    config["threads"] = self._threads
                if self._memory_limit:
                    config["memory_limit"] = self._memory_limit
                con = duckdb.connect(config=config)
                con.execute("SET GLOBAL TimeZone = 'UTC'")
                # Prefetching pays off for remote files; for local ones it triples the scan's
                # memory (1M-row row groups: +250 MB) and is no faster.
                con.execute("SET GLOBAL disable_parquet_prefetching = true")
                self._con = con
            return self._con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB cursor on this engine's database, time zone set to UTC."""
        cur = self._connection().cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    def close(self) -> None:
        """Close the DuckDB connection and remove the private temporary directory."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
            if self._own_temp is not None:
                shutil.rmtree(self._own_temp, ignore_errors=True)
                self._own_temp = None

    # -- sources -------------------------------------------------------------------------------

    def _scan(self, cur: duckdb.DuckDBPyConnection, view: ViewJoin) -> dsql.ScanInfo:
        return scan_source(cur, view)

    # -- historical ----------------------------------------------------------------------------

    def historical(self, entity: EntityInput, plan: PitPlan) -> RetrievalJob:
        """Join ``plan``'s views onto ``entity`` point-in-time correctly (runs lazily).

        The result has the entity frame's columns (timestamp as tz-aware UTC) followed by the
        plan's feature columns, one row per entity row in input order.
        """
        run = _HistoricalRun(self, entity, plan)
        return RetrievalJob(run.open, run.sql)

    def range(self, view: ViewJoin, start: datetime | None, end: datetime | None) -> RetrievalJob:
        """All rows of ``view`` with ``start <= event_ts <= end`` (either bound optional).

        Columns: the entity key names, the source's timestamp field (tz-aware UTC), features.
        Rows come in no particular order.
        """
        return self._single_view(view, start, end, dsql.range_sql)

    def latest(
        self,
        view: ViewJoin,
        start: datetime | None,
        end: datetime | None,
        *,
        key_order: bool = False,
    ) -> LatestRows:
        """Per key, the latest row of ``view`` in ``[start, end]``, streamed in batches, and
        the number of rows (known once the query's first batch is out).

        Ties on event time go to the greatest created timestamp. Columns: entity key names,
        timestamp field, created timestamp column (if the source has one), features.
        ``key_order`` sorts the rows by the key columns in name order: for a non-negative
        integer key that is the order of the encoded keys, otherwise close to it, which is what
        a B-tree store needs to append rather than insert all over.
        """
        order = sorted(view.entity_keys) if key_order else ()

        def build(v: ViewJoin, source: str) -> str:
            return dsql.counted_sql(dsql.latest_sql(v, source), order)

        reader = self._single_view(view, start, end, build).to_batches()
        first = next(iter(reader), None)
        rows = first.column(dsql.ROWS)[0].as_py() if first is not None and first.num_rows else 0
        schema = reader.schema.remove(reader.schema.get_field_index(dsql.ROWS))

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in chain([first] if first is not None else [], reader):
                yield batch.drop_columns([dsql.ROWS])

        return LatestRows(pa.RecordBatchReader.from_batches(schema, batches()), rows)

    def _single_view(
        self,
        view: ViewJoin,
        start: datetime | None,
        end: datetime | None,
        build: Callable[[ViewJoin, str], str],
    ) -> RetrievalJob:
        lo, hi = _utc_naive(start), _utc_naive(end)
        cache: list[str] = []

        def sql() -> str:
            if not cache:
                cur = self.cursor()
                try:
                    scan = self._scan(cur, view)
                finally:
                    cur.close()
                cache.append(build(view, dsql.source_select(view, scan, lo=lo, hi=hi)))
            return cache[0]

        def open_reader() -> pa.RecordBatchReader:
            query = sql()
            cur = self.cursor()
            what = f"Reading view {view.name!r}"
            reader = execute(cur, query, self.batch_size, what)
            return utc_batches(guarded(reader, cur, what), reader.schema)

        return RetrievalJob(open_reader, sql)


class _HistoricalRun:
    """Prepares (once) and runs one historical retrieval."""

    def __init__(self, engine: DuckDBEngine, entity: EntityInput, plan: PitPlan) -> None:
        self.engine = engine
        self.entity = entity
        self.plan = plan
        self.table_name = f"__pitstop_entity_{next(_IDS)}"
        self._prepared: _Prepared | None = None

    def sql(self) -> str:
        return self.prepare().sql

    def prepare(self) -> _Prepared:
        if self._prepared is None:
            cur = self.engine.cursor()
            try:
                self._prepared = self._prepare(cur)
            finally:
                cur.close()
        return self._prepared

    def _entity_table(self, cur: duckdb.DuckDBPyConnection) -> pa.Table:
        if isinstance(self.entity, str):
            try:
                return cur.sql(self.entity).to_arrow_table()
            except Exception as exc:
                raise RetrievalError(f"The entity SQL query failed: {exc}") from exc
        return to_arrow_table(self.entity)

    def _prepare(self, cur: duckdb.DuckDBPyConnection) -> _Prepared:
        table = self._entity_table(cur)
        entity = prepare_entity(table.replace_schema_metadata(None), self.plan)
        cur.register(self.table_name, entity.narrow)
        try:
            views = self._view_sql(cur, entity)
            t_min, t_max = entity.time_bounds()
            sources = []
            for v in views:
                lo = _lower_bound(t_min, v.view.effective_ttl)
                sources.append(
                    dsql.source_select(v.view, v.scan, lo=lo, hi=t_max, empty=t_min is None)
                )
            flags = {v.heavy_flag: v.key_positions for v in views if v.heavy_flag}
            sql = dsql.historical_sql(
                self.table_name,
                views,
                sources,
                flags,
                created_filter=self.plan.filter_by_created_timestamp,
                heavy_rows=self.engine.hash_max_rows_per_key,
                computed=self._aggregates(cur, entity, t_min, t_max),
            )
        finally:
            cur.unregister(self.table_name)
        return _Prepared(entity, sql)

    def _aggregates(
        self,
        cur: duckdb.DuckDBPyConnection,
        entity: PreparedEntity,
        t_min: datetime | None,
        t_max: datetime | None,
    ) -> list[dsql.Computed]:
        """The windowed aggregations' parts of the query (one hash join per window)."""
        order = self.plan.last_order
        parts = []
        for n, join in enumerate(self.plan.aggregates):
            view = join.as_view()
            scan = self.engine._scan(cur, view)
            check_key_types(view, scan.types, entity.output.schema, entity.output.num_rows)
            lo = lower_bound(t_min, join)
            source = dsql.source_select(
                source_view(join, order), scan, lo=lo, hi=t_max, empty=t_min is None
            )
            positions = [entity.key_index(k) for k in join.entity_keys]
            relation = f"__a{n}e"
            types = {c: scan.types[join.source.raw_column(c)] for c in join.columns}
            part = planned_aggregates(join, f"__a{n}", relation, source, types=types, order=order)
            entity_cte = f"{relation} AS ({entity_relation(positions)})"
            parts.append(dsql.Computed((entity_cte, *part.ctes), part.results, part.columns))
        return parts

    def _view_sql(
        self, cur: duckdb.DuckDBPyConnection, entity: PreparedEntity
    ) -> list[dsql.ViewSql]:
        if Rank.ARRIVAL in self.plan.view_order:
            raise RetrievalError(
                "The DuckDB engine ranks a view's rows by event and created time, not by "
                "arrival; use the default view_order."
            )
        by_created = Rank.CREATED in self.plan.view_order
        modes: dict[tuple[int, ...], tuple[str, str | None]] = {}
        views = []
        for i, view in enumerate(self.plan.views):
            if not view.columns:
                continue
            scan = self.engine._scan(cur, view)
            check_key_types(view, scan.types, entity.output.schema, entity.output.num_rows)
            positions = tuple(entity.key_index(k) for k in view.entity_keys)
            if positions not in modes:
                modes[positions] = self._mode(cur, entity, positions, len(modes))
            mode, flag = modes[positions]
            views.append(dsql.ViewSql(i, view, scan, positions, mode, flag, by_created))
        return views

    def _mode(
        self,
        cur: duckdb.DuckDBPyConnection,
        entity: PreparedEntity,
        positions: tuple[int, ...],
        group: int,
    ) -> tuple[str, str | None]:
        """``hash`` if every key has few entity rows, ``sort`` if every key has many, else split."""
        limit = self.engine.hash_max_rows_per_key
        if entity.narrow.num_rows <= limit:
            return "hash", None
        keys = ", ".join(f"__e{p}" for p in positions)
        lo, hi = cur.sql(
            f"SELECT min(n), max(n) FROM (SELECT count(*) AS n FROM {self.table_name}"
            f" GROUP BY {keys})"
        ).fetchall()[0]
        if hi <= limit:
            return "hash", None
        if lo > limit:
            return "sort", None
        return "split", f"__heavy{group}"

    def open(self) -> pa.RecordBatchReader:
        prepared = self.prepare()
        cur = self.engine.cursor()
        cur.register(self.table_name, prepared.entity.narrow)
        names = [j.name for j in self.plan.joins]
        what = "Point-in-time join of view(s) " + ", ".join(map(repr, names))
        reader = execute(cur, prepared.sql, self.engine.batch_size, what)
        matched = guarded(reader, cur, what)
        return place(
            matched,
            reader.schema,
            prepared.entity,
            self.engine.batch_size,
            zero_filled=self.plan.zero_filled,
            utc=[out for join in self.plan.aggregates for out in join.output_columns],
        )
