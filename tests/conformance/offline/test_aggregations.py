"""Hand-made cases for offline point-in-time windowed aggregations, on every engine.

The aggregations are part of the point-in-time plan (``PitPlan.aggregates``); each case runs a
plan of one :class:`AggregateJoin` and reads its output columns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop.errors import DataSourceError, DefinitionError, RetrievalError
from pitstop.offline import OfflineEngine
from pitstop.offline.pit import AggregateJoin, PitPlan, SourceRef

from .conftest import Harness

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
W = timedelta(minutes=10)
FUNCS = ("count", "sum", "mean", "min", "max", "last", "count_distinct")
EMPTY = {"count": 0, "sum": None, "mean": None, "min": None, "max": None, "last": None}


def aggregates(
    engine: OfflineEngine, entity: pa.Table, ts_column: str, join: AggregateJoin
) -> pa.Table:
    """``join``'s outputs for each row of ``entity`` (a plan of that join alone)."""
    plan = PitPlan((), ts_column, aggregates=(join,))
    return engine.historical(entity, plan).to_arrow().select(list(join.output_columns))


def write(path: Path, rows: Sequence[dict[str, Any]], schema: pa.Schema | None = None) -> str:
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), path)
    return str(path)


def source(path: str, **kwargs: Any) -> SourceRef:
    return SourceRef(path=path, file_format="auto", timestamp_field="ts", **kwargs)


def join_of(
    src: SourceRef,
    functions: Sequence[str] = FUNCS,
    column: str = "x",
    window: timedelta = W,
    keys: tuple[str, ...] = ("driver",),
    source_keys: tuple[str, ...] | None = None,
) -> AggregateJoin:
    return AggregateJoin(
        name="stats",
        source=src,
        entity_keys=keys,
        source_keys=source_keys or keys,
        aggregations=tuple((f, column, window, f) for f in functions),
    )


def entity(drivers: Sequence[Any], times: Sequence[Any], **extra: Sequence[Any]) -> pa.Table:
    return pa.table({"driver": drivers, "event_timestamp": times, **extra})


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def test_window_is_open_left_closed_right(tmp_path: Path, engine: OfflineEngine) -> None:
    t = T0
    path = write(
        tmp_path / "ev.parquet",
        [
            {"driver": 1, "ts": t - W, "x": 1},  # exactly t - w: excluded
            {"driver": 1, "ts": t - W + US, "x": 10},  # one microsecond inside
            {"driver": 1, "ts": t - timedelta(minutes=5), "x": 10},
            {"driver": 1, "ts": t, "x": 100},  # exactly t: included
            {"driver": 1, "ts": t + US, "x": 1000},  # after t: excluded
            {"driver": 2, "ts": t, "x": 7},  # another entity
        ],
    )
    out = aggregates(engine, entity([1], [t]), "event_timestamp", join_of(source(path)))
    assert rows(out) == [
        {
            "count": 3,
            "sum": 120,
            "mean": 40.0,
            "min": 10,
            "max": 100,
            "last": 100,
            "count_distinct": 2,
        }
    ]
    assert out.schema.field("sum").type == pa.int64()
    assert out.schema.field("mean").type == pa.float64()
    assert out.schema.field("count").type == pa.int64()


def test_every_row_in_input_order_with_duplicates(tmp_path: Path, engine: OfflineEngine) -> None:
    path = write(
        tmp_path / "ev.parquet",
        [{"driver": 1, "ts": T0 + timedelta(minutes=m), "x": float(m)} for m in range(0, 30, 3)],
    )
    times = [T0 + timedelta(minutes=m) for m in (20, 5, 20, -1, 29, 40)]
    table = entity([1, 1, 1, 1, 1, 1], times, label=[0, 1, 2, 3, 4, 5])
    join = join_of(source(path), ("count", "sum", "last"))
    out = rows(aggregates(engine, table, "event_timestamp", join))
    empty = {"count": 0, "sum": None, "last": None}
    assert out == [
        {"count": 3, "sum": 45.0, "last": 18.0},  # (10, 20]: 12, 15, 18
        {"count": 2, "sum": 3.0, "last": 3.0},  # (-5, 5]: 0, 3
        {"count": 3, "sum": 45.0, "last": 18.0},
        empty,  # before any event
        {"count": 3, "sum": 72.0, "last": 27.0},  # (19, 29]: 21, 24, 27
        empty,  # after every event left the window
    ]


