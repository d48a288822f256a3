"""Assembling an engine's answers into the result every engine returns (engine-neutral).

An engine computes, for the entity rows that found something, the row number
(:data:`~pitstop.offline.entity.ROW_NUMBER`) and the plan's output columns, sorted by row
number; :func:`place` puts those rows back into the entity frame in input order, batch by batch,
with nulls where nothing was found and ``0`` for counts over empty windows (the rule of
:attr:`~pitstop.offline.pit.PitPlan.zero_filled`). :func:`utc_schema` and :func:`utc_batches`
label the tz-naive timestamps an engine computes in (UTC) as tz-aware UTC.

Example (an engine's last step)::

    return place(matched_batches, matched_schema, prepared_entity, batch_rows=250_000)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from pitstop.errors import RetrievalError
from pitstop.offline.entity import ROW_NUMBER, PreparedEntity

__all__ = ["one_chunk", "place", "utc_batches", "utc_schema"]


def one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """``column`` as one array (no copy when it has one chunk)."""
    if column.num_chunks == 1:
        return column.chunk(0)
    if column.num_chunks == 0:
        return pa.array([], type=column.type)
    return pa.concat_arrays(column.chunks)


def utc_schema(schema: pa.Schema, only: Collection[str] | None = None) -> pa.Schema:
    """``schema`` with tz-naive timestamp columns (UTC inside an engine) labelled tz-aware UTC;
    ``only``: just these columns."""
    fields = []
    for field in schema:
        t = field.type
        if pa.types.is_timestamp(t) and t.tz is None and (only is None or field.name in only):
            field = field.with_type(pa.timestamp(t.unit, "UTC"))
        fields.append(field)
    return pa.schema(fields)


def utc_batches(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatchReader:
    """``batches`` (of ``schema``) with tz-naive timestamp columns labelled tz-aware UTC."""
    target = utc_schema(schema)

    def labelled() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield batch.cast(target)

    return pa.RecordBatchReader.from_batches(target, labelled())


class _Matched:
    """The matched rows (sorted by row number), handed out by row-number range."""

    def __init__(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        self._batches = batches
        self._schema = schema
        self._pending: pa.RecordBatch | None = None

    def until(self, end: int) -> pa.Table:
        """The next matched rows whose row number is below ``end``."""
        parts = []
        while True:
            if self._pending is None:
                self._pending = next(self._batches, None)
                if self._pending is None:
                    break
            batch = self._pending
            below = pc.sum(pc.less(batch.column(0), end)).as_py() or 0
            parts.append(batch.slice(0, below))
            self._pending = batch.slice(below) if below < batch.num_rows else None
            if self._pending is not None:
                break
        return pa.Table.from_batches(parts, schema=self._schema)

    def finish(self) -> None:
        """Drain the stream; nothing may be left."""
        left = (self._pending.num_rows if self._pending else 0) + sum(
            b.num_rows for b in self._batches
        )
        if left:  # pragma: no cover - guards the one-row-per-input rule
            raise RetrievalError(f"Internal error: {left} joined rows match no entity row.")


def place(
    matched: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    entity: PreparedEntity,
    batch_rows: int,
    *,
    zero_filled: Collection[str] = (),
    utc: Collection[str] = (),
) -> pa.RecordBatchReader:
    """Place the matched feature rows into the entity frame, one entity slice per batch.

    ``matched`` yields batches of ``schema``: :data:`ROW_NUMBER` first (ascending, each at most
    once), then the output columns. Entity rows without a match get nulls, and so do columns a
    match left null, except those in ``zero_filled``, which get ``0``; tz-naive timestamp
    columns named in ``utc`` are labelled tz-aware UTC. Each output batch is the user's columns
    for rows ``[offset, offset + n)`` followed by the outputs found for them.
    """
    if schema.names[0] != ROW_NUMBER:  # pragma: no cover - an engine's mistake
        raise RetrievalError(f"Internal error: matched rows must start with {ROW_NUMBER!r}.")
    output = entity.output
    features = list(utc_schema(pa.schema(list(schema)[1:]), utc))
    out_schema = pa.schema([*output.schema, *features])
    numbers = entity.narrow.column(ROW_NUMBER)
    fill = [f.name in zero_filled for f in features]

    def batches() -> Iterator[pa.RecordBatch]:
        found_rows = _Matched(matched, schema)
        for offset in range(0, output.num_rows, batch_rows):
            n = min(batch_rows, output.num_rows - offset)
            found = found_rows.until(offset + n)
            where = pc.index_in(numbers.slice(offset, n), value_set=found.column(0))
            arrays = [one_chunk(c) for c in output.slice(offset, n).columns]
            for column, field, zero in zip(found.columns[1:], features, fill, strict=True):
                values = one_chunk(column.take(where))
                if zero and values.null_count:
                    values = pc.fill_null(values, pa.scalar(0, values.type))
                if values.type != field.type:
                    values = values.cast(field.type)
                arrays.append(values)
            yield pa.RecordBatch.from_arrays(arrays, schema=out_schema)
        found_rows.finish()

    return pa.RecordBatchReader.from_batches(out_schema, batches())
