"""The reference offline engine: the whole protocol in plain Python over rows read with pyarrow.

Slow and obviously correct: every entity row looks at every candidate row of its key. It reads
and writes the same files as the DuckDB engine (:mod:`pitstop.offline.files`), applies the
engine-neutral rules (:mod:`pitstop.offline.entity`, :mod:`pitstop.offline.sources`,
:mod:`pitstop.offline.typemap`, :mod:`pitstop.offline.assemble`) and ranks rows by the plan's
rankings (:class:`pitstop.offline.pit.Rank`). It takes no SQL entity frames.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pitstop.errors import DataSourceError, RetrievalError
from pitstop.offline import files
from pitstop.offline.assemble import place, utc_schema
from pitstop.offline.base import EngineCapabilities, EntityInput, LatestRows
from pitstop.offline.entity import (
    ROW_NUMBER,
    TIMESTAMP,
    PreparedEntity,
    key_column,
    prepare_entity,
    to_arrow_table,
)
from pitstop.offline.job import RetrievalJob
from pitstop.offline.pit import VIEW_ORDER, AggregateJoin, PitPlan, Rank, SourceRef, ViewJoin
from pitstop.offline.sources import (
    check_key_types,
    check_time_column,
    check_view_columns,
)
from pitstop.offline.typemap import time_kind, to_utc

__all__ = ["ReferenceEngine"]


@dataclass(frozen=True)
class _Row:
    """A source row as the rankings see it: keys, times (UTC, naive), arrival, position."""

    keys: tuple[Any, ...]
    ts: datetime
    created: datetime | None
    arrival: tuple[int, ...]
    index: int  # the row's position in the source table


@dataclass(frozen=True)
class _Source:
    """A view's source read whole: its table (raw names) and its rows by key."""

    table: pa.Table
    rows: list[_Row]
    by_key: dict[tuple[Any, ...], list[_Row]]
    csv: bool


def _files(source: SourceRef) -> list[str]:
    """The source's files in arrival order (its own, then pushed parts, each in path order)."""
    target, _ = files.resolve_path(source)
    out: list[str] = []
    for pattern in [target] if isinstance(target, str) else target:
        if glob.has_magic(pattern):
            out += sorted(glob.glob(pattern, recursive=True))
        else:
            out.append(pattern)
    return out


def _partitions(file: str, root: str) -> dict[str, Any]:
    if not os.path.isdir(root):
        return {}
    out: dict[str, Any] = {}
    for part in Path(os.path.relpath(file, root)).parts[:-1]:
        key, eq, value = part.partition("=")
        if eq and key:
            out[key] = int(value) if value.lstrip("-").isdigit() else value
    return out


def _read_file(file: str, source: SourceRef) -> pa.Table:
    try:
        if source.file_format == "csv":
            return pacsv.read_csv(file)
        return pq.read_table(file)
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(
            f"Cannot read source {source.display_name!r} at {file!r} as {source.file_format}: {exc}"
        ) from exc


def read_source(source: SourceRef) -> tuple[pa.Table, list[tuple[int, ...]]]:
    """Every row of ``source`` (raw column names, unioned by name) and each row's arrival:
    ``(file position, row position)``, or ``(file position,)`` for a CSV file."""
    tables, arrival = [], []
    for f, file in enumerate(_files(source)):
        table = _read_file(file, source)
        for name, value in _partitions(file, source.path).items():
            if name not in table.column_names:
                table = table.append_column(name, pa.array([value] * table.num_rows))
        tables.append(table)
        csv = source.file_format == "csv"
        arrival += [(f,) if csv else (f, r) for r in range(table.num_rows)]
    return _union(tables, source), arrival


