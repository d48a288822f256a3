"""The Spark offline engine gives the DuckDB engine's answers (DESIGN.md §3), on the same data.

Each case builds a small source, runs the same plan on both engines and compares the rows;
the rules themselves are pinned case by case in test_offline_pit.py. One local SparkSession
(``local[2]``) serves the whole session; without pyspark or Java the tests are skipped (with
``CI=true``: failed).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from conftest import require_service
from pitstop.errors import BackendUnavailableError, DataSourceError, RetrievalError
from pitstop.offline import DuckDBEngine, PitPlan, SourceRef, ViewJoin
from pitstop.offline.aggregate import AggregateJoin, historical_aggregates

T0 = datetime(2024, 5, 1, 12, 0, 0)
H = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[Any]:
    """One Spark engine (and SparkSession, local[2]) for the whole test session."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        require_service("pyspark (pip install 'pitstop[spark]')", exc)
    from pitstop.offline.spark import SparkEngine, SparkOfflineConfig

    config = SparkOfflineConfig(master="local[2]", spark_conf={"spark.sql.shuffle.partitions": "4"})
    engine = SparkEngine(config)
    try:
        engine.spark  # noqa: B018 - starts the session
    except BackendUnavailableError as exc:
        require_service("Spark (needs Java 17+)", exc)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def duck() -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(threads=2)
    yield engine
    engine.close()


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def same(spark_table: pa.Table, duck_table: pa.Table) -> None:
    """Equal rows in the same order, same column names; timestamps tz-aware UTC on both."""
    assert spark_table.column_names == duck_table.column_names
    assert rows(spark_table) == rows(duck_table)
    for name in spark_table.column_names:
        s, d = spark_table.schema.field(name).type, duck_table.schema.field(name).type
        if pa.types.is_timestamp(d):
            assert pa.types.is_timestamp(s) and s.tz == "UTC" == d.tz, name


def both(spark_engine: Any, duck: DuckDBEngine, entity: Any, plan: PitPlan) -> pa.Table:
    spark_table = spark_engine.historical(entity, plan).to_arrow()
    duck_table = duck.historical(entity, plan).to_arrow()
    same(spark_table, duck_table)
    return spark_table


def write(path: Path, table: pa.Table) -> str:
    pq.write_table(table, path)
    return str(path)


def trips_source(
    tmp_path: Path,
    data: Sequence[tuple[int, datetime, datetime | None, int | None]],
    *,
    name: str = "driver_stats",
) -> SourceRef:
    """A source (driver_id, event_timestamp, created, trips) from tuples."""
    table = pa.table(
        {
            "driver_id": pa.array([r[0] for r in data], pa.int64()),
            "event_timestamp": pa.array([r[1] for r in data], pa.timestamp("us")),
            "created": pa.array([r[2] for r in data], pa.timestamp("us")),
            "trips": pa.array([r[3] for r in data], pa.int64()),
        }
    )
    path = write(tmp_path / f"{name}.parquet", table)
    return SourceRef(path, "parquet", "event_timestamp", "created", {}, name)


def trips(source: SourceRef, ttl: timedelta | None = None, name: str = "driver") -> ViewJoin:
    return ViewJoin(name, source, ("driver_id",), ("driver_id",), (("trips", "trips"),), ttl)


def entity(data: Sequence[tuple[int | None, datetime | None]], **extra: list[Any]) -> pa.Table:
    return pa.table(
        {
            "driver_id": pa.array([r[0] for r in data], pa.int64()),
            "event_timestamp": pa.array([r[1] for r in data], pa.timestamp("us")),
            **extra,
        }
    )


# --- point-in-time rules -------------------------------------------------------------------


def test_ttl_edges_are_inclusive(spark_engine: Any, duck: DuckDBEngine, tmp_path: Path) -> None:
    source = trips_source(
        tmp_path,
        [
            (1, T0 - 2 * H, None, 10),
            (2, T0 - 2 * H - timedelta(microseconds=1), None, 20),
            (3, T0, None, 30),
            (4, T0 + timedelta(microseconds=1), None, 40),
        ],
    )
    frame = entity([(1, T0), (2, T0), (3, T0), (4, T0)])
    out = both(spark_engine, duck, frame, PitPlan((trips(source, 2 * H),)))
    assert out.column("trips").to_pylist() == [10, None, 30, None]