def test_compound_keys_with_different_names(tmp_path: Path, engine: OfflineEngine) -> None:
    path = write(
        tmp_path / "ev.parquet",
        [
            {"drv": 1, "region": "eu", "ts": T0 - timedelta(minutes=1), "x": 1},
            {"drv": 1, "region": "us", "ts": T0 - timedelta(minutes=1), "x": 2},
            {"drv": 2, "region": "eu", "ts": T0 - timedelta(minutes=1), "x": 4},
            {"drv": 1, "region": "eu", "ts": T0 - timedelta(minutes=2), "x": 8},
        ],
    )
    join = join_of(
        source(path),
        ("sum", "count"),
        keys=("driver_id", "region_code"),
        source_keys=("drv", "region"),
    )
    table = pa.table(
        {
            "driver_id": [1, 1, 2, 2, 3],
            "region_code": ["eu", "us", "eu", "us", "eu"],
            "event_timestamp": [T0] * 5,
        }
    )
    out = rows(aggregates(engine, table, "event_timestamp", join))
    assert [r["sum"] for r in out] == [9, 2, 4, None, None]
    assert [r["count"] for r in out] == [2, 1, 1, 0, 0]


def test_entity_rows_before_events_and_null_keys_or_times(
    tmp_path: Path, engine: OfflineEngine
) -> None:
    path = write(tmp_path / "ev.parquet", [{"driver": 1, "ts": T0, "x": 5}])
    table = entity(
        [1, None, 1, 1],
        [T0 - timedelta(days=1), T0, None, T0],
    )
    out = rows(aggregates(engine, table, "event_timestamp", join_of(source(path))))
    empty = {**EMPTY, "count_distinct": 0}
    assert out[:3] == [empty, empty, empty]
    assert out[3]["count"] == 1


def test_nulls_are_ignored_and_count_counts_non_null(tmp_path: Path, engine: OfflineEngine) -> None:
    path = write(
        tmp_path / "ev.parquet",
        [
            {"driver": 1, "ts": T0 - timedelta(minutes=3), "x": 2.0},
            {"driver": 1, "ts": T0 - timedelta(minutes=2), "x": None},
            {"driver": 1, "ts": T0 - timedelta(minutes=1), "x": None},
            {"driver": 2, "ts": T0 - timedelta(minutes=1), "x": None},
        ],
    )
    out = rows(
        aggregates(engine, entity([1, 2], [T0, T0]), "event_timestamp", join_of(source(path)))
    )
    assert out[0] == {
        "count": 1,
        "sum": 2.0,
        "mean": 2.0,
        "min": 2.0,
        "max": 2.0,
        "last": 2.0,  # the latest non-null value
        "count_distinct": 1,
    }
    assert out[1] == {**EMPTY, "count_distinct": 0}


def test_several_windows_in_one_query(tmp_path: Path, engine: OfflineEngine) -> None:
    path = write(
        tmp_path / "ev.parquet",
        [{"driver": 1, "ts": T0 - timedelta(minutes=m), "x": m} for m in (0, 5, 30, 59, 60, 90)],
    )
    join = AggregateJoin(
        name="stats",
        source=source(path),
        entity_keys=("driver",),
        source_keys=("driver",),
        aggregations=(
            ("count", "x", timedelta(minutes=10), "n_10m"),
            ("sum", "x", timedelta(hours=1), "sum_1h"),
            ("avg", "x", timedelta(hours=1), "avg_1h"),
            ("max", "x", timedelta(hours=2), "max_2h"),
            ("count", "x", timedelta(hours=1), "n_1h"),
        ),
    )
    out = rows(aggregates(engine, entity([1], [T0]), "event_timestamp", join))
    assert out == [{"n_10m": 2, "sum_1h": 94, "avg_1h": 23.5, "max_2h": 90, "n_1h": 4}]


