"""What only the DuckDB engine has: its join strategies, its SQL, its spill folder.

The rules every engine follows are pinned by the conformance suite (``tests/conformance/``),
which runs on the DuckDB engine too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from conformance.offline.test_aggregations import join_of, source
from conformance.offline.test_pit import (
    DAY,
    T0,
    H,
    driver_source,
    entity,
    range_source,
    run,
    trips_view,
    write_parquet,
)
from pitstop.offline import DuckDBEngine, PitPlan, SourceRef, ViewJoin
from pitstop.offline.duckdb.aggregate import aggregate_sql
from pitstop.offline.pit import AggregateJoin


@pytest.fixture
def engine() -> Iterator[DuckDBEngine]:
    eng = DuckDBEngine(threads=2)
    yield eng
    eng.close()


def test_join_strategy_follows_rows_per_key(engine: DuckDBEngine, tmp_path: Path) -> None:
    """Few entity rows per key: hash join; many: ASOF (sort); a mix: both, same answers."""
    src = driver_source(
        tmp_path, [(k, T0 + i * H, T0, 10 * k + i) for k in range(3) for i in range(3)]
    )
    view = trips_view(src, ttl=DAY)
    light = [(k, T0 + 90 * timedelta(minutes=1)) for k in range(3)]
    heavy = [(0, T0 + i * timedelta(minutes=10)) for i in range(20)]
    cases = {"light": (light, False, True), "heavy": (heavy, True, False)}
    cases["mixed"] = (light + heavy, True, True)
    for name, (rows, asof, hashed) in cases.items():
        job = engine.historical(entity(rows), PitPlan((view,)))
        sql = job.to_sql()
        assert ("ASOF JOIN" in sql) == asof, name
        assert ("GROUP BY" in sql) == hashed, name
        expected = [None if t < T0 else 10 * k + min(2, (t - T0) // H) for k, t in rows]
        assert job.to_arrow().column("trips").to_pylist() == expected, name


def test_spill_folder_exists_only_while_duckdb_spills(tmp_path: Path) -> None:
    import os

    engine = DuckDBEngine(memory_limit="60MB", threads=1)
    try:
        con = engine.cursor()
        con.execute("SELECT 42").fetchall()
        spill = engine._own_temp
        assert spill is not None and not os.path.exists(spill)  # nothing spilled, nothing made
        assert os.stat(os.path.dirname(spill)).st_mode & 0o777 == 0o700
        con.execute(
            "SELECT md5(range::VARCHAR) AS h, count(*) FROM range(2000000) GROUP BY h ORDER BY h"
        ).fetchall()
        assert os.path.isdir(spill)  # DuckDB spilled here (it may have removed its files)
        con.close()
    finally:
        engine.close()
    assert not os.path.exists(spill)


def test_sql_entity_reading_a_file(engine: DuckDBEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    path = write_parquet(tmp_path / "entity.parquet", entity([(1, T0), (1, T0 - H)]).to_pydict())
    out = run(engine, f"SELECT * FROM read_parquet('{path}')", trips_view(src))
    assert out.column("trips").to_pylist() == [10, None]


def test_range_shows_its_sql(engine: DuckDBEngine, tmp_path: Path) -> None:
    view = ViewJoin("d", range_source(tmp_path), ("driver",), ("driver_id",), (("trips", "t"),))
    assert "read_parquet" in engine.range(view, None, None).to_sql()


def test_job_shows_its_sql(engine: DuckDBEngine, tmp_path: Path) -> None:
    src = SourceRef(str(tmp_path / "later.parquet"), "parquet", "event_timestamp", "created")
    job = engine.historical(entity([(1, T0)]), PitPlan((trips_view(src),)))
    driver_source(tmp_path, [(1, T0, T0, 10)], name="later")  # the file appears after the call
    sql = job.to_sql()
    assert "arg_max" in sql and "later.parquet" in sql


def test_aggregations_run_in_the_join_query(engine: DuckDBEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    sums = (("sum", "trips", DAY, "trips_1d"),)
    join = AggregateJoin("sums", src, ("driver_id",), ("driver_id",), sums)
    job = engine.historical(entity([(1, T0)]), PitPlan((trips_view(src),), aggregates=(join,)))
    sql = job.to_sql()
    assert sql.count("WITH ") == 1 and "arg_max" in sql and "unnest(range(" in sql
    assert job.to_arrow().select(["trips", "trips_1d"]).to_pylist() == [
        {"trips": 10, "trips_1d": 10}
    ]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def test_aggregate_sql_on_plain_relations(con: duckdb.DuckDBPyConnection) -> None:
    """The SQL contract: an entity relation and a source in ``source_select``'s layout."""
    con.execute(
        "CREATE TABLE ent AS SELECT * FROM (VALUES (7, 1, TIMESTAMP '2024-05-01 12:00:00'),"
        " (3, 1, TIMESTAMP '2024-05-01 12:05:00')) t(id, driver, t)"
    )
    con.execute(
        "CREATE TABLE src AS SELECT * FROM (VALUES (1, TIMESTAMP '2024-05-01 11:55:00', 2.0),"
        " (1, TIMESTAMP '2024-05-01 12:01:00', 3.0)) t(__k0, __ts, __f0)"
    )
    join = join_of(source("/unused.parquet"), ("sum", "count"))
    sql = aggregate_sql("ent", "id", "t", join, "SELECT * FROM src", types={"x": pa.float64()})
    assert con.sql(sql).fetchall() == [(3, 3.0, 1), (7, 2.0, 1)]
