"""Read a source's rows as a Spark DataFrame: files, pushed part files, tables and queries.

Files are found by the rules of :mod:`pitstop.offline.files` (a file, a directory with hive
partitions, a glob, plus the Parquet part files offline pushes add); local paths are checked
before Spark reads them, so a missing file is one clear error. Paths with a scheme
(``s3a://``, ``hdfs://``, ``abfss://``) go to Spark as they are.

Parquet timestamps stored with nanoseconds (pandas' default) reach Spark as ``long`` columns
(``spark.sql.legacy.parquet.nanosAsLong``): :func:`nanos_columns` finds them in a local file's
footer, and any ``long`` column a Parquet source uses as a time is taken as nanoseconds too.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from pitstop.errors import DataSourceError
from pitstop.offline.files import GLOB_CHARS, resolve_main
from pitstop.offline.spark.session import first_line

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from pitstop.offline.pit import SourceRef

__all__ = ["RawSource", "arrow_types", "nanos_columns", "read_source"]


#: A file source's column ranking its rows by arrival (:attr:`pitstop.offline.pit.Rank.ARRIVAL`).
ARRIVAL = "__arrival"


@dataclass(frozen=True)
class RawSource:
    """A source as Spark reads it: its raw columns, and which ``long`` columns hold
    nanosecond timestamps."""

    frame: DataFrame
    nanos: frozenset[str]


def read_source(spark: SparkSession, source: SourceRef, what: str) -> RawSource:
    """The rows of ``source`` with their raw column names; ``what`` names the reader in
    errors (e.g. ``"view 'driver'"``)."""
    try:
        if source.table:
            return RawSource(spark.table(source.table), frozenset())
        if source.query:
            return RawSource(spark.sql(source.query), frozenset())
        return _read_files(spark, source)
    except DataSourceError:
        raise
    except Exception as exc:
        where = source.table or source.query or source.path
        detail = first_line(exc)
        raise DataSourceError(
            f"Cannot read source {source.display_name!r} of {what} ({where}) with Spark: {detail}"
        ) from exc


def _pushed_parts(source: SourceRef) -> str | None:
    pushed = source.pushed
    if not pushed or os.path.normpath(pushed) == os.path.normpath(source.path):
        return None  # none, or a directory source's own files
    if "://" in pushed:
        return os.path.join(pushed, "*.parquet")
    return (
        os.path.join(pushed, "*.parquet") if glob.glob(os.path.join(pushed, "*.parquet")) else None
    )


def _read_files(spark: SparkSession, source: SourceRef) -> RawSource:
    parts = _pushed_parts(source)
    frames: list[DataFrame] = []
    nanos: list[frozenset[str]] = []
    main_exists = (
        "://" in source.path or os.path.exists(source.path) or bool(GLOB_CHARS & set(source.path))
    )
    if parts is None or main_exists:
        resolve_main(source)  # a clear error when the data is missing
        frames.append(_arrival(_read(spark, source.path, source.file_format), 0, source))
        nanos.append(nanos_columns(source.path, source.file_format))
    if parts is not None:
        frames.append(_arrival(_read(spark, parts, "parquet"), 1, source))
        nanos.append(nanos_columns(parts, "parquet"))
    if len(frames) == 1:
        return RawSource(frames[0], nanos[0])
    # the groups may store a time differently (a source's nanoseconds, pushed microseconds):
    # each becomes a TIMESTAMP before they are stacked
    frame = _timestamps(frames[0], nanos[0])
    for other, its_nanos in zip(frames[1:], nanos[1:], strict=True):
        frame = frame.unionByName(_timestamps(other, its_nanos), allowMissingColumns=True)
    return RawSource(frame, frozenset())


def _timestamps(frame: DataFrame, nanos: frozenset[str]) -> DataFrame:
    """``frame`` with its ``long`` nanosecond columns as ``TIMESTAMP`` (truncated toward zero
    to microseconds, the rule of :func:`pitstop.offline.spark.sql.time_micros`)."""
    from pyspark.sql import functions as F

    from pitstop.offline.spark.sql import time_micros

    converted = {}
    for field in frame.schema.fields:
        micros = time_micros(field.name, field.dataType, nanos=field.name in nanos)
        if micros is not None and field.dataType.typeName() == "long":
            converted[field.name] = F.timestamp_micros(micros)
    return frame.withColumns(converted) if converted else frame


def _arrival(frame: DataFrame, group: int, source: SourceRef) -> DataFrame:
    """``frame`` with :data:`ARRIVAL`: the group (own files 0, pushed parts 1), the file's
    path and the row's position in it (Parquet; none for CSV rows)."""
    from pyspark.sql import functions as F

    index = F.lit(None).cast("long")
    if source.file_format == "parquet" or group == 1:
        index = F.col("_metadata.row_index")
    position = F.struct(F.lit(group), F.col("_metadata.file_path"), index)
    return frame.withColumn(ARRIVAL, position)


def _read(spark: SparkSession, path: str, file_format: str) -> DataFrame:
    reader = spark.read
    suffix = "csv" if file_format == "csv" else "parquet"
    if GLOB_CHARS & set(path):
        base = _glob_base(path)
        if base:  # hive partitions below the glob's fixed part
            reader = reader.option("basePath", base)
    elif "://" not in path and os.path.isdir(path):
        reader = reader.option("pathGlobFilter", f"*.{suffix}").option(
            "recursiveFileLookup", "false"
        )
    if file_format == "csv":
        return reader.csv(path, header=True, inferSchema=True)
    return reader.parquet(path)


def _glob_base(path: str) -> str | None:
    """The folder above a glob's first wildcard, when it is one (for partition discovery)."""
    first = min(path.index(c) for c in GLOB_CHARS if c in path)
    base = path[:first].rsplit("/", 1)[0]
    if not base or ("://" not in base and not os.path.isdir(base)):
        return None
    return base


def nanos_columns(path: str, file_format: str) -> frozenset[str]:
    """Columns stored as nanosecond timestamps in the first local Parquet file at ``path``
    (a file, a directory or a glob); none for CSV and for paths with a scheme."""
    if file_format != "parquet" or "://" in path:
        return frozenset()
    if os.path.isdir(path):
        path = os.path.join(path, "**", "*.parquet")
    files = sorted(glob.glob(path, recursive=True)) if GLOB_CHARS & set(path) else [path]
    if not files:
        return frozenset()
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(files[0])
    except (OSError, pa.ArrowException):
        return frozenset()
    return frozenset(
        f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
    )


def arrow_types(frame: DataFrame) -> dict[str, pa.DataType]:
    """The Arrow type of each column of ``frame`` (``null`` where Arrow has no equivalent),
    so that checks compare types as :mod:`pitstop.offline.typemap` does."""
    from pyspark.sql.pandas.types import to_arrow_type

    types: dict[str, pa.DataType] = {}
    for field in frame.schema.fields:
        if field.name == ARRIVAL:
            continue
        try:
            types[field.name] = to_arrow_type(field.dataType, timezone="UTC")
        except Exception:  # a type Arrow conversion does not cover: no family to compare
            types[field.name] = pa.null()
    return types