def test_created_timestamp_breaks_ties_and_missing_loses(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    source = trips_source(
        tmp_path,
        [
            (1, T0 - H, T0 - H, 10),
            (1, T0 - H, T0, 11),
            (1, T0 - H, T0 - 2 * H, 12),
            (2, T0 - H, None, 20),
            (2, T0 - H, T0 - 3 * H, 21),
        ],
    )
    out = both(spark_engine, duck, entity([(1, T0), (2, T0)]), PitPlan((trips(source),)))
    assert out.column("trips").to_pylist() == [11, 21]


def test_filter_by_created_timestamp(spark_engine: Any, duck: DuckDBEngine, tmp_path: Path) -> None:
    source = trips_source(
        tmp_path,
        [
            (1, T0 - 2 * H, T0 - 2 * H, 10),
            (1, T0 - H, T0 + H, 11),
            (2, T0 - H, None, 20),
            (3, T0 - 3 * H, T0 + H, 30),
        ],
    )
    frame = entity([(1, T0), (2, T0), (3, T0), (1, T0 + 2 * H)])
    plan = PitPlan((trips(source, 3 * H),), filter_by_created_timestamp=True)
    out = both(spark_engine, duck, frame, plan)
    assert out.column("trips").to_pylist() == [10, 20, None, 11]


def test_every_row_once_in_input_order_with_duplicates_and_nulls(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    source = trips_source(tmp_path, [(1, T0 - H, None, 10), (2, T0 - H, None, 20)])
    frame = entity(
        [(2, T0), (1, T0), (2, T0), (None, T0), (1, None), (9, T0), (1, T0 - 2 * H)],
        label=[7, 6, 5, 4, 3, 2, 1],
    )
    out = both(spark_engine, duck, frame, PitPlan((trips(source),)))
    assert out.column("trips").to_pylist() == [20, 10, 20, None, None, None, None]
    assert out.column("label").to_pylist() == [7, 6, 5, 4, 3, 2, 1]


def test_compound_keys_and_views_with_different_keys(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    pairs = pa.table(
        {
            "origin": ["a", "a", "b", "a"],
            "dest": ["x", "y", "x", "x"],
            "ts": pa.array([T0 - 3 * H, T0 - H, T0 - H, T0 - 2 * H], pa.timestamp("us")),
            "eta": [1.5, 2.5, 3.5, 4.5],
        }
    )
    pair_source = SourceRef(write(tmp_path / "pairs.parquet", pairs), "parquet", "ts")
    route = ViewJoin(
        "route", pair_source, ("from", "to"), ("origin", "dest"), (("eta", "eta"),), None
    )
    driver = trips(trips_source(tmp_path, [(1, T0 - H, None, 10)]))
    frame = pa.table(
        {
            "from": ["a", "a", "b", "b"],
            "to": ["x", "y", "x", "y"],
            "driver_id": [1, 2, 1, 1],
            "event_timestamp": pa.array([T0] * 4, pa.timestamp("us")),
        }
    )
    plan = PitPlan((route, driver))
    out = both(spark_engine, duck, frame, plan)
    assert out.column("eta").to_pylist() == [4.5, 2.5, 3.5, None]
    assert out.column("trips").to_pylist() == [10, None, 10, 10]
    assert out.column_names == ["from", "to", "driver_id", "event_timestamp", "eta", "trips"]


def test_field_mapping_and_a_view_without_columns(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 1], pa.int64()),
            "when": pa.array([T0 - 2 * H, T0 - H], pa.timestamp("us")),
            "n": [3, 4],
        }
    )
    source = SourceRef(
        write(tmp_path / "mapped.parquet", table),
        "parquet",
        "event_timestamp",
        field_mapping={"id": "driver_id", "when": "event_timestamp", "n": "trips"},
    )
    empty = ViewJoin("nothing", source, ("driver_id",), ("driver_id",), (), None)
    plan = PitPlan((trips(source, name="mapped"), empty))
    out = both(spark_engine, duck, entity([(1, T0), (1, T0 - 90 * timedelta(minutes=1))]), plan)
    assert out.column("trips").to_pylist() == [4, 3]


