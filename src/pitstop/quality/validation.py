"""Run expectations over Arrow data in DuckDB: one query counts every rule, a second one
fetches a few bad rows of the rules that failed (and one per failed :func:`unique`).

>>> from pitstop.quality import between, not_null, validate
>>> report = validate(df, [not_null("age"), between("age", 0, 130)], keys=["user_id"])
... # doctest: +SKIP
>>> print(report)                                                   # doctest: +SKIP
data: 1 of 2 expectations hold on 1,000 rows
  - between('age', 0, 130): 2 of 1,000 rows are outside [0, 130]; e.g. row 7 (user_id 8): 212
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitstop.errors import DefinitionError
from pitstop.quality.report import RuleResult, ValidationReport
from pitstop.quality.rule import Context, Expectation, arrow_family

if TYPE_CHECKING:
    import duckdb

    from pitstop.definitions.feature_view import FeatureView

#: A table, or a function opening the rows as a record batch stream (called once per pass).
Rows = Any
DATA = "__pitstop_data"
ROW = "__pitstop_row"
SAMPLES = 5

_db: tuple[int, duckdb.DuckDBPyConnection] | None = None  # (process id, database)
_db_lock = threading.Lock()
_local = threading.local()


def cursor() -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the in-process DuckDB database quality checks run in (time zone
    UTC); kept for the thread's next check (a new cursor costs more than a small check)."""
    global _db
    pid = os.getpid()
    cur: duckdb.DuckDBPyConnection | None = getattr(_local, "cursor", None)
    if cur is not None and _local.pid == pid:
        return cur
    with _db_lock:
        if _db is None or _db[0] != pid:  # a forked process opens its own
            import duckdb

            _db = (pid, duckdb.connect())
        cur = _db[1].cursor()
    cur.execute("SET TimeZone = 'UTC'")
    _local.cursor, _local.pid = cur, pid
    return cur


def validate(
    data: Any,
    expectations: Sequence[Expectation] | FeatureView,
    *,
    keys: Sequence[str] = (),
    now: datetime | None = None,
    timestamp_field: str | None = None,
    samples: int = SAMPLES,
) -> ValidationReport:
    """Check ``data`` (a pandas or polars DataFrame, an Arrow table, a dict of columns) against
    ``expectations``, or against a view's expectations (its join keys name the sample rows,
    its timestamp field is the default of :func:`~pitstop.quality.freshness`).

    ``keys`` are columns shown with each bad row; ``now`` is the time rules such as
    :func:`~pitstop.quality.freshness` judge against (default: the current time).
    """
    from pitstop.definitions.feature_view import FeatureView
    from pitstop.engine.push import as_table

    target = "data"
    if isinstance(expectations, FeatureView):
        view = expectations
        target = f"feature view {view.name!r}"
        keys = keys or view.join_keys
        timestamp_field = timestamp_field or view.timestamp_field
        expectations = view.expectations
    table = as_table(data, f"validate {target}")
    return check(table, expectations, target=target, keys=keys, now=now,
                 timestamp_field=timestamp_field, samples=samples)  # fmt: skip


