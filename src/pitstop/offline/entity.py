"""Entity frames as Arrow: conversion, validation and UTC timestamps (engine-neutral).

Every engine receives the entity frame through :func:`prepare_entity`: the user's frame with its
timestamp column normalised to tz-aware UTC (``output``), and a narrow frame with only what a
join needs (``narrow``: one column per join key, the timestamp as tz-naive UTC microseconds and a
row number that restores input order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pitstop.errors import RetrievalError, suggest
from pitstop.offline.pit import PitPlan

__all__ = [
    "ROW_NUMBER",
    "TIMESTAMP",
    "PreparedEntity",
    "key_column",
    "prepare_entity",
    "to_arrow_table",
    "to_utc",
    "type_family",
]

#: Names of the narrow frame's own columns; key columns are called ``key_column(i)``.
ROW_NUMBER = "__rn"
TIMESTAMP = "__t"


def key_column(index: int) -> str:
    """Name of the ``index``-th entity key in the narrow frame."""
    return f"__e{index}"


@dataclass(frozen=True)
class PreparedEntity:
    """An entity frame ready to join.

    Attributes:
        output: the user's columns in order, timestamp column as tz-aware UTC.
        narrow: ``key_column(i)`` per entry of ``keys``, ``TIMESTAMP`` (tz-naive UTC, us) and
            ``ROW_NUMBER`` (0..n-1).
        keys: entity key column names, position ``i`` is ``key_column(i)`` in ``narrow``.
    """

    output: pa.Table
    narrow: pa.Table
    keys: tuple[str, ...]

    def key_index(self, name: str) -> int:
        """Position of entity key ``name`` in ``keys``."""
        return self.keys.index(name)

    def time_bounds(self) -> tuple[datetime | None, datetime | None]:
        """Smallest and greatest entity timestamp (tz-naive UTC), ``None`` if there is none."""
        bounds = pc.min_max(self.narrow.column(TIMESTAMP))
        return bounds["min"].as_py(), bounds["max"].as_py()


def to_arrow_table(entity: Any) -> pa.Table:
    """Convert an in-memory entity frame (Arrow, pandas, polars, Arrow C stream) to Arrow."""
    if isinstance(entity, pa.Table):
        return entity
    if isinstance(entity, pa.RecordBatch):
        return pa.Table.from_batches([entity])
    if isinstance(entity, pa.RecordBatchReader):
        return entity.read_all()
    module = type(entity).__module__
    if module.startswith("pandas"):
        return pa.Table.from_pandas(entity, preserve_index=False)
    if module.startswith("polars") and hasattr(entity, "to_arrow"):
        table = entity.to_arrow()
        assert isinstance(table, pa.Table)
        return table
    if hasattr(entity, "__arrow_c_stream__"):
        return pa.table(entity)
    if isinstance(entity, dict):  # a dict of columns
        return pa.table(entity)
    raise RetrievalError(
        f"Cannot use a {type(entity).__name__} as the entity frame; pass a pyarrow Table, a "
        "pandas or polars DataFrame, a dict of columns, or a SQL query string."
    )


def type_family(arrow_type: pa.DataType) -> str:
    """A coarse type family used to check that join keys can match (e.g. ``"number"``).

    Integers, floats and decimals are one family: pandas turns integer keys with missing
    values into floats, and DuckDB compares them fine.
    """
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    checks = (
        (pa.types.is_null, "null"),
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_integer, "number"),
        (pa.types.is_floating, "number"),
        (pa.types.is_decimal, "number"),
        (_is_string, "string"),
        (_is_binary, "binary"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
    )
    for check, family in checks:
        if check(t):
            return family
    return str(t)


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _is_binary(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t))


def to_utc(column: pa.ChunkedArray | pa.Array, name: str) -> pa.ChunkedArray:
    """Return ``column`` as tz-aware UTC timestamps.

    tz-naive timestamps are taken as UTC, tz-aware ones converted, dates are midnight UTC and
    ISO 8601 strings are parsed (with or without an offset).
    """
    col = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_timestamp(t):
        return col.cast(pa.timestamp(t.unit, "UTC"))
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us")).cast(pa.timestamp("us", "UTC"))
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.timestamp("us", "UTC"))])
    if _is_string(t):
        return _parse_iso(col, name)
    if len(col) == 0:  # an empty pandas column is float64
        return pa.chunked_array([], pa.timestamp("us", "UTC"))
    raise RetrievalError(
        f"Timestamp column {name!r} of the entity frame has type {t}; use timestamps, dates or "
        "ISO 8601 strings."
    )


def _parse_iso(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    utc = pa.timestamp("us", "UTC")
    try:  # all values carry an offset ("Z", "+09:00")
        return col.cast(utc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # no value carries an offset: UTC wall time
        return col.cast(pa.timestamp("us")).cast(utc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values: list[datetime | None] = []
    for text in col.to_pylist():
        values.append(None if text is None else _parse_one(text, name))
    return pa.chunked_array([pa.array(values, utc)])


def _parse_one(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RetrievalError(
            f"Cannot parse {text!r} in timestamp column {name!r} of the entity frame; "
            "use ISO 8601 such as '2024-05-01T12:00:00Z'."
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _check_columns(table: pa.Table, plan: PitPlan) -> None:
    names = table.column_names
    if plan.timestamp_column not in names:
        raise RetrievalError(
            f"The entity frame has no timestamp column {plan.timestamp_column!r}."
            f"{suggest(plan.timestamp_column, names)} Columns: {names}."
        )
    for view in plan.views:
        for key in view.entity_keys:
            if key not in names:
                raise RetrievalError(
                    f"The entity frame has no column {key!r}, a join key of view "
                    f"{view.name!r}.{suggest(key, names)} Columns: {names}."
                )
    clashes = sorted(set(plan.output_columns) & set(names))
    if clashes:
        raise RetrievalError(
            f"Feature column(s) {clashes} would overwrite column(s) of the entity frame; rename "
            "the entity column(s) or request full feature names."
        )
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise RetrievalError(f"The entity frame has duplicate column names {dupes}.")


def _row_numbers(n: int) -> pa.Array:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with pandas and most installs
        return pa.array(range(n), pa.int64())
    return pa.array(np.arange(n, dtype=np.int64))


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    return column.cast(t.value_type) if pa.types.is_dictionary(t) else column


def prepare_entity(table: pa.Table, plan: PitPlan) -> PreparedEntity:
    """Validate ``table`` against ``plan`` and build the output and narrow frames."""
    _check_columns(table, plan)
    ts_name = plan.timestamp_column
    ts = to_utc(table.column(ts_name), ts_name)
    output = table.set_column(table.column_names.index(ts_name), ts_name, ts)
    keys = plan.entity_keys
    arrays: dict[str, pa.ChunkedArray | pa.Array] = {
        key_column(i): _plain(table.column(k)) for i, k in enumerate(keys)
    }
    naive = pc.cast(ts, pa.timestamp("us"), safe=False)
    arrays[TIMESTAMP] = naive
    arrays[ROW_NUMBER] = _row_numbers(table.num_rows)
    narrow = pa.table(arrays)
    return PreparedEntity(output=output, narrow=narrow, keys=keys)
