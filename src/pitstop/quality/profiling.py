"""Profiles: what a batch of rows holds, column by column, computed in DuckDB.

Per column: the count of values and nulls; for numbers the minimum, maximum, mean, standard
deviation, quantiles and a 20-bin histogram; for times the range; for text and booleans the
number of distinct values and the most frequent ones with their counts.

Counts, ranges, means and standard deviations come from Arrow's compute kernels (vectorised,
several times cheaper than the same aggregates in a DuckDB query); DuckDB computes the
histograms of every numeric column in one scan, the quantiles (exact up to 200,000 rows,
beyond that on a systematic sample of every k-th row), and the frequent values of each text
column (one grouping per column).

>>> from pitstop.quality import profile
>>> p = profile(training_df)                               # doctest: +SKIP
>>> p.columns["age"].mean, p.columns["age"].quantiles["p50"]  # doctest: +SKIP
(41.3, 40.0)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.quality.rule import NUMERIC, arrow_family

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BINS = 20
TOP = 10
#: Quantiles are exact up to this many rows, beyond it estimated on a systematic sample (of
#: about this many rows: their rank error is a fraction of a percent).
SAMPLE = 200_000
DATA = "__pitstop_profile"
SAMPLED = "__pitstop_profile_sample"


@dataclass
class ColumnProfile:
    """The statistics of one column (``None`` where they do not apply)."""

    name: str
    type: str
    family: str
    count: int = 0
    nulls: int = 0
    null_rate: float = 0.0
    min: Any = None
    max: Any = None
    mean: float | None = None
    stddev: float | None = None
    quantiles: dict[str, float] | None = None
    histogram: dict[str, list[Any]] | None = None  # {"edges": [21 numbers], "counts": [20]}
    distinct: int | None = None
    top: list[dict[str, Any]] | None = None  # [{"value": v, "count": n}], most frequent first
    sampled: bool | None = None  # quantiles estimated on a sample (large data)

    def to_dict(self) -> dict[str, Any]:
        from pitstop.quality.report import _plain

        return {k: _plain(v) for k, v in asdict(self).items() if v is not None}


@dataclass
class Profile:
    """Every column's :class:`ColumnProfile`, by name, in the data's column order."""

    rows: int
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": [c.to_dict() for c in self.columns.values()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        cols = {c["name"]: ColumnProfile(**c) for c in data.get("columns", [])}
        return cls(int(data.get("rows", 0)), cols)


def profile(data: Any, columns: list[str] | None = None) -> Profile:
    """Profile ``data``: a DataFrame, an Arrow table, or the path of a Parquet file (or a
    folder of them). ``columns``: only these (default: all)."""
    from pitstop.quality.validation import cursor

    began = time.perf_counter()
    table = _table(data, columns)
    cur = cursor()
    cur.register(DATA, table)
    try:
        result = _profile(cur, table)
    finally:
        cur.unregister(DATA)
    result.seconds = time.perf_counter() - began
    return result


def _table(data: Any, columns: list[str] | None) -> pa.Table:
    if isinstance(data, str | Path):
        import pyarrow.dataset as ds

        return ds.dataset(str(data), format="parquet").to_table(columns=columns)
    from pitstop.engine.push import as_table

    table = as_table(data, "profile")
    return table if columns is None else table.select(columns)


def _profile(cur: duckdb.DuckDBPyConnection, table: pa.Table) -> Profile:
    cols = {f.name: ColumnProfile(f.name, str(f.type), arrow_family(f.type)) for f in table.schema}
    for c in cols.values():
        _moments(c, table.column(c.name), table.num_rows)
    _histograms(cur, cols)
    _quantiles(cur, table, cols)
    _top_counts(cur, cols)
    return Profile(table.num_rows, cols)


def _moments(c: ColumnProfile, column: pa.ChunkedArray, rows: int) -> None:
    """Counts, range, mean and standard deviation: Arrow's kernels, one vectorised pass per
    statistic (measured several times cheaper than the same aggregates in a DuckDB query)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    c.nulls = column.null_count  # kept by Arrow: free
    c.count = rows - c.nulls
    c.null_rate = c.nulls / rows if rows else 0.0
    if c.family in NUMERIC or c.family in ("timestamp", "date"):
        bounds = pc.min_max(column)
        c.min, c.max = bounds["min"].as_py(), bounds["max"].as_py()
    if c.family in NUMERIC and c.count:
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        c.mean = pc.mean(column).as_py()
        c.stddev = pc.stddev(column, ddof=1).as_py() if c.count > 1 else None
        if isinstance(c.min, Decimal):
            c.min, c.max = float(c.min), float(c.max)


