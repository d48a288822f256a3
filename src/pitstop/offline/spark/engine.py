"""The Spark offline engine: point-in-time plans as Spark jobs, for data beyond one machine.

Sources are read where they are (files, pushed part files, tables, queries;
:mod:`.reader`), the joins run as the DataFrame plans of :mod:`.sql`, and results stay in Spark
until asked for: ``to_spark()`` hands out the DataFrame, ``to_parquet()`` writes with Spark,
``to_arrow()``/``to_df()``/``to_batches()`` stream Arrow batches partition by partition
(:mod:`.results`). The entity frame may be a Spark DataFrame, a SQL query, or an in-memory
frame (pandas, Arrow, polars), which is sent to Spark once.

Example::

    engine = SparkEngine(SparkOfflineConfig(master="local[2]"))
    frame = engine.historical(entity_df, plan).to_spark()
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from pitstop.errors import DataSourceError, PitstopError, RetrievalError
from pitstop.offline.base import EngineCapabilities, EntityInput, LatestRows
from pitstop.offline.entity import (
    ROW_NUMBER,
    TIMESTAMP,
    PreparedEntity,
    prepare_entity,
    timestamp_column,
    to_arrow_table,
)
from pitstop.offline.files import FileStorage, has_data
from pitstop.offline.job import RetrievalJob
from pitstop.offline.pit import (
    LAST_VALUE_ORDER,
    VIEW_ORDER,
    AggregateJoin,
    PitPlan,
    SourceRef,
    ViewJoin,
)
from pitstop.offline.sources import check_appendable, check_key_types, check_view_columns
from pitstop.offline.spark import sql as ssql
from pitstop.offline.spark.config import SparkOfflineConfig
from pitstop.offline.spark.reader import ARRIVAL, RawSource, arrow_types, read_source
from pitstop.offline.spark.results import SparkResult, spark_error, stream

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkEngine"]


def _micros(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return ssql.micros(value - datetime(1970, 1, 1, tzinfo=UTC))


def _is_spark_frame(value: object) -> bool:
    return type(value).__module__.startswith("pyspark.sql") and hasattr(value, "sparkSession")


class SparkEngine:
    """Execute point-in-time plans with Apache Spark.

    Args:
        config: where Spark runs and its properties (default: ``local[*]``).
        session: a SparkSession to use instead of the process's one.
    """

    capabilities = EngineCapabilities(
        entity_sql=True, file_formats=("parquet", "csv"), catalog_sources=True
    )

    def __init__(
        self, config: SparkOfflineConfig | None = None, *, session: SparkSession | None = None
    ) -> None:
        self.config = config or SparkOfflineConfig()
        self.batch_rows = self.config.batch_rows
        self._session = session
        self._lock = threading.Lock()

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise RetrievalError(
            "The Spark engine lives in the driver and cannot be sent to Spark executors."
        )

    @property
    def spark(self) -> SparkSession:
        """The SparkSession (the process's one, started on first use)."""
        with self._lock:
            if self._session is None:
                from pitstop.offline.spark.session import spark_session

                self._session = spark_session(self.config)
            return self._session

    def close(self) -> None:
        """Forget the session; the process's SparkSession keeps running for other users
        (:func:`pitstop.offline.spark.session.stop_session` stops it)."""
        with self._lock:
            self._session = None

    # -- sources -------------------------------------------------------------------------------

    def _source(self, view: ViewJoin, raws: dict[SourceRef, RawSource]) -> RawSource:
        """The view's source as Spark reads it (once per source), its columns checked."""
        raw = raws.get(view.source)
        if raw is None:
            raw = raws[view.source] = read_source(self.spark, view.source, f"view {view.name!r}")
        check_view_columns(view, arrow_types(raw.frame))
        return raw

    @staticmethod
    def _nanos(view: ViewJoin, raw: RawSource) -> frozenset[str]:
        """Raw ``long`` columns holding nanoseconds: found in a local file's footer, or, for
        files behind a URL (footers unread), a Parquet source's time columns (Spark reads
        ``TIMESTAMP(NANOS)`` as ``long``)."""
        src = view.source
        if src.file_format != "parquet" or src.in_catalog or not _remote(src):
            return raw.nanos
        times = [src.raw_column(src.timestamp_field)]
        if src.created_timestamp_column:
            times.append(src.raw_column(src.created_timestamp_column))
        return raw.nanos | frozenset(times)

    def _projected(
        self,
        view: ViewJoin,
        raws: dict[SourceRef, RawSource],
        *,
        lo: int | None = None,
        hi: int | None = None,
        empty: bool = False,
    ) -> DataFrame:
        raw = self._source(view, raws)
        return ssql.source_frame(
            raw.frame, view, nanos=self._nanos(view, raw), lo=lo, hi=hi, empty=empty
        )

    # -- historical ----------------------------------------------------------------------------

    def historical(self, entity: EntityInput, plan: PitPlan) -> RetrievalJob:
        """Join ``plan``'s views onto ``entity`` point-in-time correctly (runs lazily).

        The result has the entity frame's columns (timestamp as tz-aware UTC) followed by the
        plan's feature columns, one row per entity row in input order.
        """
        if plan.view_order != VIEW_ORDER or plan.last_order != LAST_VALUE_ORDER:
            raise RetrievalError(
                "The Spark engine ranks rows by the default orders only (candidates: "
                f"{', '.join(map(str, VIEW_ORDER))}; last: "
                f"{', '.join(map(str, LAST_VALUE_ORDER))}); use those in the plan."
            )
        run = _HistoricalRun(self, entity, plan)
        what = "Point-in-time join of view(s) " + ", ".join(repr(v.name) for v in plan.views)
        return self._job(run.frame, what, local=lambda: run.stream(self.batch_rows, what))

    def _job(
        self,
        frame: Callable[[], DataFrame],
        what: str,
        *,
        local: Callable[[], pa.RecordBatchReader] | None = None,
    ) -> RetrievalJob:
        """A job over ``frame``; ``local`` streams its rows to this process when they need
        more than :func:`stream` does."""

        def open_reader() -> pa.RecordBatchReader:
            return stream(frame(), self.batch_rows, what) if local is None else local()

        def describe() -> str:
            plan: Any = frame()._jdf.queryExecution().logical()
            return str(plan.toString())

        return RetrievalJob(open_reader, describe, distributed=SparkResult(frame, what))

    def range(self, view: ViewJoin, start: datetime | None, end: datetime | None) -> RetrievalJob:
        """All rows of ``view`` with ``start <= event_ts <= end`` (either bound optional).

        Columns: the entity key names, the source's timestamp field (tz-aware UTC), features.
        Rows come in no particular order.
        """
        frame = _cached(
            lambda: ssql.range_frame(
                view, self._projected(view, {}, lo=_micros(start), hi=_micros(end))
            )
        )
        return self._job(frame, f"Reading view {view.name!r}")

    def latest(
        self,
        view: ViewJoin,
        start: datetime | None,
        end: datetime | None,
        *,
        key_order: bool = False,
    ) -> LatestRows:
        """Per key, the latest row of ``view`` in ``[start, end]`` (ties: the greater created
        timestamp), streamed in batches about one Spark partition at a time, and the number of
        rows. The rows are computed once (kept by Spark, spilling to disk) and released when
        the stream ends. ``key_order`` sorts them by the key columns in name order."""
        from pyspark import StorageLevel

        what = f"Latest rows of view {view.name!r}"
        source = self._projected(view, {}, lo=_micros(start), hi=_micros(end))
        frame = ssql.latest_frame(view, source)
        if key_order:
            frame = frame.orderBy(*[ssql.col(k) for k in sorted(view.entity_keys)])
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            rows = frame.count()
            reader = stream(frame, self.batch_rows, what)
        except PitstopError:
            frame.unpersist()
            raise
        except Exception as exc:
            frame.unpersist()
            raise spark_error(exc, what) from exc

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            finally:
                frame.unpersist()

        return LatestRows(pa.RecordBatchReader.from_batches(reader.schema, batches()), rows)

    # -- writes --------------------------------------------------------------------------------

    def schema(self, source: SourceRef) -> pa.Schema:
        """The stored columns of ``source``: from footers and headers for local files, else as
        Spark reads them (a table, a query, files behind a URL)."""
        if not _remote(source):
            return _FILES.schema(source)
        raw = read_source(self.spark, source, "a schema check")
        return pa.schema(list(arrow_types(raw.frame).items()))

    def has_rows(self, source: SourceRef) -> bool:
        """Whether ``source`` has any offline rows (a push-fed source has none until its
        first offline push)."""
        if source.in_catalog:
            raw = read_source(self.spark, source, "a row check")
            return not raw.frame.isEmpty()
        if not _remote(source):
            return has_data(source)
        jvm: Any = self.spark._jvm
        conf = self.spark._jsc.hadoopConfiguration()
        patterns = [source.path]
        if source.pushed:
            patterns.append(f"{source.pushed.rstrip('/')}/*.parquet")
        for pattern in patterns:
            path = jvm.org.apache.hadoop.fs.Path(pattern)
            found = path.getFileSystem(conf).globStatus(path)
            if found is not None and len(found) > 0:
                return True
        return False

    def append(self, source: SourceRef, table: pa.Table, *, label: str | None = None) -> None:
        """Add ``table`` (stored column names) to ``source``'s pushed rows as one Parquet part,
        which appears whole: written aside, then renamed. Local paths are written here, paths
        behind a URL (``s3a://``, ``hdfs://``) by Spark."""
        check_appendable(source, f"Appending to source {source.display_name!r}")
        if not _remote(source):
            _FILES.append(source, table, label=label)
            return
        if label is not None:
            raise RetrievalError(
                f"Appending to source {source.display_name!r} at {source.pushed}: labelled "
                "appends need a local or mounted path; append without a label."
            )
        frame = self.spark.createDataFrame(_sendable(table), schema=_spark_schema(table))
        what = f"Appending {table.num_rows} row(s) to source {source.display_name!r}"
        try:
            self._write_part(source, frame)
        except PitstopError:
            raise
        except Exception as exc:
            raise spark_error(exc, what) from exc

    def labels(self, source: SourceRef, prefix: str) -> Mapping[str, Mapping[bytes, bytes]]:
        """The source's parts labelled ``prefix...`` (local paths; none behind a URL)."""
        return {} if _remote(source) else _FILES.labels(source, prefix)

    def _write_part(self, source: SourceRef, frame: DataFrame) -> None:
        pushed = source.pushed or ""
        jvm: Any = self.spark._jvm
        hadoop: Any = jvm.org.apache.hadoop.fs.Path
        conf = self.spark._jsc.hadoopConfiguration()
        name = uuid.uuid4().hex
        staging = hadoop(f"{pushed.rstrip('/')}/_staging-{name}")
        fs = staging.getFileSystem(conf)
        frame.coalesce(1).write.parquet(staging.toString())
        try:
            parts = [
                s.getPath()
                for s in fs.listStatus(staging)
                if s.getPath().getName().endswith(".parquet")
            ]
            stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S%f}"
            for i, part in enumerate(parts):
                final = hadoop(f"{pushed.rstrip('/')}/part-{stamp}-{name}-{i}.parquet")
                if not fs.rename(part, final):
                    raise DataSourceError(
                        f"Could not move the pushed rows into {final.toString()} (source "
                        f"{source.display_name!r}); check that the folder is writable."
                    )
        finally:
            fs.delete(staging, True)


