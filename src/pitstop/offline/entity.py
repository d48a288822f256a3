"""Entity frames as Arrow: conversion, validation and UTC timestamps (engine-neutral).

Every engine receives the entity frame through :func:`prepare_entity`: the user's frame with its
timestamp column (``event_timestamp``, else its one timestamp-typed column) normalised to
tz-aware UTC (``output``), and a narrow frame with only what a join needs (``narrow``: one
column per join key, the timestamp as tz-naive UTC microseconds and a row number that restores
input order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pitstop.errors import RetrievalError, suggest
from pitstop.offline.pit import PitPlan
from pitstop.offline.typemap import to_utc

__all__ = [
    "ROW_NUMBER",
    "TIMESTAMP",
    "PreparedEntity",
    "key_column",
    "prepare_entity",
    "timestamp_column",
    "to_arrow_table",
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


def timestamp_column(schema: pa.Schema, name: str = "event_timestamp") -> str:
    """The entity frame's row-time column: ``name`` if the frame has it, else its one
    timestamp-typed column whatever it is called (Feast's rule).

    >>> timestamp_column(pa.schema([("id", pa.int64()), ("asof", pa.timestamp("us"))]))
    'asof'
    """
    names = schema.names
    if name in names:
        return name
    found = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise RetrievalError(
            f"The entity frame has no timestamp column {name!r} and no timestamp-typed column "
            f"to use instead.{suggest(name, names)} Columns: {names}. Call the column holding "
            f"each row's time {name!r}, or convert it to timestamps."
        )
    raise RetrievalError(
        f"The entity frame has no timestamp column {name!r} but {len(found)} timestamp-typed "
        f"columns {found}; rename the one holding each row's time to {name!r}."
    )


def _check_columns(table: pa.Table, plan: PitPlan) -> None:
    names = table.column_names
    for view in plan.joins:
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
    """Validate ``table`` against ``plan`` and build the output and narrow frames.

    The row time is ``plan.timestamp_column``, or the frame's one timestamp-typed column
    (:func:`timestamp_column`); it keeps its name in ``output``.
    """
    _check_columns(table, plan)
    ts_name = timestamp_column(table.schema, plan.timestamp_column)
    # the output keeps the frame's unit (nanoseconds stay); joins use microseconds
    ts = to_utc(
        table.column(ts_name), f"timestamp column {ts_name!r} of the entity frame", keep_unit=True
    )
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
