"""The point-in-time plan as Spark DataFrame operations (no I/O: frames in, frames out).

Inside these plans a row's time is a ``long`` of microseconds since the epoch (UTC), so no
comparison depends on a time zone. Each encoding maps onto it by :mod:`pitstop.offline.typemap`'s
rule (:func:`time_micros`); results carry Spark ``TIMESTAMP`` columns (instants), which reach
Arrow as ``timestamp[us, tz=UTC]``.

**Point-in-time join.** The views of a plan that share their entity key columns are joined in
one pass: the entity rows and every such view's source rows are stacked (``unionByName``),
partitioned by the keys and ordered by "available at" time (the event time; with
``filter_by_created_timestamp`` the later of event and created time), source rows before
entity rows at equal times. A running ``max_by(payload, (event_ts, created_ts))`` per view
then gives each entity row the latest row available at its time; a TTL keeps it only if
``event_ts >= t - ttl`` (if the latest candidate is too old, every older one is too). This is
one shuffle and one sort per key group whatever the number of rows per key, so skewed keys
and many entity rows per key cost ``O(n log n)``, never the pairs a range join would make.
The entity frame's own columns ride along in the first group (``__row``), so no join back is
needed; further key groups are joined on the entity row number ``__rn``.

**Windowed aggregations.** As in :mod:`pitstop.offline.duckdb.aggregate`: one equi-join per
window on the keys and a time bucket of half the window, filtered to
``t - window < event_ts <= t`` and grouped by entity row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pitstop.errors import DataSourceError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

    from pitstop.offline.pit import AggregateJoin, ViewJoin

__all__ = [
    "CT",
    "ROW",
    "ROW_NUMBER",
    "TIMESTAMP",
    "TS",
    "GroupView",
    "aggregate_frame",
    "col",
    "instant",
    "latest_frame",
    "micros",
    "pit_frame",
    "quote",
    "range_frame",
    "source_frame",
    "time_micros",
]

#: Column names of the plans: entity row number and time, source event and created time.
ROW_NUMBER = "__rn"
TIMESTAMP = "__t"
TS = "__ts"
CT = "__ct"
ROW = "__row"
_MIN_LONG = -(2**63)


def quote(name: str) -> str:
    """``name`` as a Spark identifier (dots and backticks are not special)."""
    return "`" + name.replace("`", "``") + "`"


def col(name: str) -> Column:
    """The top-level column ``name`` (never a nested field)."""
    from pyspark.sql import functions as F

    return F.col(quote(name))


def micros(value: timedelta) -> int:
    """``value`` in whole microseconds."""
    return value // timedelta(microseconds=1)


def time_micros(name: str, dtype: DataType, *, nanos: bool = False) -> Column | None:
    """The column ``name`` of Spark type ``dtype`` as microseconds since the epoch (UTC) by
    the rule of :mod:`pitstop.offline.typemap`; ``None`` if the type holds no time.

    A zone-less ``TIMESTAMP_NTZ`` is wall time in UTC (the session's zone is UTC); a
    ``TIMESTAMP`` is the instant; a date is midnight UTC; text is ISO 8601. With ``nanos`` a
    ``long`` column holds nanoseconds (a Parquet ``TIMESTAMP(NANOS)``, which Spark reads as
    such), truncated toward zero to microseconds.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    column = col(name)
    if isinstance(dtype, T.TimestampType):
        return F.unix_micros(column)
    if isinstance(dtype, T.TimestampNTZType | T.StringType):
        return F.unix_micros(column.cast(T.TimestampType()))
    if isinstance(dtype, T.DateType):
        return F.unix_date(column).cast(T.LongType()) * 86_400_000_000
    if nanos and isinstance(dtype, T.LongType):
        return F.expr(f"{quote(name)} div 1000")
    return None


def type_name(dtype: DataType) -> str:
    """``dtype`` as Arrow names it (``int64``, not ``bigint``): every engine's messages name
    types this way."""
    from pyspark.sql.pandas.types import to_arrow_type

    try:
        return str(to_arrow_type(dtype, timezone="UTC"))
    except Exception:  # no Arrow equivalent
        return str(dtype.simpleString())


def instant(column: Column, dtype: DataType) -> Column:
    """``column`` as a Spark ``TIMESTAMP`` if it holds zone-less times (wall time in UTC),
    else unchanged; results label every time as UTC this way."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.TimestampNTZType):
        return column.cast(T.TimestampType())
    return column


def _timestamp(column: Column) -> Column:
    from pyspark.sql import functions as F

    return F.timestamp_micros(column)


def source_frame(
    raw: DataFrame,
    view: ViewJoin,
    *,
    nanos: frozenset[str] = frozenset(),
    lo: int | None = None,
    hi: int | None = None,
    empty: bool = False,
    extra: Sequence[str] = (),
) -> DataFrame:
    """Project a view's source to ``__k<i>``, ``__ts``, ``__ct`` (if it has one), ``__f<j>``
    (and the raw ``extra`` columns as ``__x<i>``), rows with ``lo <= __ts <= hi``.

    Rows with a null key or event time never match and are dropped. ``nanos`` names raw
    ``long`` columns that hold nanoseconds.
    """
    from pyspark.sql import functions as F

    src = view.source
    types = {f.name: f.dataType for f in raw.schema.fields}
    cols = [col(src.raw_column(k)).alias(f"__k{i}") for i, k in enumerate(view.source_keys)]
    ts = _time(raw, src.raw_column(src.timestamp_field), types, nanos, "timestamp", view)
    cols.append(ts.alias(TS))
    if src.created_timestamp_column:
        raw_ct = src.raw_column(src.created_timestamp_column)
        cols.append(_time(raw, raw_ct, types, nanos, "created timestamp", view).alias(CT))
    for j, c in enumerate(view.feature_columns):
        raw_c = src.raw_column(c)
        cols.append(instant(col(raw_c), types[raw_c]).alias(f"__f{j}"))
    cols += [col(x).alias(f"__x{i}") for i, x in enumerate(extra)]
    frame = raw.select(*cols)
    keep = col(TS).isNotNull()
    for i in range(len(view.source_keys)):
        keep = keep & col(f"__k{i}").isNotNull()
    if empty:
        keep = F.lit(False)
    if lo is not None:
        keep = keep & (col(TS) >= F.lit(lo))
    if hi is not None:
        keep = keep & (col(TS) <= F.lit(hi))
    return frame.where(keep)


def _time(
    raw: DataFrame,
    name: str,
    types: Mapping[str, DataType],
    nanos: frozenset[str],
    what: str,
    view: ViewJoin,
) -> Column:
    expr = time_micros(name, types[name], nanos=name in nanos)
    if expr is None:
        raise DataSourceError(
            f"The {what} column {name!r} of source {view.source.display_name!r} (view "
            f"{view.name!r}) has type {type_name(types[name])}; it must hold timestamps, "
            "dates or ISO 8601 strings."
        )
    return expr


@dataclass(frozen=True)
class GroupView:
    """One view of a key group: its position in the plan, the view and its projected source
    (:func:`source_frame`)."""

    index: int
    view: ViewJoin
    source: DataFrame

    @property
    def has_created(self) -> bool:
        return self.view.source.created_timestamp_column is not None


def _order(has_created: bool) -> Column:
    """The candidate order: event time, then created time (a missing one loses)."""
    from pyspark.sql import functions as F

    if not has_created:
        return col(TS)
    return F.struct(col(TS).alias("e"), F.coalesce(col(CT), F.lit(_MIN_LONG)).alias("c"))


def _source_rows(g: GroupView, n_keys: int, created_filter: bool) -> DataFrame:
    from pyspark.sql import functions as F

    avail = col(TS)
    if created_filter and g.has_created:  # a candidate counts from when it was created
        avail = F.greatest(col(TS), F.coalesce(col(CT), col(TS)))
    payload = [col(TS).alias("ts")]
    payload += [col(f"__f{j}").alias(f"f{j}") for j in range(len(g.view.columns))]
    return g.source.select(
        *[col(f"__k{i}") for i in range(n_keys)],
        avail.alias("__o"),
        F.lit(0).alias("__kind"),
        _order(g.has_created).alias(f"__o{g.index}"),
        F.struct(*payload).alias(f"__p{g.index}"),
    )


def pit_frame(
    entity: DataFrame,
    keys: Sequence[str],
    views: Sequence[GroupView],
    *,
    created_filter: bool,
    carry: Sequence[str] = (),
) -> DataFrame:
    """Join ``views`` (all keyed by the entity columns ``keys``) onto ``entity``, which has
    ``__rn``, ``__t`` (microseconds, null: matches nothing) and the ``keys`` columns.

    The result has one row per entity row: ``__rn``, the entity columns ``carry`` as the
    struct ``__row`` (if any), and each view's output columns (null without a candidate).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    n = len(keys)
    entity_rows = entity.select(
        *[col(k).alias(f"__k{i}") for i, k in enumerate(keys)],
        col(TIMESTAMP).alias("__o"),
        F.lit(1).alias("__kind"),
        col(ROW_NUMBER),
        col(TIMESTAMP),
        *([F.struct(*[col(c) for c in carry]).alias(ROW)] if carry else []),
    )
    stacked = entity_rows
    for g in views:
        stacked = stacked.unionByName(_source_rows(g, n, created_filter), allowMissingColumns=True)
    window = (
        Window.partitionBy(*[col(f"__k{i}") for i in range(n)])
        .orderBy(col("__o").asc_nulls_first(), col("__kind").asc())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    latest = [
        F.max_by(col(f"__p{g.index}"), col(f"__o{g.index}")).over(window).alias(f"__w{g.index}")
        for g in views
    ]
    running = stacked.select(
        col("__kind"), col(ROW_NUMBER), col(TIMESTAMP), *([col(ROW)] if carry else []), *latest
    ).where(col("__kind") == 1)
    outputs = [col(ROW_NUMBER), *([col(ROW)] if carry else [])]
    for g in views:
        found = col(f"__w{g.index}")
        ttl = g.view.effective_ttl
        fresh = None if ttl is None else found["ts"] >= col(TIMESTAMP) - F.lit(micros(ttl))
        for j, (_, out) in enumerate(g.view.columns):
            value = found[f"f{j}"]
            if fresh is not None:
                value = F.when(fresh, value)
            outputs.append(value.alias(out))
    return running.select(*outputs)


def range_frame(view: ViewJoin, source: DataFrame) -> DataFrame:
    """Every row of ``source`` (a :func:`source_frame`): the entity key names, the source's
    timestamp field (an instant) and the output columns."""
    cols = [col(f"__k{i}").alias(k) for i, k in enumerate(view.entity_keys)]
    cols.append(_timestamp(col(TS)).alias(view.source.timestamp_field))
    cols += [col(f"__f{j}").alias(out) for j, (_, out) in enumerate(view.columns)]
    return source.select(*cols)


def latest_frame(view: ViewJoin, source: DataFrame) -> DataFrame:
    """Per key, the latest row of ``source`` (ties: created time; a missing one loses):
    entity key names, timestamp field, created timestamp column (if any), output columns."""
    from pyspark.sql import functions as F

    has_created = view.source.created_timestamp_column is not None
    payload = [col(TS).alias("ts")]
    if has_created:
        payload.append(col(CT).alias("ct"))
    payload += [col(f"__f{j}").alias(f"f{j}") for j in range(len(view.columns))]
    n = len(view.entity_keys)
    grouped = source.groupBy(*[col(f"__k{i}") for i in range(n)]).agg(
        F.max_by(F.struct(*payload), _order(has_created)).alias("__v")
    )
    cols = [col(f"__k{i}").alias(k) for i, k in enumerate(view.entity_keys)]
    cols.append(_timestamp(col("__v")["ts"]).alias(view.source.timestamp_field))
    if has_created:
        created = view.source.created_timestamp_column
        assert created is not None
        cols.append(_timestamp(col("__v")["ct"]).alias(created))
    cols += [col("__v")[f"f{j}"].alias(out) for j, (_, out) in enumerate(view.columns)]
    return grouped.select(*cols)


def _floor_div(name: str, divisor: int, minus: int = 0) -> Column:
    """``floor((name - minus) / divisor)`` in exact ``long`` arithmetic."""
    from pyspark.sql import functions as F

    x = f"({quote(name)} - {minus})"
    return F.expr(f"({x} - pmod({x}, {divisor})) div {divisor}")


def _aggregate(
    function: str,
    j: int,
    n_columns: int,
    has_created: bool,
    types: Mapping[str, DataType],
    arrival: bool,
) -> Column:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    value = col(f"s__f{j}")
    if function == "count":
        return F.count(value)
    if function == "count_distinct":
        return F.count_distinct(value)
    if function == "sum":
        dtype = types.get(f"__f{j}")
        integral = isinstance(dtype, T.IntegralType)
        return F.sum(value).cast(T.LongType() if integral else T.DoubleType())
    if function in ("mean", "avg"):
        return F.avg(value).cast(T.DoubleType())
    if function == "min":
        return F.min(value)
    if function == "max":
        return F.max(value)
    order = [col(f"s{TS}").alias("t")]
    if has_created:
        order.append(F.coalesce(col(f"s{CT}"), F.lit(_MIN_LONG)).alias("c"))
    if arrival:  # then the later file, the later row (none recorded in a CSV file)
        order.append(col("s__x0").alias("a"))
    ranked = F.struct(*order, value.alias("v"))  # exact ties left: the greater value
    return F.max(F.when(value.isNotNull(), ranked))["v"]


def aggregate_frame(entity: DataFrame, join: AggregateJoin, source: DataFrame) -> DataFrame:
    """``join``'s aggregations for every row of ``entity`` (``__rn``, ``__t`` and the key
    columns ``__e<i>`` in ``join.entity_keys`` order): ``__rn`` and one column per output.

    ``source`` is a :func:`source_frame` whose ``__f<j>`` is ``join.columns[j]`` and whose
    ``__x0``, if any, is the rows' arrival (:data:`pitstop.offline.spark.reader.ARRIVAL`). An
    entity row with a null key or time has empty windows. ``last`` ranks by event time,
    created time, then arrival (:data:`pitstop.offline.pit.LAST_VALUE_ORDER`).
    """
    from pyspark.sql import functions as F

    n_keys = len(join.entity_keys)
    has_created = join.source.created_timestamp_column is not None
    types = {f.name: f.dataType for f in source.schema.fields}
    renamed = source.select(*[col(c).alias(f"s{c}") for c in source.columns])
    result = entity.select(col(ROW_NUMBER))
    windows = list(dict.fromkeys(window for _, _, window, _ in join.aggregations))
    for window in windows:
        w = micros(window)
        bucket = max(w // 2, 1)
        t = col(TIMESTAMP)
        expanded = entity.where(t.isNotNull()).select(
            col(ROW_NUMBER),
            t.alias("__us"),
            *[col(f"__e{i}") for i in range(n_keys)],
            F.explode(
                F.sequence(_floor_div(TIMESTAMP, bucket, w), _floor_div(TIMESTAMP, bucket))
            ).alias("__b"),
        )
        events = renamed.withColumn("s__b", _floor_div(f"s{TS}", bucket))
        on = [col(f"__e{i}") == col(f"s__k{i}") for i in range(n_keys)]
        on += [col("__b") == col("s__b"), col(f"s{TS}") > col("__us") - w]
        on.append(col(f"s{TS}") <= col("__us"))
        cond = on[0]
        for c in on[1:]:
            cond = cond & c
        aggs = [
            _aggregate(
                function,
                join.columns.index(column),
                len(join.columns),
                has_created,
                types,
                "__x0" in types,
            ).alias(f"__a{i}")
            for i, (function, column, win, _) in enumerate(join.aggregations)
            if win == window
        ]
        grouped = expanded.join(events, cond).groupBy(col(ROW_NUMBER)).agg(*aggs)
        result = result.join(grouped, ROW_NUMBER, "left")
    outputs: list[Any] = [col(ROW_NUMBER)]
    for i, (function, _, _, output) in enumerate(join.aggregations):
        value = col(f"__a{i}")
        if function in ("count", "count_distinct"):
            value = F.coalesce(value, F.lit(0).cast("long"))
        outputs.append(value.alias(output))
    return result.select(*outputs)