_FILES = FileStorage()
#: The entity frame's own timestamp values (``long``, in its unit) while Spark holds them.
GIVEN = "__ts_given"


def _remote(source: SourceRef) -> bool:
    """Whether ``source``'s data is not local files (a catalog table or query, or a URL)."""
    return source.in_catalog or "://" in source.path or "://" in (source.pushed or "")


def _cached(build: Callable[[], DataFrame]) -> Callable[[], DataFrame]:
    """``build`` run once, on first call (later calls give the same DataFrame)."""
    made: list[DataFrame] = []

    def frame() -> DataFrame:
        if not made:
            made.append(build())
        return made[0]

    return frame


def _long_micros(narrow: pa.Table) -> pa.ChunkedArray:
    """The narrow frame's timestamp (tz-naive UTC, us) as microseconds since the epoch."""
    return pc.cast(narrow.column(TIMESTAMP), pa.int64())


def _sendable(table: pa.Table) -> pa.Table:
    """``table`` with types Spark takes from Arrow: dictionaries decoded, unsigned integers
    widened to signed ones, nanosecond timestamps truncated to microseconds."""
    fields = []
    for field in table.schema:
        t = field.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_unsigned_integer(t):
            t = {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}.get(t.bit_width, pa.int64())
        if pa.types.is_timestamp(t) and t.unit == "ns":
            t = pa.timestamp("us", t.tz)
        fields.append(field.with_type(t))
    schema = pa.schema(fields)
    if schema.equals(table.schema):
        return table
    columns = [
        pc.cast(c, f.type, safe=not (pa.types.is_timestamp(f.type)))
        for c, f in zip(table.columns, schema, strict=True)
    ]
    return pa.table(columns, schema=schema)