def test_strings(tmp_path: Path, engine: OfflineEngine) -> None:
    path = write(
        tmp_path / "ev.parquet",
        [
            {"driver": 1, "ts": T0 - timedelta(minutes=3), "x": "pear"},
            {"driver": 1, "ts": T0 - timedelta(minutes=1), "x": "apple"},
            {"driver": 1, "ts": T0 - timedelta(minutes=2), "x": "pear"},
        ],
    )
    join = join_of(source(path), ("min", "max", "last", "count_distinct", "count"))
    out = rows(aggregates(engine, entity([1], [T0]), "event_timestamp", join))
    assert out == [
        {"min": "apple", "max": "pear", "last": "apple", "count_distinct": 2, "count": 3}
    ]


def test_last_ties_created_timestamp_then_file_order(tmp_path: Path, engine: OfflineEngine) -> None:
    t = T0 - timedelta(minutes=1)
    folder = tmp_path / "parts"
    folder.mkdir()
    write(
        folder / "a.parquet", [{"driver": 1, "ts": t, "x": "a1"}, {"driver": 1, "ts": t, "x": "a2"}]
    )
    write(
        folder / "b.parquet", [{"driver": 1, "ts": t, "x": "b1"}, {"driver": 2, "ts": t, "x": "z"}]
    )
    write(
        folder / "c.parquet", [{"driver": 2, "ts": t, "x": "c"}, {"driver": 2, "ts": t, "x": "a"}]
    )
    out = aggregates(
        engine, entity([1, 2], [T0, T0]), "event_timestamp", join_of(source(str(folder)), ("last",))
    )
    assert rows(out) == [{"last": "b1"}, {"last": "a"}]  # later file, then later row

    created = write(
        tmp_path / "created.parquet",
        [
            {"driver": 1, "ts": t, "created": T0 - timedelta(seconds=5), "x": "newest"},
            {"driver": 1, "ts": t, "created": T0 - timedelta(seconds=9), "x": "older"},
            {"driver": 1, "ts": t, "created": None, "x": "no created"},
        ],
    )
    join = join_of(source(created, created_timestamp_column="created"), ("last",))
    out = aggregates(engine, entity([1], [T0]), "event_timestamp", join)
    assert rows(out) == [{"last": "newest"}]


def test_csv_source_and_last_ties_in_one_csv_file(tmp_path: Path, engine: OfflineEngine) -> None:
    path = tmp_path / "ev.csv"
    path.write_text(
        "driver,ts,x\n"
        "1,2024-05-01T11:59:00,5\n"
        "1,2024-05-01T11:59:00,9\n"
        "1,2024-05-01T11:59:00,7\n"
        "1,2024-05-01T11:58:00,1\n"
    )
    join = join_of(source(str(path)), ("last", "sum", "count"))
    out = aggregates(engine, entity([1], [T0]), "event_timestamp", join)
    assert rows(out) == [{"last": 9, "sum": 22, "count": 4}]  # a tie inside a CSV: greater value


def test_timestamps_naive_utc_aware_and_iso(tmp_path: Path, engine: OfflineEngine) -> None:
    seoul = timezone(timedelta(hours=9))
    path = write(
        tmp_path / "ev.parquet",
        [
            {"driver": 1, "ts": (T0 - timedelta(minutes=1)).astimezone(seoul), "x": 1},
            {"driver": 1, "ts": (T0 - timedelta(minutes=20)).astimezone(seoul), "x": 2},
        ],
    )
    join = join_of(source(path), ("sum", "min"), column="x")
    times: list[Any] = [T0.astimezone(seoul), T0.replace(tzinfo=None)]
    for table in (
        entity([1, 1], times[:1] * 2),
        entity([1, 1], times[1:] * 2),
        entity([1, 1], ["2024-05-01T21:00:00+09:00", "2024-05-01 12:00:00"]),
    ):
        assert (
            rows(aggregates(engine, table, "event_timestamp", join)) == [{"sum": 1, "min": 1}] * 2
        )
    stamps = join_of(source(path), ("max", "last"), column="ts")
    out = aggregates(engine, entity([1], [T0]), "event_timestamp", stamps)
    assert out.schema.field("max").type == pa.timestamp("us", "UTC")
    assert rows(out) == [{"max": T0 - timedelta(minutes=1), "last": T0 - timedelta(minutes=1)}]