def check(
    rows: Rows,
    expectations: Sequence[Expectation],
    *,
    target: str,
    keys: Sequence[str] = (),
    now: datetime | None = None,
    timestamp_field: str | None = None,
    samples: int = SAMPLES,
) -> ValidationReport:
    """The report of ``expectations`` on ``rows``: an Arrow table, or a function opening a
    record batch stream (called again only when samples of bad rows are needed)."""
    import pyarrow as pa

    began = time.perf_counter()
    ctx = Context(now or datetime.now(UTC), timestamp_field, _ranges(rows, expectations))
    schema = rows.schema if isinstance(rows, pa.Table) else None
    opened = None
    if schema is None:
        opened = rows()
        schema = opened.schema
    families = {name: arrow_family(schema.field(name).type) for name in schema.names}
    cur = cursor()
    runnable = [e for e in expectations if not e.problem(families, ctx)]
    counts, measured, total = _count(cur, opened if opened is not None else rows,
                                     runnable, ctx)  # fmt: skip
    verdicts = {id(e): e.judge(counts[i], measured[i], total, ctx)
                for i, e in enumerate(runnable)}  # fmt: skip
    failed = [e for e in runnable if not verdicts[id(e)].passed]
    found = _samples(cur, rows, failed, ctx, [k for k in keys if k in families], samples)
    results = []
    for e in expectations:
        cols = e.columns(ctx)
        verdict = verdicts.get(id(e))
        if verdict is None:
            results.append(
                RuleResult(repr(e), e.rule, cols, False, "", {}, e.problem(families, ctx))
            )
            continue
        shown = tuple(found.get(id(e), ()))
        results.append(RuleResult(repr(e), e.rule, cols, verdict.passed, verdict.summary,
                                  verdict.observed, samples=shown))  # fmt: skip
    return ValidationReport(target, total, tuple(results), ctx.now, time.perf_counter() - began)