def _spark_schema(table: pa.Table) -> Any:
    """The Spark schema of ``table``, zone-less timestamps kept zone-less (TIMESTAMP_NTZ)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(_sendable(table).schema, prefer_timestamp_ntz=True)


@dataclass(frozen=True)
class _Entity:
    """An entity frame in Spark and what is known of it.

    Attributes:
        frame: the user's columns (timestamp as an instant), ``__rn`` and ``__t``.
        prepared: the checked frame, or a one-row stand-in with its schema (a Spark frame).
        names: the user's column names, in order.
        bounds: smallest and greatest ``__t`` (``None`` each when no row has a time);
            ``None`` when unknown (a Spark frame is not scanned for them).
        given: the timestamp column as the frame gave it, when Spark's microseconds cannot
            hold it (another unit); its values travel as ``long`` in :data:`GIVEN`.
    """

    frame: DataFrame
    prepared: PreparedEntity
    names: list[str]
    bounds: tuple[int | None, int | None] | None
    given: pa.Field | None = None


class _HistoricalRun:
    """Builds (once) the DataFrame of one historical retrieval."""

    def __init__(self, engine: SparkEngine, entity: EntityInput, plan: PitPlan) -> None:
        self.engine = engine
        self.entity = entity
        self.plan = plan
        self._frame: DataFrame | None = None
        self._given: pa.Field | None = None

    def frame(self) -> DataFrame:
        """The result as Spark holds it (the timestamp column in microseconds)."""
        built = self._built()
        return built.drop(GIVEN) if self._given is not None else built

    def stream(self, batch_rows: int, what: str) -> pa.RecordBatchReader:
        """The rows streamed to this process, the timestamp column as the entity frame
        gave it."""
        reader = stream(self._built(), batch_rows, what)
        given = self._given
        if given is None:
            return reader
        at = reader.schema.get_field_index(given.name)
        schema = reader.schema.remove(reader.schema.get_field_index(GIVEN)).set(at, given)

        def restored() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                values = batch.column(GIVEN).cast(given.type)
                batch = batch.drop_columns([GIVEN]).set_column(at, given, values)
                yield batch

        return pa.RecordBatchReader.from_batches(schema, restored())

    def _built(self) -> DataFrame:
        if self._frame is None:
            self._frame = self._build()
        return self._frame

    def _entity(self) -> _Entity:
        """The entity rows in Spark (user columns, timestamp as an instant, ``__rn``,
        ``__t``) and what is known of them."""
        spark = self.engine.spark
        entity = self.entity
        if isinstance(entity, str):
            try:
                entity = spark.sql(entity)
            except Exception as exc:
                raise RetrievalError(f"The entity SQL query failed: {exc}") from exc
        if _is_spark_frame(entity):
            return self._spark_entity(entity)
        table = to_arrow_table(entity).replace_schema_metadata(None)
        prepared = prepare_entity(table, self.plan)
        ts_name = timestamp_column(table.schema, self.plan.timestamp_column)
        output = prepared.output
        index = output.column_names.index(ts_name)
        given = output.schema.field(ts_name)
        micros = _long_micros(prepared.narrow)
        output = output.set_column(index, ts_name, pc.cast(micros, pa.timestamp("us", "UTC")))
        names = table.column_names
        if given.type != pa.timestamp("us", "UTC"):  # Spark keeps microseconds: send as long
            output = output.append_column(GIVEN, pc.cast(prepared.output.column(index), pa.int64()))
            names = [*names, GIVEN]
        output = output.append_column(ROW_NUMBER, prepared.narrow.column(ROW_NUMBER))
        output = output.append_column(TIMESTAMP, micros)
        frame = spark.createDataFrame(_sendable(output))
        t_min, t_max = prepared.time_bounds()
        bounds = (_micros(t_min), _micros(t_max))
        return _Entity(frame, prepared, names, bounds, given if GIVEN in names else None)

    def _spark_entity(self, frame: DataFrame) -> _Entity:
        from pyspark.sql import functions as F

        types = arrow_types(frame)
        names = list(types)
        stand_in = pa.table({n: pa.nulls(1, t) for n, t in types.items()})  # schema checks
        prepared = prepare_entity(stand_in, self.plan)
        ts_name = timestamp_column(stand_in.schema, self.plan.timestamp_column)
        dtype = next(f.dataType for f in frame.schema.fields if f.name == ts_name)
        micros = ssql.time_micros(ts_name, dtype)
        if micros is None:
            raise RetrievalError(
                f"The timestamp column {ts_name!r} of the entity frame has type "
                f"{ssql.type_name(dtype)}; use timestamps (with or without a zone), dates or "
                "ISO 8601 text such as '2024-05-01T12:00:00Z'."
            )
        with_time = frame.select(
            *[ssql.col(n) for n in names],
            micros.alias(TIMESTAMP),
            F.monotonically_increasing_id().alias(ROW_NUMBER),
        )
        with_time = with_time.withColumn(ts_name, F.timestamp_micros(ssql.col(TIMESTAMP)))
        groups = {v.entity_keys for v in self.plan.views if v.columns}
        # read more than once: the row numbers must not change
        if len(groups) + len(self.plan.aggregates) > 1:
            with_time = with_time.localCheckpoint()
        return _Entity(with_time, prepared, names, None)

    def _build(self) -> DataFrame:
        engine = self.engine
        entity = self._entity()
        self._given = entity.given
        t_min = (entity.bounds or (None, None))[0]
        raws: dict[SourceRef, RawSource] = {}
        groups: dict[tuple[str, ...], list[ssql.GroupView]] = {}
        for i, view in enumerate(self.plan.views):
            if not view.columns:
                continue
            ttl = view.effective_ttl
            lo = None if t_min is None or ttl is None else t_min - ssql.micros(ttl)
            source = self._rows(entity, view, engine._source(view, raws), view, lo)
            groups.setdefault(view.entity_keys, []).append(ssql.GroupView(i, view, source))
        names = entity.names
        row = ssql.col(ssql.ROW)
        if groups:
            parts = [
                ssql.pit_frame(
                    entity.frame,
                    keys,
                    views,
                    created_filter=self.plan.filter_by_created_timestamp,
                    carry=names if n == 0 else (),
                )
                for n, (keys, views) in enumerate(groups.items())
            ]
            joined = parts[0]
            for part in parts[1:]:
                joined = joined.join(part, ROW_NUMBER, "left")
            users = [row[n].alias(n) for n in names]
        else:
            joined = entity.frame
            users = [ssql.col(n) for n in names]
        for join in self.plan.aggregates:
            joined = joined.join(self._aggregates(entity, join), ROW_NUMBER, "left")
        outputs = [out for view in self.plan.views for _, out in view.columns]
        outputs += [out for join in self.plan.aggregates for out in join.output_columns]
        result = joined.select(ssql.col(ROW_NUMBER), *users, *[ssql.col(o) for o in outputs])
        return result.orderBy(ssql.col(ROW_NUMBER)).drop(ROW_NUMBER)

    def _rows(
        self,
        entity: _Entity,
        view: ViewJoin,
        raw: RawSource,
        projected: ViewJoin,
        lo: int | None,
        extra: list[str] | None = None,
    ) -> DataFrame:
        """The source rows of ``view`` (keys checked against the entity frame's) projected as
        ``projected`` names them, from ``lo`` up to the entity frame's latest time."""
        output = entity.prepared.output
        check_key_types(view, arrow_types(raw.frame), output.schema, output.num_rows)
        t_min, t_max = entity.bounds or (None, None)
        return ssql.source_frame(
            raw.frame,
            projected,
            nanos=self.engine._nanos(projected, raw),
            lo=lo,
            hi=t_max,
            empty=entity.bounds is not None and t_min is None,
            extra=extra or (),
        )

    def _aggregates(self, entity: _Entity, join: AggregateJoin) -> DataFrame:
        """``join``'s aggregations per entity row: ``__rn`` and one column per output."""
        view = join.as_view()
        raw = self.engine._source(view, {})
        t_min = (entity.bounds or (None, None))[0]
        longest = max(ssql.micros(w) for w in join.windows)
        lo = None if t_min is None else t_min - longest
        source_view = ViewJoin(  # the aggregated columns as __f<j>
            name=join.name,
            source=join.source,
            entity_keys=join.entity_keys,
            source_keys=join.source_keys,
            columns=tuple((c, f"__f{j}") for j, c in enumerate(join.columns)),
        )
        arrival = [ARRIVAL] if ARRIVAL in raw.frame.columns else []
        source = self._rows(entity, view, raw, source_view, lo, arrival)
        keys = [ssql.col(k).alias(f"__e{i}") for i, k in enumerate(join.entity_keys)]
        frame = entity.frame.select(ssql.col(ROW_NUMBER), ssql.col(TIMESTAMP), *keys)
        return ssql.aggregate_frame(frame, join, source)
