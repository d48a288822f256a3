"""A lazy retrieval result: nothing runs until one of the ``to_*`` methods is called.

A :class:`RetrievalJob` wraps a function that opens an Arrow record batch stream. Post-processing
transforms (on-demand feature views plug in here) run on every batch, in order, as the batches
stream by, so ``to_parquet`` and ``to_batches`` never hold the whole result.

Example::

    job = engine.historical(entity_df, plan).with_transforms([add_ratio])
    job.to_parquet("/tmp/training.parquet")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from pitstop.errors import RetrievalError, require

__all__ = [
    "BatchTransform",
    "DistributedResult",
    "RetrievalJob",
    "apply_transforms",
    "arrow_to_pandas",
]

#: A post-processing step applied to every record batch of a result.
BatchTransform = Callable[[pa.RecordBatch], pa.RecordBatch]


class DistributedResult(Protocol):
    """A result an engine keeps distributed (Spark's): handed out as the engine's own frame
    and written to Parquet by the engine, without passing through this process."""

    def to_spark(self, transforms: Sequence[BatchTransform]) -> Any:
        """The result, ``transforms`` applied, as a Spark DataFrame."""
        ...

    def write_parquet(self, path: str, transforms: Sequence[BatchTransform], **options: Any) -> int:
        """Write the result into the Parquet folder ``path``; the number of rows."""
        ...


class RetrievalJob:
    """A lazily executed retrieval.

    Args:
        open_reader: opens the result as a record batch stream (runs the query).
        sql: the query text, or a function producing it.
        transforms: callables applied to each batch, in order.
        distributed: the result as the engine keeps it (Spark), for :meth:`to_spark` and
            :meth:`to_parquet`; ``None`` for engines that stream to this process.
    """

    #: What the job retrieves (features, service, keys), when the engine knows it; saved
    #: datasets record it. Not carried over by :meth:`with_transforms`.
    metadata: object = None

    def __init__(
        self,
        open_reader: Callable[[], pa.RecordBatchReader],
        sql: str | Callable[[], str] = "",
        *,
        transforms: Sequence[BatchTransform] = (),
        distributed: DistributedResult | None = None,
    ) -> None:
        self._open_reader = open_reader
        self._sql = sql
        self.transforms: tuple[BatchTransform, ...] = tuple(transforms)
        self._distributed = distributed

    def with_transforms(self, transforms: Sequence[BatchTransform]) -> RetrievalJob:
        """A new job running ``transforms`` after this job's own ones."""
        return RetrievalJob(
            self._open_reader,
            self._sql,
            transforms=(*self.transforms, *transforms),
            distributed=self._distributed,
        )

    def to_sql(self) -> str:
        """The query the engine runs (informative; it names the engine's temporary tables)."""
        return self._sql if isinstance(self._sql, str) else self._sql()

    def to_batches(self) -> pa.RecordBatchReader:
        """Stream the result as Arrow record batches, transforms applied batch by batch."""
        reader = self._open_reader()
        if not self.transforms:
            return reader
        return _apply_transforms(reader, self.transforms)

    def to_arrow(self) -> pa.Table:
        """The whole result as a ``pyarrow.Table``."""
        reader = self.to_batches()
        return pa.Table.from_batches(list(reader), schema=reader.schema)

    def to_df(self) -> Any:
        """The whole result as a pandas ``DataFrame``.

        Integer and boolean columns with nulls become pandas' nullable ``Int64``/``boolean``
        dtypes; timestamps stay tz-aware.
        """
        return arrow_to_pandas(self.to_arrow())

    def to_polars(self) -> Any:
        """The whole result as a polars ``DataFrame`` (needs ``pitstop[polars]``)."""
        polars: Any = require("polars", "polars")
        return polars.from_arrow(self.to_arrow())

    def to_spark(self) -> Any:
        """The result as a Spark DataFrame, rows in order (needs the Spark offline engine,
        ``offline_store: {type: spark}``). Nothing is collected to this process; per-batch
        steps (on-demand feature views) run on the executors."""
        if self._distributed is None:
            raise RetrievalError(
                "to_spark() needs a result of the Spark offline engine (offline_store: "
                "{type: spark} in feature_store.yaml); this one comes from an engine that "
                "streams to this process. Use to_arrow() and spark.createDataFrame(table), or "
                "to_parquet() and read the file with Spark."
            )
        return self._distributed.to_spark(self.transforms)

    def to_parquet(self, path: str | Path, **writer_options: Any) -> int:
        """Stream the result into a Parquet file at ``path``; returns the number of rows.

        A Spark result without per-batch steps is written by Spark instead, into the folder
        ``path`` (one part file per partition, in row order), without passing through this
        process."""
        import pyarrow.parquet as pq

        if self._distributed is not None and not self.transforms:
            return self._distributed.write_parquet(str(path), self.transforms, **writer_options)

        reader = self.to_batches()
        rows = 0
        with pq.ParquetWriter(str(path), reader.schema, **writer_options) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows


def apply_transforms(batch: pa.RecordBatch, transforms: Sequence[BatchTransform]) -> pa.RecordBatch:
    """``batch`` after each of ``transforms``, in order (each must return a record batch)."""
    for transform in transforms:
        batch = transform(batch)
        if not isinstance(batch, pa.RecordBatch):
            name = getattr(transform, "__name__", repr(transform))
            raise RetrievalError(
                f"Transform {name} returned a {type(batch).__name__}, not a pyarrow.RecordBatch."
            )
    return batch


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise RetrievalError(
            f"Transforms returned batches with different schemas ({schema} vs {batch.schema}); "
            "every batch must have the same columns and types."
        ) from exc


def _apply_transforms(
    reader: pa.RecordBatchReader, transforms: Sequence[BatchTransform]
) -> pa.RecordBatchReader:
    batches = iter(reader)
    first = next(batches, None)
    if first is None:
        empty = pa.RecordBatch.from_pylist([], schema=reader.schema)
        out = apply_transforms(empty, transforms)
        return pa.RecordBatchReader.from_batches(out.schema, [out])
    head = apply_transforms(first, transforms)

    def rest() -> Iterator[pa.RecordBatch]:
        yield head
        for batch in batches:
            yield _conform(apply_transforms(batch, transforms), head.schema)

    return pa.RecordBatchReader.from_batches(head.schema, rest())


def _nullable_dtypes(pd: Any) -> dict[pa.DataType, Any]:
    return {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }


def arrow_to_pandas(table: pa.Table) -> Any:
    """Convert ``table`` to pandas, keeping integer/boolean columns with nulls nullable."""
    pd: Any = require("pandas", "pandas")
    frame = table.to_pandas()
    mapping = _nullable_dtypes(pd)
    for i, column in enumerate(table.columns):
        if column.null_count and column.type in mapping:
            frame.isetitem(i, column.to_pandas(types_mapper=mapping.get))
    return frame