def test_source_timestamp_encodings(spark_engine: Any, duck: DuckDBEngine, tmp_path: Path) -> None:
    """Nanoseconds (pandas' default), zoned, dates and ISO text: one rule on both engines."""
    tokyo = timezone(timedelta(hours=9))
    base = pa.table({"driver_id": pa.array([1, 2], pa.int64()), "trips": [10, 20]})
    instants = [T0 - 2 * H, T0 - H]
    encodings: dict[str, pa.Array] = {
        "nanos": pa.array(instants, pa.timestamp("ns")),
        "zoned": pa.array([t.replace(tzinfo=UTC).astimezone(tokyo) for t in instants]).cast(
            pa.timestamp("us", "Asia/Tokyo")
        ),
        "dates": pa.array([date(2024, 5, 1), date(2024, 4, 30)], pa.date32()),
        "text": pa.array(["2024-05-01T10:00:00Z", "2024-05-01 20:00:00+09:00"]),
    }
    frame = entity([(1, T0), (2, T0), (1, T0 - 3 * H), (2, T0 - 90 * timedelta(minutes=1))])
    for label, column in encodings.items():
        table = base.append_column("event_timestamp", column)
        path = write(tmp_path / f"{label}.parquet", table)
        source = SourceRef(path, "parquet", "event_timestamp", name=label)
        both(spark_engine, duck, frame, PitPlan((trips(source, DAY),)))