def test_field_mapping(tmp_path: Path, engine: OfflineEngine) -> None:
    path = write(
        tmp_path / "ev.parquet",
        [{"raw_driver": 1, "raw_ts": T0, "raw_x": 3}],
    )
    src = source(path, field_mapping={"raw_driver": "driver", "raw_ts": "ts", "raw_x": "x"})
    out = aggregates(engine, entity([1], [T0]), "event_timestamp", join_of(src, ("sum",)))
    assert rows(out) == [{"sum": 3}]


def test_empty_entity_frame(tmp_path: Path, engine: OfflineEngine) -> None:
    path = write(tmp_path / "ev.parquet", [{"driver": 1, "ts": T0, "x": 3}])
    table = pa.table(
        {"driver": pa.array([], pa.int64()), "event_timestamp": pa.array([], pa.timestamp("us"))}
    )
    out = aggregates(engine, table, "event_timestamp", join_of(source(path), ("count",)))
    assert out.num_rows == 0
    assert out.column_names == ["count"]


def test_the_machines_time_zone_does_not_matter(
    tmp_path: Path, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ev.csv"
    path.write_text("driver,ts,x\n1,2024-05-01 11:59:00,5\n")  # no offset: UTC
    monkeypatch.setenv("TZ", "Asia/Seoul")
    time.tzset()
    try:
        engine = harness.engine(tmp_path)
        sums = aggregates(engine, entity([1], [T0]), "event_timestamp", join_of(
            source(str(path)), ("sum",)))  # fmt: skip
        latest = aggregates(engine, entity([1], [T0]), "event_timestamp", join_of(
            source(str(path)), ("max",), column="ts"))  # fmt: skip
        engine.close()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert rows(sums) == [{"sum": 5}]  # 11:59 read as Seoul time would be 02:59 UTC
    assert rows(latest) == [{"max": T0 - timedelta(minutes=1)}]


def test_errors(tmp_path: Path, engine: OfflineEngine) -> None:
    path = write(tmp_path / "ev.parquet", [{"driver": 1, "ts": T0, "x": 3}])
    with pytest.raises(DataSourceError, match="no column 'y'"):
        aggregates(
            engine,
            entity([1], [T0]),
            "event_timestamp",
            join_of(source(path), ("sum",), column="y"),
        )
    with pytest.raises(DataSourceError, match="does not exist"):
        aggregates(
            engine,
            entity([1], [T0]),
            "event_timestamp",
            join_of(source(str(tmp_path / "nope.parquet"))),
        )
    with pytest.raises(RetrievalError, match="Join key 'driver'"):
        aggregates(engine, entity(["1"], [T0]), "event_timestamp", join_of(source(path)))
    two = entity([1], [T0]).append_column("seen", pa.array([T0], pa.timestamp("us")))
    with pytest.raises(RetrievalError, match=r"no timestamp column 'ts' but 2 .*'event_tim"):
        aggregates(engine, two, "ts", join_of(source(path)))
    with pytest.raises(DefinitionError, match="not supported"):
        join_of(source(path), ("median",))
    with pytest.raises(DefinitionError, match="window"):
        join_of(source(path), ("sum",), window=timedelta(0))
    with pytest.raises(DefinitionError, match="more than once"):
        AggregateJoin(
            "v",
            source(path),
            ("driver",),
            ("driver",),
            (("sum", "x", W, "a"), ("max", "x", W, "a")),
        )


def test_entity_times_near_the_oldest_datetime(tmp_path: Path, engine: OfflineEngine) -> None:
    early = datetime(1, 1, 1, 0, 5, tzinfo=UTC)
    path = write(tmp_path / "ev.parquet", [{"driver": 1, "ts": early, "x": 3}])
    join = join_of(source(path), ("sum", "count"), window=timedelta(days=2))
    out = aggregates(engine, entity([1, 1], [early, T0]), "event_timestamp", join)
    assert rows(out) == [{"sum": 3, "count": 1}, {"sum": None, "count": 0}]