def _union(tables: list[pa.Table], source: SourceRef) -> pa.Table:
    """The tables' rows unioned by column name; a column of different types in different files
    becomes UTC time if it holds time (pushed rows may encode time differently from the
    source's own files), else the first file's type."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    types: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for field in table.schema:
            types.setdefault(field.name, set()).add(field.type)
    first = {f.name: f.type for t in reversed(tables) for f in t.schema}
    fixed = []
    for table in tables:
        for i, field in enumerate(table.schema):
            if len(types[field.name]) == 1:
                continue
            column = table.column(i)
            if all(time_kind(t) is not None for t in types[field.name]):
                what = f"column {field.name!r} of source {source.display_name!r}"
                column = to_utc(column, what)
            else:
                column = column.cast(first[field.name])
            table = table.set_column(i, field.name, column)
        fixed.append(table)
    return pa.concat_tables(fixed, promote_options="permissive")


def _times(table: pa.Table, raw: str, view: ViewJoin, what: str) -> list[datetime | None]:
    check_time_column(view, raw, table.schema.field(raw).type, what)
    where = f"{what} column {raw!r} of source {view.source.display_name!r}"
    try:
        utc = to_utc(table.column(raw), where)
    except RetrievalError as exc:
        raise DataSourceError(str(exc)) from exc
    return [None if t is None else t.replace(tzinfo=None) for t in utc.to_pylist()]


def _load(view: ViewJoin) -> _Source:
    src = view.source
    table, arrival = read_source(src)
    check_view_columns(view, {f.name: f.type for f in table.schema})
    ts = _times(table, src.raw_column(src.timestamp_field), view, "timestamp")
    created: list[datetime | None] = [None] * table.num_rows
    if src.created_timestamp_column:
        raw = src.raw_column(src.created_timestamp_column)
        created = _times(table, raw, view, "created timestamp")
    keys = list(
        zip(*(table.column(src.raw_column(k)).to_pylist() for k in view.source_keys), strict=True)
    )
    rows, by_key = [], {}
    for i in range(table.num_rows):
        t = ts[i]
        if t is None or any(k is None for k in keys[i]):
            continue  # never matches
        row = _Row(keys[i], t, created[i], arrival[i], i)
        rows.append(row)
        by_key.setdefault(row.keys, []).append(row)
    return _Source(table, rows, by_key, src.file_format == "csv")


def _rank(order: Sequence[Rank]) -> Callable[[_Row], tuple[Any, ...]]:
    """Sort key: greater ranks first place."""

    def key(row: _Row) -> tuple[Any, ...]:
        out: list[Any] = []
        for rank in order:
            if rank is Rank.EVENT:
                out.append(row.ts)
            elif rank is Rank.CREATED:
                out.append((0, datetime.min) if row.created is None else (1, row.created))
            else:
                out.append(row.arrival)
        return tuple(out)

    return key


def _entity_keys(entity: PreparedEntity, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    columns = [entity.narrow.column(key_column(entity.key_index(k))).to_pylist() for k in keys]
    return list(zip(*columns, strict=True)) if columns else []


def _utc_naive(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


class ReferenceEngine(files.FileStorage):
    """The offline engine protocol in plain Python (see the module)."""

    capabilities = EngineCapabilities(entity_sql=False, file_formats=("parquet", "csv"))

    def __init__(self, batch_size: int = 1000) -> None:
        self.batch_size = batch_size

    def __enter__(self) -> ReferenceEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release."""

    # -- historical ------------------------------------------------------------------------------

    def historical(self, entity: EntityInput, plan: PitPlan) -> RetrievalJob:
        def open_reader() -> pa.RecordBatchReader:
            if isinstance(entity, str):
                raise RetrievalError("The reference engine takes no SQL entity queries.")
            table = to_arrow_table(entity).replace_schema_metadata(None)
            prepared = prepare_entity(table, plan)
            return self._historical(prepared, plan)

        return RetrievalJob(open_reader, "")

    def _historical(self, entity: PreparedEntity, plan: PitPlan) -> pa.RecordBatchReader:
        n = entity.narrow.num_rows
        times = [_utc_naive(t) for t in entity.narrow.column(TIMESTAMP).to_pylist()]
        columns: dict[str, pa.Array] = {}
        for view in plan.views:
            if not view.columns:
                continue
            columns.update(self._join(view, entity, times, plan))
        for join in plan.aggregates:
            columns.update(self._aggregate(join, entity, times, plan.last_order))
        fields = [pa.field(ROW_NUMBER, pa.int64())]
        fields += [pa.field(name, col.type) for name, col in columns.items()]
        schema = pa.schema(fields)
        batch = pa.RecordBatch.from_arrays(
            [pa.array(range(n), pa.int64()), *columns.values()], schema=schema
        )
        return place(
            iter([batch]),
            schema,
            entity,
            self.batch_size,
            zero_filled=plan.zero_filled,
            utc=[out for join in plan.aggregates for out in join.output_columns],
        )

    def _join(
        self, view: ViewJoin, entity: PreparedEntity, times: list[datetime | None], plan: PitPlan
    ) -> dict[str, pa.Array]:
        source = _load(view)
        types = {f.name: f.type for f in source.table.schema}
        check_key_types(view, types, entity.output.schema, entity.output.num_rows)
        rank = _rank(plan.view_order)
        ttl = view.effective_ttl
        picks: list[int | None] = []
        for keys, t in zip(_entity_keys(entity, view.entity_keys), times, strict=True):
            candidates = [] if t is None else source.by_key.get(keys, [])
            best = None
            for row in candidates:
                if row.ts > t or (ttl is not None and t - row.ts > ttl):
                    continue
                if plan.filter_by_created_timestamp and (row.created or row.ts) > t:
                    continue
                if best is None or rank(row) > rank(best):
                    best = row
            picks.append(None if best is None else best.index)
        where = pa.array(picks, pa.int64())
        return {
            out: source.table.column(view.source.raw_column(col)).take(where).combine_chunks()
            for col, out in view.columns
        }

    def _aggregate(
        self,
        join: AggregateJoin,
        entity: PreparedEntity,
        times: list[datetime | None],
        order: Sequence[Rank],
    ) -> dict[str, pa.Array]:
        view = join.as_view()
        source = _load(view)
        types = {f.name: f.type for f in source.table.schema}
        check_key_types(view, types, entity.output.schema, entity.output.num_rows)
        values = {
            c: source.table.column(join.source.raw_column(c)).to_pylist() for c in join.columns
        }
        out: dict[str, list[Any]] = {a.output: [] for a in join.aggregations}
        keys = _entity_keys(entity, join.entity_keys)
        for key, t in zip(keys, times, strict=True):
            if t is None:
                for agg in join.aggregations:
                    out[agg.output].append(_apply(agg.function, [], [], order))
                continue
            rows = source.by_key.get(key, [])
            for agg in join.aggregations:
                events = [r for r in rows if r.ts <= t and t - r.ts < agg.window]
                out[agg.output].append(_apply(agg.function, events, values[agg.column], order))
        result = {}
        for agg in join.aggregations:
            dtype = types[join.source.raw_column(agg.column)]
            result[agg.output] = pa.array(out[agg.output], _result_type(agg.function, dtype))
        return result

    # -- ranges ----------------------------------------------------------------------------------

    def _rows(
        self, view: ViewJoin, start: datetime | None, end: datetime | None
    ) -> tuple[_Source, list[_Row]]:
        source = _load(view)
        lo, hi = _utc_naive(start), _utc_naive(end)
        rows = [r for r in source.rows if (lo is None or r.ts >= lo) and (hi is None or r.ts <= hi)]
        return source, rows

    def _table(self, view: ViewJoin, source: _Source, rows: list[_Row], created: bool) -> pa.Table:
        src = view.source
        where = pa.array([r.index for r in rows], pa.int64())
        columns: dict[str, Any] = {}
        for k, key in enumerate(view.entity_keys):
            columns[key] = source.table.column(src.raw_column(view.source_keys[k])).take(where)
        columns[src.timestamp_field] = pa.array([r.ts for r in rows], pa.timestamp("us"))
        if created and src.created_timestamp_column:
            stamps = [r.created for r in rows]
            columns[src.created_timestamp_column] = pa.array(stamps, pa.timestamp("us"))
        for col, out in view.columns:
            columns[out] = source.table.column(src.raw_column(col)).take(where)
        table = pa.table(columns)
        return table.cast(utc_schema(table.schema))

    def range(self, view: ViewJoin, start: datetime | None, end: datetime | None) -> RetrievalJob:
        def open_reader() -> pa.RecordBatchReader:
            source, rows = self._rows(view, start, end)
            table = self._table(view, source, rows, created=False)
            return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())

        return RetrievalJob(open_reader, "")

    def latest(
        self,
        view: ViewJoin,
        start: datetime | None,
        end: datetime | None,
        *,
        key_order: bool = False,
    ) -> LatestRows:
        source, rows = self._rows(view, start, end)
        rank = _rank(VIEW_ORDER)
        best: dict[tuple[Any, ...], _Row] = {}
        for row in rows:
            if row.keys not in best or rank(row) > rank(best[row.keys]):
                best[row.keys] = row
        table = self._table(view, source, list(best.values()), created=True)
        if key_order:
            table = table.sort_by([(k, "ascending") for k in sorted(view.entity_keys)])
        return LatestRows(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()),
                          table.num_rows)  # fmt: skip


def _result_type(function: str, dtype: pa.DataType) -> pa.DataType:
    if function in ("count", "count_distinct"):
        return pa.int64()
    if function == "sum":
        return pa.int64() if pa.types.is_integer(dtype) else pa.float64()
    if function in ("mean", "avg"):
        return pa.float64()
    if pa.types.is_timestamp(dtype) and dtype.tz:
        return pa.timestamp(dtype.unit, "UTC")
    return dtype


def _apply(function: str, events: list[_Row], column: list[Any], order: Sequence[Rank]) -> Any:
    present = [r for r in events if column[r.index] is not None]
    values = [column[r.index] for r in present]
    if function == "count":
        return len(values)
    if function == "count_distinct":
        return len(set(values))
    if not values:
        return None
    if function == "sum":
        return sum(values)
    if function in ("mean", "avg"):
        return sum(values) / len(values)
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    rank = _rank(order)
    best = max(present, key=lambda r: (rank(r), column[r.index]))  # last: ranked, then value
    return column[best.index]