def test_entity_timestamp_encodings_and_output_utc(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    source = trips_source(tmp_path, [(1, T0 - H, None, 10), (1, T0 + H, None, 11)])
    plan = PitPlan((trips(source),))
    zoned = pa.array([T0.replace(tzinfo=UTC)]).cast(pa.timestamp("ns", "America/New_York"))
    text = pa.array(["2024-05-01T14:00:00+02:00"])
    for column in (zoned, text, pa.array([date(2024, 5, 2)], pa.date32())):
        frame = pa.table({"driver_id": [1], "event_timestamp": column})
        out = both(spark_engine, duck, frame, plan)
        assert out.schema.field("event_timestamp").type.tz == "UTC"


def test_csv_hive_folder_and_glob_sources(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    table = pa.table(
        {
            "driver_id": pa.array([1, 2, 1], pa.int64()),
            "event_timestamp": pa.array([T0 - 2 * H, T0 - H, T0 - H], pa.timestamp("us")),
            "trips": [10, 20, 11],
        }
    )
    csv_path = tmp_path / "stats.csv"
    pacsv.write_csv(table, csv_path)
    folder = tmp_path / "hive"
    for day in ("2024-04-30", "2024-05-01"):
        (folder / f"day={day}").mkdir(parents=True)
    pq.write_table(table.slice(0, 1), folder / "day=2024-04-30" / "a.parquet")
    pq.write_table(table.slice(1), folder / "day=2024-05-01" / "b.parquet")
    frame = entity([(1, T0), (2, T0), (1, T0 - 90 * timedelta(minutes=1))])
    for path, fmt in (
        (str(csv_path), "csv"),
        (str(folder), "parquet"),
        (str(folder / "day=*" / "*.parquet"), "parquet"),
    ):
        source = SourceRef(path, fmt, "event_timestamp", name=Path(path).name)
        out = both(spark_engine, duck, frame, PitPlan((trips(source),)))
        assert out.column("trips").to_pylist() == [11, 20, 10], path
    source = SourceRef(str(folder), "parquet", "event_timestamp", name="partitions")
    by_day = ViewJoin("d", source, ("driver_id",), ("driver_id",), (("day", "day"),), None)
    both(spark_engine, duck, frame, PitPlan((by_day,)))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_random_plans_agree_with_duckdb(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path, seed: int
) -> None:
    """Random sources (several rows per key, some created timestamps missing) and entity
    frames with many rows per key: both engines give the same rows for every TTL and for
    filter_by_created_timestamp on and off. (Ties on event and created time are avoided: the
    rules leave their order open.)"""
    rng = random.Random(seed)
    data = []
    for key in range(30):
        times = rng.sample(range(0, 48 * 60), rng.randint(0, 12))
        for minute in times:
            created = (
                None if rng.random() < 0.2 else T0 + timedelta(minutes=minute + rng.randint(0, 90))
            )
            data.append((key, T0 + timedelta(minutes=minute), created, rng.randint(0, 999)))
    source = trips_source(tmp_path, data)
    frame = entity(
        [
            (rng.randint(0, 32), T0 + timedelta(minutes=rng.randint(-60, 50 * 60)))
            for _ in range(400)
        ],
        row=list(range(400)),
    )
    for ttl in (None, 2 * H, timedelta(minutes=17)):
        for created in (False, True):
            plan = PitPlan((trips(source, ttl),), filter_by_created_timestamp=created)
            both(spark_engine, duck, frame, plan)


# --- entity-less retrieval, materialization, aggregations ----------------------------------


def test_range_and_latest_agree_with_duckdb(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    source = trips_source(
        tmp_path,
        [
            (1, T0 - 3 * H, None, 10),
            (1, T0 - H, T0, 11),
            (1, T0 - H, None, 12),
            (2, T0 - 2 * H, T0, 20),
            (3, T0 + H, None, 30),
        ],
    )
    view = trips(source)
    start, end = T0 - 2 * H, T0
    key = ["driver_id", "event_timestamp", "trips"]
    spark_range = (
        spark_engine.range(view, start, end).to_arrow().sort_by([(k, "ascending") for k in key])
    )
    duck_range = duck.range(view, start, end).to_arrow().sort_by([(k, "ascending") for k in key])
    same(spark_range, duck_range)
    spark_latest = spark_engine.latest(view, start.replace(tzinfo=UTC), end, key_order=True)
    duck_latest = duck.latest(view, start, end, key_order=True)
    assert spark_latest.rows == duck_latest.rows == 2
    same(spark_latest.batches.read_all(), duck_latest.batches.read_all())


def test_latest_streams_batches(spark_engine: Any, tmp_path: Path) -> None:
    n = 5000
    table = pa.table(
        {
            "driver_id": pa.array(range(n), pa.int64()),
            "event_timestamp": pa.array([T0] * n, pa.timestamp("us")),
            "trips": pa.array(range(n), pa.int64()),
        }
    )
    source = SourceRef(write(tmp_path / "many.parquet", table), "parquet", "event_timestamp")
    from pitstop.offline.spark import SparkEngine

    small = SparkEngine(spark_engine.config.model_copy(update={"batch_rows": 1000}))
    latest = small.latest(trips(source), None, T0, key_order=True)
    sizes = [b.num_rows for b in latest.batches]
    assert latest.rows == n == sum(sizes)
    assert max(sizes) <= 1000 and len(sizes) >= 5


def test_windowed_aggregations_agree_with_duckdb(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    rng = random.Random(7)
    events = [
        (
            rng.randint(0, 4),
            T0 + timedelta(minutes=rng.randint(0, 600)),
            rng.choice([None, 1, 2, 5]),
        )
        for _ in range(300)
    ]
    table = pa.table(
        {
            "driver_id": pa.array([e[0] for e in events], pa.int64()),
            "event_timestamp": pa.array([e[1] for e in events], pa.timestamp("us")),
            "fare": pa.array([e[2] for e in events], pa.int64()),
            "created": pa.array(
                [e[1] + timedelta(seconds=i) for i, e in enumerate(events)], pa.timestamp("us")
            ),
        }
    )
    source = SourceRef(
        write(tmp_path / "fares.parquet", table), "parquet", "event_timestamp", "created"
    )
    aggregations = tuple(
        (function, "fare", window, f"{function}_{int(window.total_seconds())}")
        for function in ("count", "sum", "mean", "min", "max", "count_distinct", "last")
        for window in (H, 4 * H)
    )
    join = AggregateJoin("fares", source, ("driver_id",), ("driver_id",), aggregations)
    frame = entity(
        [(rng.randint(0, 5), T0 + timedelta(minutes=rng.randint(-30, 700))) for _ in range(80)]
        + [(None, T0), (1, None)]
    )
    spark_table = spark_engine.aggregate(frame, "event_timestamp", join)
    duck_table = historical_aggregates(duck._connection(), frame, "event_timestamp", join)
    assert spark_table.column_names == duck_table.column_names
    for name in spark_table.column_names:
        got, want = spark_table.column(name).to_pylist(), duck_table.column(name).to_pylist()
        if name.startswith("mean"):
            got = [None if v is None else round(v, 9) for v in got]
            want = [None if v is None else round(v, 9) for v in want]
        assert got == want, name
        assert spark_table.schema.field(name).type == duck_table.schema.field(name).type, name


# --- Spark frames in and out ---------------------------------------------------------------


def test_spark_dataframe_and_sql_entities(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    source = trips_source(tmp_path, [(1, T0 - H, None, 10), (2, T0 - 2 * H, None, 20)])
    other = trips(trips_source(tmp_path, [(2, T0 - H, None, 5)], name="other"), name="o")
    other = ViewJoin("o", other.source, ("driver_id",), ("driver_id",), (("trips", "o_trips"),))
    frame = entity([(2, T0), (1, T0), (3, T0), (1, T0 - 2 * H)], label=["a", "b", "c", "d"])
    plan = PitPlan((trips(source), other))
    spark_frame = spark_engine.spark.createDataFrame(frame).repartition(3)
    in_order = spark_frame.toArrow()  # a frame's order is its partitions' order
    assert sorted(in_order.column("label").to_pylist()) == ["a", "b", "c", "d"]
    want = duck.historical(in_order, plan).to_arrow()
    same(spark_engine.historical(spark_frame, plan).to_arrow(), want)
    spark_frame.createOrReplaceTempView("pitstop_entity_rows")
    query = "SELECT * FROM pitstop_entity_rows"
    got = spark_engine.historical(query, plan).to_arrow()
    key = [("label", "ascending")]
    same(got.sort_by(key), want.sort_by(key))


def test_to_spark_and_to_parquet_with_spark(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    source = trips_source(tmp_path, [(1, T0 - H, None, 10), (2, T0 - 2 * H, None, 20)])
    frame = entity([(2, T0), (1, T0), (3, T0)], label=[1, 2, 3])
    plan = PitPlan((trips(source),))
    job = spark_engine.historical(frame, plan)
    result = job.to_spark()
    assert [r["trips"] for r in result.collect()] == [20, 10, None]
    folder = tmp_path / "training"
    assert job.to_parquet(folder) == 3
    assert folder.is_dir() and list(folder.glob("part-*.parquet"))
    written = pq.read_table(folder)
    assert written.schema.field("event_timestamp").type == pa.timestamp("us", "UTC")
    assert written.column("trips").to_pylist() == [20, 10, None]
    assert written.column("label").to_pylist() == [1, 2, 3]
    with pytest.raises(RetrievalError, match=r"to_spark\(\) needs a result of the Spark"):
        duck.historical(frame, plan).to_spark()


def test_to_spark_runs_transforms_on_executors(spark_engine: Any, tmp_path: Path) -> None:
    import pyarrow.compute as pc

    source = trips_source(tmp_path, [(1, T0 - H, None, 10)])
    job = spark_engine.historical(entity([(1, T0), (2, T0)]), PitPlan((trips(source),)))

    def doubled(batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.append_column("double", pc.multiply(batch.column("trips"), 2))

    got = job.with_transforms([doubled]).to_spark().collect()
    assert [r["double"] for r in got] == [20, None]
    assert job.with_transforms([doubled]).to_arrow().column("double").to_pylist() == [20, None]


def test_spark_table_and_query_sources(
    spark_engine: Any, duck: DuckDBEngine, tmp_path: Path
) -> None:
    file_source = trips_source(tmp_path, [(1, T0 - H, None, 10), (2, T0 - 2 * H, T0, 20)])
    spark = spark_engine.spark
    spark.read.parquet(file_source.path).createOrReplaceTempView("driver_stats_view")
    frame = entity([(1, T0), (2, T0)])
    want = duck.historical(frame, PitPlan((trips(file_source),))).to_arrow()
    for ref in (
        SourceRef("", "parquet", "event_timestamp", "created", table="driver_stats_view"),
        SourceRef(
            "", "parquet", "event_timestamp", "created",
            query="SELECT * FROM driver_stats_view WHERE trips > 0",
        ),
    ):  # fmt: skip
        same(spark_engine.historical(frame, PitPlan((trips(ref),))).to_arrow(), want)
    missing = SourceRef("", "parquet", "event_timestamp", table="no_such_table", name="gone")
    with pytest.raises(DataSourceError, match="Cannot read source 'gone' of view 'driver'"):
        spark_engine.historical(frame, PitPlan((trips(missing),))).to_arrow()


# --- writes --------------------------------------------------------------------------------


def test_append_writes_a_part_file_and_has_rows(spark_engine: Any, tmp_path: Path) -> None:
    main = tmp_path / "events.parquet"
    pushed = tmp_path / "events.parquet.pushed"
    source = SourceRef(str(main), "parquet", "ts", pushed=str(pushed), name="events",
                       field_mapping={"id": "driver_id"})  # fmt: skip
    assert not spark_engine.has_rows(source)
    rows_in = pa.table(
        {
            "driver_id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([T0, T0 + H], pa.timestamp("us")),
            "trips": pa.array([3, 4], pa.int64()),
        }
    )
    spark_engine.append(source, rows_in)
    parts = sorted(pushed.glob("*.parquet"))
    assert len(parts) == 1 and not list(pushed.glob("_staging*"))
    written = pq.read_table(parts[0])
    assert written.column_names == ["id", "ts", "trips"]  # raw names, before the mapping
    assert written.schema.field("ts").type == pa.timestamp("us")  # zone-less stays zone-less
    assert spark_engine.has_rows(source)
    view = ViewJoin("v", source, ("driver_id",), ("driver_id",), (("trips", "trips"),))
    out = spark_engine.historical(entity([(2, T0 + H), (1, T0)]), PitPlan((view,))).to_arrow()
    assert out.column("trips").to_pylist() == [4, 3]
    query = SourceRef("", "parquet", "ts", query="SELECT 1", name="q")
    with pytest.raises(DataSourceError, match="rows cannot be added to a query"):
        spark_engine.append(query, rows_in)


def test_append_to_a_table(spark_engine: Any, tmp_path: Path) -> None:
    spark = spark_engine.spark
    name = f"pitstop_push_{random.randrange(1 << 30)}"
    location = (tmp_path / "warehouse").as_uri()
    spark.sql(
        f"CREATE TABLE {name} (driver_id BIGINT, ts TIMESTAMP, trips BIGINT) USING parquet "
        f"LOCATION '{location}'"
    )
    try:
        source = SourceRef("", "parquet", "ts", table=name)
        assert not spark_engine.has_rows(source)
        table = pa.table(
            {
                "trips": pa.array([5], pa.int64()),
                "driver_id": pa.array([1], pa.int64()),
                "ts": pa.array([T0], pa.timestamp("us", "UTC")),
            }
        )
        spark_engine.append(source, table)
        assert spark_engine.has_rows(source)
        assert spark.table(name).toArrow().to_pylist() == [
            {"driver_id": 1, "ts": T0.replace(tzinfo=UTC), "trips": 5}
        ]
        with pytest.raises(DataSourceError, match="do not match table"):
            spark_engine.append(source, table.drop_columns(["trips"]))
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name}")


# --- errors --------------------------------------------------------------------------------


def test_errors_name_the_view_and_the_fix(spark_engine: Any, tmp_path: Path) -> None:
    source = trips_source(tmp_path, [(1, T0 - H, None, 10)])
    bad_keys = pa.table({"driver_id": ["1"], "event_timestamp": pa.array([T0], pa.timestamp("us"))})
    with pytest.raises(RetrievalError, match="Join key 'driver_id' of view 'driver' is string"):
        spark_engine.historical(bad_keys, PitPlan((trips(source),))).to_arrow()
    missing = ViewJoin("driver", source, ("driver_id",), ("driver_id",), (("tips", "tips"),))
    with pytest.raises(DataSourceError, match="has no column 'tips'"):
        spark_engine.historical(entity([(1, T0)]), PitPlan((missing,))).to_arrow()
    nowhere = SourceRef(str(tmp_path / "nope.parquet"), "parquet", "event_timestamp", name="nope")
    with pytest.raises(DataSourceError, match="does not exist"):
        spark_engine.historical(entity([(1, T0)]), PitPlan((trips(nowhere),))).to_arrow()


# --- through FeatureStore ------------------------------------------------------------------


def _store(repo: Path, offline: dict[str, Any]) -> Any:
    from pitstop import FeatureStore
    from pitstop.config import parse_config

    config = parse_config(
        {
            "project": "spark_repo",
            "registry": str(repo / "registry.db"),
            # the rows are from 2024: keep values older than the TTL readable online
            "online_store": {
                "type": "sqlite",
                "path": str(repo / "online.db"),
                "enforce_ttl": False,
            },
            "offline_store": offline,
        },
        repo_path=repo,
    )
    return FeatureStore(config=config)


def _driver_view(source: Any) -> Any:
    from pitstop import Entity, FeatureView, Field
    from pitstop.types import Float64, Int64

    driver = Entity(name="driver", join_keys=["driver_id"])
    view = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=timedelta(hours=3),
        schema=[Field(name="trips", dtype=Int64), Field(name="rating", dtype=Float64)],
        source=source,
    )
    return [driver, view]


@pytest.mark.slow
def test_feature_store_with_spark_table_source(spark_engine: Any, tmp_path: Path) -> None:
    """A repo whose view reads a Spark table: training set and materialization into SQLite
    through FeatureStore on Spark equal a DuckDB repo over the same rows as a file."""
    from pitstop import FileSource, SparkSource

    rng = random.Random(3)
    data = {
        "driver_id": pa.array([rng.randint(1, 20) for _ in range(200)], pa.int64()),
        "event_timestamp": pa.array(
            [T0 + timedelta(minutes=rng.randint(0, 600)) for _ in range(200)], pa.timestamp("us")
        ),
        "trips": pa.array([rng.randint(0, 99) for _ in range(200)], pa.int64()),
        "rating": pa.array([rng.random() for _ in range(200)], pa.float64()),
    }
    data["created"] = pa.array(
        [t + timedelta(seconds=i) for i, t in enumerate(data["event_timestamp"].to_pylist())],
        pa.timestamp("us"),
    )
    spark_repo, duck_repo = tmp_path / "spark", tmp_path / "duck"
    for repo in (spark_repo, duck_repo):
        repo.mkdir()
    path = write(duck_repo / "stats.parquet", pa.table(data))
    spark_engine.spark.read.parquet(path).createOrReplaceTempView("driver_stats_table")
    table_source = SparkSource(
        table="driver_stats_table",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    file_source = FileSource(
        path="stats.parquet", timestamp_field="event_timestamp", created_timestamp_column="created"
    )
    frame = entity(
        [(rng.randint(0, 22), T0 + timedelta(minutes=rng.randint(0, 700))) for _ in range(100)],
        label=list(range(100)),
    )
    features = ["driver_stats:trips", "driver_stats:rating"]
    with (
        _store(spark_repo, {"type": "spark", "master": "local[2]"}) as spark_store,
        _store(duck_repo, {"type": "duckdb"}) as duck_store,
    ):
        spark_store.apply(_driver_view(table_source))
        duck_store.apply(_driver_view(file_source))
        assert spark_store.get_data_source("driver_stats_table_source") == table_source
        job = spark_store.get_historical_features(frame, features)
        got = job.to_df()
        want = duck_store.get_historical_features(frame, features).to_df()
        assert got.equals(want)
        assert job.to_spark().count() == 100
        end = T0 + timedelta(hours=12)
        spark_store.materialize(T0, end)
        duck_store.materialize(T0, end)
        keys = [{"driver_id": k} for k in range(0, 22)]
        online = spark_store.get_online_features(features, keys).to_dict()
        assert online == duck_store.get_online_features(features, keys).to_dict()
        assert sum(v is not None for v in online["trips"]) > 10

    with _store(tmp_path / "spark", {"type": "duckdb"}) as wrong:
        with pytest.raises(DataSourceError) as info:
            wrong.get_historical_features(frame, features).to_df()
        assert str(info.value) == (
            "SparkSource 'driver_stats_table_source' reads the Spark table "
            "'driver_stats_table', which the configured offline engine cannot read; set "
            "`offline_store: {type: spark}` in feature_store.yaml, or point the source at "
            "Parquet or CSV files (path=...)."
        )
        with pytest.raises(DataSourceError, match="reads the Spark table"):
            wrong.materialize(T0, T0 + H)


# --- the SparkSource definition (no Spark needed) ------------------------------------------


def test_spark_source_definition_round_trips_and_checks() -> None:
    from pitstop import SparkSource
    from pitstop.definitions.sources import source_from_spec
    from pitstop.errors import DefinitionError

    by_table = SparkSource(
        table="analytics.driver_stats",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        field_mapping={"id": "driver_id"},
        tags={"team": "ml"},
    )
    assert by_table.name == "driver_stats_source"
    assert by_table.in_catalog and by_table.path == ""
    by_query = SparkSource(name="recent", query="SELECT * FROM t", timestamp_field="ts")
    by_path = SparkSource(name="files", path="data/stats.csv", timestamp_field="ts")
    assert by_path.file_format == "csv" and not by_path.in_catalog
    for source in (by_table, by_query, by_path):
        spec = source.to_spec()
        assert spec["type"] == "spark"
        assert source_from_spec(spec) == source
    assert by_path.resolve_path("/repo") == "/repo/data/stats.csv"
    with pytest.raises(DataSourceError, match="only the Spark offline engine"):
        by_table.resolve_path("/repo")
    with pytest.raises(DefinitionError, match="exactly one of table, query or path"):
        SparkSource(table="t", query="SELECT 1", timestamp_field="ts")
    with pytest.raises(DefinitionError, match="got none"):
        SparkSource(name="nothing", timestamp_field="ts")
    with pytest.raises(DefinitionError, match="over a query needs a name"):
        SparkSource(query="SELECT 1", timestamp_field="ts")


def test_feast_spark_source_import_path(tmp_path: Path) -> None:
    from pitstop import SparkSource
    from pitstop.feast_imports import FeastImports

    with FeastImports(tmp_path) as feast:
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
            SparkSource as FeastSparkSource,
        )

        made = FeastSparkSource(table="t", timestamp_field="ts")
    assert isinstance(made, SparkSource)
    assert not feast.problems


@pytest.mark.slow
def test_benchmark_runs_at_small_scale(spark_engine: Any, tmp_path: Path) -> None:
    """``make bench-spark`` at 1/10000 of its sizes: both engines, results compared."""
    import subprocess
    import sys

    script = Path(__file__).parent.parent / "benchmarks" / "spark_bench.py"
    command = [sys.executable, str(script), "--scale", "0.0001", "--workloads", "pit10"]
    command += ["--driver-memory", "1g", "--shuffle-partitions", "4", "--data-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("| pit10")]
    assert [line.split("|")[3].strip() for line in lines] == ["spark", "duckdb"]
    assert all(line.split("|")[7].strip() == "yes" for line in lines)


def test_offline_push_to_a_spark_table_source_is_refused(tmp_path: Path) -> None:
    from pitstop import PushSource, SparkSource

    table_source = SparkSource(table="events", timestamp_field="event_timestamp")
    push = PushSource(name="events_push", batch_source=table_source)
    with _store(tmp_path, {"type": "duckdb"}) as store:
        store.apply([*_driver_view(push)])  # a table's columns are not checked at apply
        rows = {
            "driver_id": [1],
            "event_timestamp": [T0.replace(tzinfo=UTC)],
            "trips": [3],
            "rating": [0.5],
        }
        assert store.push("events_push", rows, to="online") == 1
        with pytest.raises(RetrievalError, match="push to it online only"):
            store.push("events_push", rows, to="offline")
