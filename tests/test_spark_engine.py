"""What only the Spark offline engine does: Spark DataFrames and SQL as entity frames, results
as Spark DataFrames and Spark-written Parquet, SparkSource tables and queries, the process's one
SparkSession. The point-in-time rules, the write side and the errors every engine shares run in
the offline conformance suite (tests/conformance/offline). One local SparkSession (``local[2]``)
serves the whole session; without pyspark or Java the tests are skipped (with ``CI=true``:
failed).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import require_service
from pitstop.errors import BackendUnavailableError, DataSourceError, RetrievalError
from pitstop.offline import DuckDBEngine, PitPlan, SourceRef, ViewJoin

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


def test_a_catalog_source_takes_no_appends(spark_engine: Any) -> None:
    table = SourceRef("", "parquet", "ts", table="events", name="events")
    assert table.pushed == ""
    rows_in = pa.table({"ts": pa.array([T0], pa.timestamp("us"))})
    with pytest.raises(RetrievalError, match="'events' is a SparkSource over a Spark table"):
        spark_engine.append(table, rows_in)
    assert spark_engine.labels(table, "") == {}


def test_engines_share_the_process_session(spark_engine: Any) -> None:
    from pitstop.offline.spark import SparkEngine, SparkOfflineConfig
    from pitstop.offline.spark.session import spark_session

    other = SparkEngine(SparkOfflineConfig(master="local[1]", app_name="other"))
    assert other.spark is spark_engine.spark is spark_session()
    other.close()  # forgets the session, which keeps running for the others
    assert not spark_engine.spark.sparkContext._jsc.sc().isStopped()


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
