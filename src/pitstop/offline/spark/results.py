"""Spark results as Arrow streams, Spark DataFrames and Parquet folders.

:func:`stream` brings a DataFrame's rows to this process as Arrow record batches, partition by
partition and in order: each partition serialises its batches to Arrow IPC on the executors
(``mapInArrow``), and the driver fetches one partition at a time (``toLocalIterator``), so the
memory held is about one partition, never the whole result. Executors therefore need Python
with pyarrow (the same pyspark version), as every Arrow-based pyspark feature does.

:class:`SparkResult` is what a :class:`~pitstop.offline.job.RetrievalJob` of the Spark engine
holds to hand out its DataFrame (``to_spark``) and to write Parquet with Spark (``to_parquet``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pitstop.errors import DataSourceError, PitstopError, RetrievalError
from pitstop.offline.spark.session import arrow_udfs, first_line

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from pitstop.offline.job import BatchTransform

__all__ = ["SparkResult", "arrow_schema", "spark_error", "stream"]


def _send_by_value() -> None:
    """Executors run this module's batch encoder without pitstop installed there: Spark's
    pickler sends the module's functions by value rather than by name."""
    import sys

    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


_BLOB = "arrow_ipc"


def arrow_schema(frame: DataFrame) -> pa.Schema:
    """The Arrow schema of ``frame``'s rows as pitstop returns them: Spark's mapping, times
    labelled UTC (a zone-less time is wall time in UTC)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from pitstop.offline.assemble import utc_schema

    return utc_schema(to_arrow_schema(frame.schema, timezone="UTC"))


def spark_error(exc: Exception, what: str) -> PitstopError:
    """A Spark failure as pitstop's error: reading data (missing files, unreadable or
    unparseable values) is a :class:`DataSourceError`, anything else a :class:`RetrievalError`."""
    text, detail = str(exc), first_line(exc)
    data = ("PATH_NOT_FOUND", "CAST_INVALID_INPUT", "FAILED_READ_FILE", "CANNOT_PARSE")
    if any(code in text for code in data):
        return DataSourceError(f"{what}: {detail}")
    return RetrievalError(f"{what}: {detail}")


def _ipc_blobs(batch_rows: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The executor side: a partition's rows as one-cell IPC streams of ``batch_rows`` rows
    (the last one fewer)."""

    def encode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in batches:
            while batch.num_rows:
                take = batch.slice(0, batch_rows - rows)
                pending.append(take)
                rows += take.num_rows
                batch = batch.slice(take.num_rows)
                if rows == batch_rows:
                    yield _blob(pending)
                    pending, rows = [], 0
        if pending:
            yield _blob(pending)

    return encode


def _blob(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        writer.write_table(pa.Table.from_batches(batches).combine_chunks())
    return pa.RecordBatch.from_arrays([pa.array([sink.getvalue().to_pybytes()])], [_BLOB])


def stream(frame: DataFrame, batch_rows: int, what: str) -> pa.RecordBatchReader:
    """``frame``'s rows, in order, as record batches of up to ``batch_rows`` rows (about one
    partition held at a time); Spark failures become pitstop errors naming ``what``."""
    schema = arrow_schema(frame)
    _send_by_value()
    try:
        with arrow_udfs():
            blobs = frame.mapInArrow(_ipc_blobs(batch_rows), f"{_BLOB} binary")
        rows = blobs.toLocalIterator(prefetchPartitions=True)
    except Exception as exc:
        raise spark_error(exc, what) from exc

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for row in rows:
                with pa.ipc.open_stream(row[0]) as reader:
                    for batch in reader:
                        yield batch.cast(schema)
        except PitstopError:
            raise
        except Exception as exc:
            raise spark_error(exc, what) from exc

    return pa.RecordBatchReader.from_batches(schema, batches())


class SparkResult:
    """A result kept in Spark: a DataFrame built on demand (``frame()``, rows in order)."""

    def __init__(self, frame: Callable[[], DataFrame], what: str) -> None:
        self._frame = frame
        self.what = what

    def to_spark(self, transforms: Sequence[BatchTransform]) -> DataFrame:
        """The result as a Spark DataFrame; ``transforms`` run on the executors, batch by
        batch (they must be importable there, as any Spark Python function must)."""
        frame = self._frame()
        if not transforms:
            return frame
        from pyspark.sql.pandas.types import from_arrow_schema

        from pitstop.offline.job import apply_transforms

        empty = arrow_schema(frame).empty_table().to_batches() or [
            pa.RecordBatch.from_pylist([], schema=arrow_schema(frame))
        ]
        schema = apply_transforms(empty[0], transforms).schema
        steps = tuple(transforms)

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                yield apply_transforms(batch, steps).cast(schema)

        try:
            with arrow_udfs():
                return frame.mapInArrow(run, from_arrow_schema(schema))
        except Exception as exc:
            raise RetrievalError(
                f"{self.what}: cannot send the result's per-batch steps (on-demand feature "
                f"views, windowed aggregations) to Spark: {exc}. Use to_arrow(), to_df() or "
                "to_parquet() instead."
            ) from exc

    def write_parquet(self, path: str, transforms: Sequence[BatchTransform], **options: Any) -> int:
        """Write the result with Spark into the folder ``path`` (replaced), as part files in
        row order; returns the number of rows."""
        unknown = sorted(set(options) - {"compression"})
        if unknown:
            raise RetrievalError(
                f"to_parquet on a Spark result takes only the option 'compression'; got {unknown}"
            )
        frame = self.to_spark(transforms)
        writer = frame.write.mode("overwrite")
        if "compression" in options:
            writer = writer.option("compression", str(options["compression"]))
        try:
            writer.parquet(path)
            return int(frame.sparkSession.read.parquet(path).count())
        except Exception as exc:
            raise spark_error(exc, f"{self.what}: writing {path}") from exc