def _q(name: str) -> str:
    from pitstop.offline.duckdb.sql import quote_ident

    return quote_ident(name)


def _width(c: ColumnProfile) -> float:
    return float(c.max - c.min) / BINS or 1.0


def _histograms(cur: duckdb.DuckDBPyConnection, cols: dict[str, ColumnProfile]) -> None:
    """20 equal bins from the minimum to the maximum of every numeric column: one DuckDB scan
    for all of them (a value on the top edge goes to the last bin, nulls to none)."""
    items = {}
    for i, c in enumerate(cols.values()):
        if c.family in NUMERIC and _finite(c.min) and _finite(c.max):
            col, low, width = _q(c.name), float(c.min), _width(c)
            last = low + (BINS - 1) * width
            bin_of = f"floor(({col} - {low!r}) / {width!r})::INTEGER"
            items[f"h{i}"] = (
                f"histogram(CASE WHEN {col} >= {last!r} THEN {BINS - 1} ELSE {bin_of} END)"
            )
    if not items:
        return
    sql = f"SELECT {', '.join(f'{v} AS {k}' for k, v in items.items())} FROM {DATA}"
    row = cur.sql(sql).to_arrow_table().to_pylist()[0]
    for i, c in enumerate(cols.values()):
        if row.get(f"h{i}") is not None:
            counts = dict(row[f"h{i}"])
            low, width = float(c.min), _width(c)
            c.histogram = {"edges": [low + k * width for k in range(BINS + 1)],
                           "counts": [int(counts.get(k, 0)) for k in range(BINS)]}  # fmt: skip


def _finite(value: Any) -> bool:
    return value is not None and float(value) - float(value) == 0  # not NaN, not infinite


def _quantiles(
    cur: duckdb.DuckDBPyConnection, table: pa.Table, cols: dict[str, ColumnProfile]
) -> None:
    """Quantiles of the numeric columns: exact up to ``SAMPLE`` rows, beyond that over every
    k-th row (a systematic sample of about ``SAMPLE`` rows: the same rows every time)."""
    numeric = [c for c in cols.values() if c.family in NUMERIC and c.count]
    if not numeric:
        return
    import numpy as np

    step = max(1, table.num_rows // SAMPLE)
    sample = table.select([c.name for c in numeric])
    if step > 1:
        sample = sample.take(np.arange(0, table.num_rows, step))
    qs = ", ".join(map(str, QUANTILES))
    items = [f"quantile_cont({_q(c.name)}::DOUBLE, [{qs}]) AS q{i}" for i, c in enumerate(numeric)]
    cur.register(SAMPLED, sample)
    try:
        row = cur.sql(f"SELECT {', '.join(items)} FROM {SAMPLED}").to_arrow_table().to_pylist()[0]
    finally:
        cur.unregister(SAMPLED)
    for i, c in enumerate(numeric):
        if row[f"q{i}"] is not None:
            c.quantiles = {f"p{round(q * 100):02d}": v
                           for q, v in zip(QUANTILES, row[f"q{i}"], strict=True)}  # fmt: skip
        c.sampled = step > 1


def _top_counts(cur: duckdb.DuckDBPyConnection, cols: dict[str, ColumnProfile]) -> None:
    """The number of distinct values of each text and boolean column and its most frequent
    values, exactly (one grouping query per column, reading that column only)."""
    for c in cols.values():
        if c.family not in ("string", "boolean") or not c.count:
            continue
        col = _q(c.name)
        sql = (f"SELECT v, n, count(*) OVER () AS d FROM (SELECT {col} AS v, count(*) AS n "
               f"FROM {DATA} WHERE {col} IS NOT NULL GROUP BY ALL) "
               f"ORDER BY n DESC, v LIMIT {TOP}")  # fmt: skip
        found = cur.sql(sql).to_arrow_table().to_pylist()
        c.distinct = int(found[0]["d"]) if found else 0
        c.top = [{"value": r["v"], "count": int(r["n"])} for r in found]
