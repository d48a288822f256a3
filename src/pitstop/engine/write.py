"""Turn Arrow rows of a feature view into encoded online rows, newest per key.

Used by every path that writes online — materialization, push and ``write_to_online_store`` —
so event-time ordering inside a batch (two rows for one key: the newer wins, ties go to the
greater created timestamp, then to the later row) is decided here once; the store applies the
same order against what it already holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pitstop.definitions.feature_view import FeatureView
from pitstop.online.base import StoredRow, newest_per_key
from pitstop.online.encoding import (
    encode_keys,
    encode_value,
    encode_values,
    entity_key,
    python_values,
)
from pitstop.types import UnixTimestamp

SMALL = 64  # rows up to which encoding goes row by row

if TYPE_CHECKING:
    import pyarrow as pa


def micros(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Timestamps as int64 microseconds since the epoch (tz-naive means UTC)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    t = column.type
    if pa.types.is_date(t):
        column = column.cast(pa.timestamp("us"))
        t = column.type
    if not pa.types.is_timestamp(t):
        raise TypeError(f"expected a timestamp column, got {t}")
    return column.cast(pa.timestamp("us", tz=t.tz)).cast(pa.int64())


def encode_rows(
    view: FeatureView,
    batch: pa.RecordBatch | pa.Table,
    timestamp_column: str,
    created_column: str | None,
    *,
    unique_keys: bool = False,
) -> list[StoredRow]:
    """Encode ``batch`` (join keys, features, timestamps) into one row per entity key.

    Rows without an event timestamp or with a null key are skipped: they cannot be ordered
    or looked up. ``unique_keys`` skips the newest-per-key pass when the caller guarantees it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(batch, pa.RecordBatch):
        batch = pa.Table.from_batches([batch])
    names = sorted(view.join_keys)
    event = micros(batch.column(timestamp_column))
    if event.null_count or any(batch.column(k).null_count for k in names):
        valid = event.is_valid()
        for k in names:
            valid = pc.and_(valid, batch.column(k).is_valid())
        batch = batch.filter(valid)
        event = event.filter(valid)
    if batch.num_rows == 0:
        return []
    created = (
        micros(batch.column(created_column)).fill_null(0).to_pylist()
        if created_column
        else [0] * batch.num_rows
    )
    feats = [f.name for f in view.features]
    if batch.num_rows <= SMALL:  # a push of a few rows: Python is faster than Arrow kernels
        keys, values = _encode_small(view, batch, names, feats)
    else:
        keys = encode_keys(names, [batch.column(k).combine_chunks() for k in names])
        values = encode_values(feats, [batch.column(f).combine_chunks() for f in feats])
    rows = list(map(StoredRow, keys, event.to_pylist(), created, values))
    return rows if unique_keys else newest_per_key(rows)


def _encode_small(
    view: FeatureView, batch: pa.Table, names: list[str], feats: list[str]
) -> tuple[list[bytes], list[bytes]]:
    """The same bytes as the columnar encoders, one row at a time."""
    key_cols = [batch.column(k).to_pylist() for k in names]
    keys = [entity_key(names, vals) for vals in zip(*key_cols, strict=True)]
    cols = [
        micros(batch.column(f.name)).to_pylist()
        if f.dtype is UnixTimestamp
        else python_values(batch.column(f.name))
        for f in view.features
    ]
    values = [encode_value(dict(zip(feats, vals, strict=True))) for vals in zip(*cols, strict=True)]
    if not cols:
        values = [encode_value({}) for _ in keys]
    return keys, values


def chunks(rows: list[StoredRow], size: int) -> Iterator[list[StoredRow]]:
    """``rows`` in slices of at most ``size``."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