def _ranges(rows: Rows, expectations: Sequence[Expectation]) -> dict[str, tuple[int, int]]:
    """The range of the integer columns single-column ``unique`` rules read (Arrow finds it
    in a fraction of a scan; only for tables, a stream is read once)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(rows, pa.Table):
        return {}
    out = {}
    for e in expectations:
        cols = e.columns()
        if e.rule != "unique" or len(cols) != 1 or cols[0] not in rows.column_names:
            continue
        column = rows.column(cols[0])
        if pa.types.is_integer(column.type):
            bounds = pc.min_max(column)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if low is not None:
                out[cols[0]] = (low, high)
    return out


def _quoted(e: Expectation, ctx: Context) -> list[str]:
    from pitstop.offline.duckdb.sql import quote_ident

    return [quote_ident(c) for c in e.columns(ctx)]


def _count(
    cur: duckdb.DuckDBPyConnection, data: Any, rules: Sequence[Expectation], ctx: Context
) -> tuple[list[int], list[list[Any]], int]:
    """One pass: the row count, per rule the rows its predicate finds and its measures."""
    items = ["count(*)"]
    spans: list[tuple[int | None, int, int]] = []  # (count item, first measure, measures)
    for e in rules:
        cols = _quoted(e, ctx)
        pred = e.predicate(cols[0], ctx) if cols else None
        at = None
        if pred is not None:
            at = len(items)
            items.append(f"count(*) FILTER (WHERE {pred})")
        extra = e.measures(cols, ctx)
        spans.append((at, len(items), len(extra)))
        items.extend(extra)
    sql = f"SELECT {', '.join(items)} FROM {DATA}"
    row = _query(cur, data, sql, rules, one=True)[0]
    counts = [0 if at is None else int(row[at]) for at, _, _ in spans]
    measured = [list(row[first : first + n]) for _, first, n in spans]
    return counts, measured, int(row[0])


def _query(cur: duckdb.DuckDBPyConnection, data: Any, sql: str, rules: Sequence[Expectation],
           *, one: bool = False) -> list[Any]:  # fmt: skip
    """The rows of ``sql`` over ``data`` (registered as ``DATA`` for the query): dicts, or
    with ``one`` the first row as a tuple of plain numbers (cheaper: no Arrow)."""
    import duckdb

    cur.register(DATA, data)
    try:
        if one:
            return cur.execute(sql).fetchall()
        return list(cur.sql(sql).to_arrow_table().to_pylist())
    except duckdb.Error as exc:
        shown = ", ".join(repr(e) for e in rules)
        raise DefinitionError(f"the expectations {shown} cannot be checked: {exc}") from exc
    finally:
        cur.unregister(DATA)


def _samples(
    cur: duckdb.DuckDBPyConnection,
    rows: Rows,
    failed: Sequence[Expectation],
    ctx: Context,
    keys: Sequence[str],
    n: int,
) -> dict[int, list[dict[str, Any]]]:
    """A few bad rows per failed rule (in row order), repeated values per failed unique."""
    if n <= 0 or not failed:
        return {}
    out: dict[int, list[dict[str, Any]]] = {}
    by_row = [e for e in failed if e.columns(ctx) and e.predicate(_quoted(e, ctx)[0], ctx)]
    if by_row:
        out.update(_bad_rows(cur, _numbered(rows), by_row, ctx, keys, n))
    for e in failed:
        if e.rule == "unique":
            out[id(e)] = _repeats(cur, _open(rows), e, ctx, n)
    return out


def _open(rows: Rows) -> Any:
    import pyarrow as pa

    return rows if isinstance(rows, pa.Table) else rows()


def _numbered(rows: Rows) -> Any:
    """``rows`` with a column ``ROW`` numbering them from 0."""
    import numpy as np
    import pyarrow as pa

    if isinstance(rows, pa.Table):
        return rows.append_column(ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    reader = rows()

    def batches() -> Any:
        at = 0
        for batch in reader:
            index = pa.array(np.arange(at, at + batch.num_rows, dtype=np.int64))
            at += batch.num_rows
            yield batch.append_column(ROW, index)

    schema = reader.schema.append(pa.field(ROW, pa.int64()))
    return pa.RecordBatchReader.from_batches(schema, batches())


def _bad_rows(
    cur: duckdb.DuckDBPyConnection,
    data: Any,
    rules: Sequence[Expectation],
    ctx: Context,
    keys: Sequence[str],
    n: int,
) -> dict[int, list[dict[str, Any]]]:
    """One scan: the first ``n`` rows each rule finds bad, by row number."""
    from pitstop.offline.duckdb.sql import quote_ident

    flags, keep = [], []
    cols = list(dict.fromkeys([*keys, *(c for e in rules for c in e.columns(ctx))]))
    for i, e in enumerate(rules):
        pred = e.predicate(_quoted(e, ctx)[0], ctx)
        flags.append(f"coalesce(({pred}), false) AS __b{i}")
        keep.append(f"(__b{i} AND row_number() OVER (PARTITION BY __b{i} ORDER BY {ROW}) <= {n})")
    picked = ", ".join(quote_ident(c) for c in cols)
    sql = (f"SELECT * FROM (SELECT {ROW}, {picked}, {', '.join(flags)} FROM {DATA}) "
           f"WHERE {' OR '.join(f'__b{i}' for i in range(len(rules)))} "
           f"QUALIFY {' OR '.join(keep)} ORDER BY {ROW}")  # fmt: skip
    found = _query(cur, data, sql, rules)
    out: dict[int, list[dict[str, Any]]] = {}
    for i, e in enumerate(rules):
        column = e.columns(ctx)[0]
        shown = [k for k in keys if k != column]
        out[id(e)] = [
            {"row": r[ROW], "keys": {k: r[k] for k in shown}, "value": r[column]}
            for r in found
            if r[f"__b{i}"]
        ][:n]
    return out


def _repeats(
    cur: duckdb.DuckDBPyConnection, data: Any, e: Expectation, ctx: Context, n: int
) -> list[dict[str, Any]]:
    """The values of a failed :func:`unique` seen most often, with their counts."""
    names = e.columns(ctx)
    cols = _quoted(e, ctx)
    skip_nulls = f" WHERE {cols[0]} IS NOT NULL" if len(cols) == 1 else ""
    listed = ", ".join(cols)
    sql = (f"SELECT {listed}, count(*) AS __n FROM {DATA}{skip_nulls} "
           f"GROUP BY ALL HAVING count(*) > 1 ORDER BY __n DESC, {listed} LIMIT {n}")  # fmt: skip
    out = []
    for r in _query(cur, data, sql, [e]):
        value = r[names[0]] if len(names) == 1 else {c: r[c] for c in names}
        out.append({"value": value, "count": r["__n"]})
    return out
