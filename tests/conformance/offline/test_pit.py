"""Point-in-time retrieval rules (DESIGN.md §3), one small hand-made case per rule.

The rules run on every engine configuration (``config_engine``: the DuckDB engine under each
join strategy too); checks of inputs and messages on every engine (``engine``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pitstop.errors import DataSourceError, RetrievalError
from pitstop.offline import OfflineEngine, PitPlan, SourceRef, ViewJoin

from .conftest import Harness

T0 = datetime(2024, 5, 1, 12, 0, 0)
DAY = timedelta(days=1)
H = timedelta(hours=1)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def write_parquet(path: Path, rows: dict[str, Any], schema: pa.Schema | None = None) -> str:
    pq.write_table(pa.table(rows, schema=schema), path)
    return str(path)


def driver_source(
    tmp_path: Path,
    rows: Sequence[tuple[int, datetime, datetime | None, int | None]],
    *,
    name: str = "driver_stats",
) -> SourceRef:
    """A source (driver_id, event_timestamp, created, trips) from tuples."""
    path = write_parquet(
        tmp_path / f"{name}.parquet",
        {
            "driver_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_timestamp": pa.array([r[1] for r in rows], pa.timestamp("us")),
            "created": pa.array([r[2] for r in rows], pa.timestamp("us")),
            "trips": pa.array([r[3] for r in rows], pa.int64()),
        },
    )
    return SourceRef(path, "parquet", "event_timestamp", "created", {}, name)


def trips_view(source: SourceRef, ttl: timedelta | None = None, name: str = "driver") -> ViewJoin:
    return ViewJoin(name, source, ("driver_id",), ("driver_id",), (("trips", "trips"),), ttl)


def entity(rows: Sequence[tuple[int, datetime]], **extra: list[Any]) -> pa.Table:
    return pa.table(
        {
            "driver_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_timestamp": pa.array([r[1] for r in rows], pa.timestamp("us")),
            **extra,
        }
    )


def run(engine: OfflineEngine, ent: Any, *views: ViewJoin, created: bool = False) -> pa.Table:
    plan = PitPlan(tuple(views), filter_by_created_timestamp=created)
    return engine.historical(ent, plan).to_arrow()


# -- candidate window and TTL ----------------------------------------------------------------


def test_ttl_is_inclusive_at_both_ends(config_engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    us = timedelta(microseconds=1)
    ent = entity([(1, T0 - us), (1, T0), (1, T0 + DAY), (1, T0 + DAY + us)])
    out = run(config_engine, ent, trips_view(src, ttl=DAY))
    assert out.column("trips").to_pylist() == [None, 10, 10, None]


@pytest.mark.parametrize("ttl", [None, timedelta(0)])
def test_no_ttl_and_zero_ttl_never_expire(
    config_engine: OfflineEngine, tmp_path: Path, ttl: timedelta | None
) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10), (1, T0 + H, T0 + H, 11)])
    ent = entity([(1, T0 + 3650 * DAY), (1, T0 + 30 * H)])
    assert run(config_engine, ent, trips_view(src, ttl)).column("trips").to_pylist() == [11, 11]


def test_entity_before_first_row_gets_nulls(config_engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0 - DAY, T0, 20)])
    ent = entity([(1, T0 - H), (3, T0), (2, T0)])
    assert run(config_engine, ent, trips_view(src)).column("trips").to_pylist() == [None, None, 20]


def test_latest_candidate_wins(config_engine: OfflineEngine, tmp_path: Path) -> None:
    rows = [(1, T0 + i * H, T0, 10 + i) for i in (3, 0, 2, 1)]
    src = driver_source(tmp_path, rows)
    ent = entity([(1, T0 + 2 * H), (1, T0 + 30 * H), (1, T0 + H + timedelta(seconds=1))])
    assert run(config_engine, ent, trips_view(src)).column("trips").to_pylist() == [12, 13, 11]


def test_created_timestamp_breaks_event_time_ties(
    config_engine: OfflineEngine, tmp_path: Path
) -> None:
    rows = [
        (1, T0, T0 + 2 * H, 12),
        (1, T0, T0 + 5 * H, 15),
        (1, T0, T0 + H, 11),
        (2, T0, None, 20),  # a missing created timestamp loses to a present one
        (2, T0, T0, 21),
    ]
    src = driver_source(tmp_path, rows)
    ent = entity([(1, T0), (2, T0 + H)])
    assert run(config_engine, ent, trips_view(src)).column("trips").to_pylist() == [15, 21]


def test_filter_by_created_timestamp(config_engine: OfflineEngine, tmp_path: Path) -> None:
    rows = [
        (1, T0, T0, 10),
        (1, T0 + H, T0 + 5 * H, 11),  # written late: not visible before T0 + 5h
        (2, T0, None, 20),  # no created timestamp: visible from its event time
    ]
    src = driver_source(tmp_path, rows)
    ent = entity([(1, T0 + 2 * H), (1, T0 + 5 * H), (2, T0)])
    view = trips_view(src)
    assert run(config_engine, ent, view).column("trips").to_pylist() == [11, 11, 20]
    assert run(config_engine, ent, view, created=True).column("trips").to_pylist() == [10, 11, 20]


def test_filter_by_created_timestamp_with_ttl(config_engine: OfflineEngine, tmp_path: Path) -> None:
    rows = [(1, T0, T0, 10), (1, T0 + 2 * H, T0 + 9 * H, 12)]
    src = driver_source(tmp_path, rows)
    ent = entity([(1, T0 + 3 * H), (1, T0 + 9 * H)])
    out = run(config_engine, ent, trips_view(src, ttl=2 * H), created=True)
    assert out.column("trips").to_pylist() == [None, None]  # the visible row is too old
    out = run(config_engine, ent, trips_view(src, ttl=8 * H), created=True)
    assert out.column("trips").to_pylist() == [10, 12]


def test_two_views_different_ttls_and_compound_key(
    config_engine: OfflineEngine, tmp_path: Path
) -> None:
    drivers = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0, T0, 20)])
    pairs_path = write_parquet(
        tmp_path / "pairs.parquet",
        {
            "driver": pa.array([1, 1, 2], pa.int32()),
            "customer": ["a", "b", "a"],
            "ts": pa.array([T0 - DAY, T0, T0], pa.timestamp("us")),
            "rate": [0.5, 0.7, 0.9],
        },
    )
    pairs = SourceRef(pairs_path, "parquet", "ts", None, {}, "pairs")
    pair_view = ViewJoin(
        "pair",
        pairs,
        ("driver_id", "customer_id"),
        ("driver", "customer"),
        (("rate", "pair__rate"),),
        ttl=2 * DAY,
    )
    ent = entity(
        [(1, T0 + H), (1, T0 + DAY + H), (2, T0 + 3 * DAY), (1, T0 + DAY)],
        customer_id=["a", "b", "a", "a"],
    )
    out = run(config_engine, ent, trips_view(drivers, ttl=DAY), pair_view)
    assert out.column_names == [
        "driver_id",
        "event_timestamp",
        "customer_id",
        "trips",
        "pair__rate",
    ]
    assert out.column("trips").to_pylist() == [10, None, None, 10]
    assert out.column("pair__rate").to_pylist() == [0.5, 0.7, None, 0.5]


# -- shape of the output ---------------------------------------------------------------------


def test_pass_through_duplicates_and_input_order(
    config_engine: OfflineEngine, tmp_path: Path
) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0, T0, 20), (3, T0 + H, T0, 30)])
    keys = [3, 1, 2, 1, 3, 3, 9]
    times = [T0 + 2 * H, T0, T0, T0, T0, T0 + 2 * H, T0]
    label = [0.1, 0.2, 0.3, 0.2, 0.5, 0.1, 0.7]
    ent = entity(list(zip(keys, times, strict=True)), label=label, note=list("abcdefg"))
    out = run(config_engine, ent, trips_view(src))
    assert out.num_rows == 7
    assert out.column_names == ["driver_id", "event_timestamp", "label", "note", "trips"]
    assert out.column("driver_id").to_pylist() == keys
    assert out.column("label").to_pylist() == label
    assert out.column("note").to_pylist() == list("abcdefg")
    assert out.column("trips").to_pylist() == [30, 10, 20, 10, None, 30, None]


def test_many_rows_come_back_in_order(config_engine: OfflineEngine, tmp_path: Path) -> None:
    n = 5000
    src = driver_source(tmp_path, [(k, T0, T0, k) for k in range(50)])
    ent = entity([((i * 7919) % 60, T0 + H) for i in range(n)], idx=list(range(n)))
    out = run(config_engine, ent, trips_view(src))
    assert out.column("idx").to_pylist() == list(range(n))
    expected = [k if k < 50 else None for k in ((i * 7919) % 60 for i in range(n))]
    assert out.column("trips").to_pylist() == expected


def test_empty_entity_frame(config_engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    ent = entity([], label=pa.array([], pa.float64()))
    out = run(config_engine, ent, trips_view(src))
    assert out.num_rows == 0
    assert out.schema.names == ["driver_id", "event_timestamp", "label", "trips"]
    assert out.schema.field("trips").type == pa.int64()
    assert out.schema.field("event_timestamp").type == pa.timestamp("us", "UTC")


def test_empty_pandas_entity_frame(engine: OfflineEngine, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    plan = PitPlan((trips_view(src),))
    typed = pd.DataFrame({"driver_id": pd.Series([], dtype="int64"), "event_timestamp": []})
    for frame in (typed, pd.DataFrame({"driver_id": [], "event_timestamp": []})):
        df = engine.historical(frame, plan).to_df()
        assert list(df.columns) == ["driver_id", "event_timestamp", "trips"]
        assert len(df) == 0
        assert str(df["event_timestamp"].dtype).endswith("UTC]")


def test_null_keys_and_timestamps_match_nothing(
    config_engine: OfflineEngine, tmp_path: Path
) -> None:
    path = write_parquet(
        tmp_path / "s.parquet",
        {
            "driver_id": pa.array([None, 1, 1], pa.int64()),
            "event_timestamp": pa.array([T0, None, T0], pa.timestamp("us")),
            "trips": [1, 2, 3],
        },
    )
    src = SourceRef(path, "parquet", "event_timestamp", None, {}, "s")
    ent = entity([(1, T0)])
    ent = pa.concat_tables(
        [
            ent,
            pa.table(
                {
                    "driver_id": pa.array([None, 1], pa.int64()),
                    "event_timestamp": pa.array([T0, None], pa.timestamp("us")),
                }
            ),
        ]
    )
    assert run(config_engine, ent, trips_view(src)).column("trips").to_pylist() == [3, None, None]
    with_created = driver_source(tmp_path, [(1, T0, T0, 4)], name="with_created")
    for created in (False, True):
        out = run(config_engine, ent, trips_view(with_created), created=created)
        assert out.column("trips").to_pylist() == [4, None, None]


# -- timestamps -------------------------------------------------------------------------------


def _ts_entity(values: pa.Array) -> pa.Table:
    return pa.table(
        {"driver_id": pa.array([1] * len(values), pa.int64()), "event_timestamp": values}
    )


@pytest.mark.parametrize(
    "values",
    [
        pa.array([T0 - H, T0, T0 + 2 * H], pa.timestamp("us")),
        pa.array([T0 - H, T0, T0 + 2 * H], pa.timestamp("ns")),
        pa.array([utc(T0 - H), utc(T0), utc(T0 + 2 * H)], pa.timestamp("us", "UTC")),
        pa.array([utc(T0 - H), utc(T0), utc(T0 + 2 * H)], pa.timestamp("ms", "Asia/Seoul")),
        pa.array(["2024-05-01T11:00:00", "2024-05-01 12:00:00", "2024-05-01T14:00:00"]),
        pa.array(["2024-05-01T11:00:00Z", "2024-05-01T21:00:00+09:00", "2024-05-01T14:00:00Z"]),
        pa.array(["2024-05-01T11:00:00", "2024-05-01T21:00:00+09:00", "2024-05-01T14:00:00Z"]),
    ],
    ids=["naive-us", "naive-ns", "utc", "seoul", "iso-naive", "iso-offsets", "iso-mixed"],
)
def test_entity_timestamps_are_utc(engine: OfflineEngine, tmp_path: Path, values: pa.Array) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10), (1, T0 + H, T0, 11)])
    out = run(engine, _ts_entity(values), trips_view(src))
    assert out.column("trips").to_pylist() == [None, 10, 11]
    ts = out.column("event_timestamp")
    assert ts.type.tz == "UTC"
    assert ts.to_pylist() == [utc(T0 - H), utc(T0), utc(T0 + 2 * H)]


def test_seoul_wall_clock_is_converted(engine: OfflineEngine, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    # 20:59 in Seoul is 11:59 UTC, before the row; 21:00 in Seoul is 12:00 UTC
    times = pd.to_datetime(["2024-05-01 20:59:00", "2024-05-01 21:00:00"]).tz_localize("Asia/Seoul")
    frame = pd.DataFrame({"driver_id": [1, 1], "event_timestamp": times})
    df = engine.historical(frame, PitPlan((trips_view(src),))).to_df()
    assert df["trips"].tolist() == [pd.NA, 10]
    assert str(df["event_timestamp"].dt.tz) == "UTC"
    assert df["event_timestamp"][1] == pd.Timestamp("2024-05-01 12:00:00", tz="UTC")


@pytest.mark.parametrize(
    "source_type",
    [pa.timestamp("us"), pa.timestamp("ns"), pa.timestamp("ms", "Asia/Seoul"), pa.date32()],
)
def test_source_timestamps_are_utc(
    config_engine: OfflineEngine, tmp_path: Path, source_type: pa.DataType
) -> None:
    day = datetime(2024, 5, 1)
    if pa.types.is_date(source_type):
        event = pa.array([day.date(), (day + DAY).date()], source_type)
    elif source_type.tz:
        event = pa.array([utc(day), utc(day + DAY)], source_type)
    else:
        event = pa.array([day, day + DAY], source_type)
    path = write_parquet(
        tmp_path / "s.parquet", {"driver_id": [1, 1], "event_timestamp": event, "trips": [1, 2]}
    )
    src = SourceRef(path, "parquet", "event_timestamp", None, {}, "s")
    ent = entity([(1, day - H), (1, day), (1, day + DAY - H), (1, day + DAY)])
    out = run(config_engine, ent, trips_view(src))
    assert out.column("trips").to_pylist() == [None, 1, 1, 2]


def test_unparseable_entity_timestamp(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    ent = _ts_entity(pa.array(["2024-05-01", "yesterday"]))
    with pytest.raises(RetrievalError, match=r"'yesterday'.*'event_timestamp'"):
        run(engine, ent, trips_view(src))


# -- types ------------------------------------------------------------------------------------


def test_nullable_int_bool_and_list_features(config_engine: OfflineEngine, tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "typed.parquet",
        {
            "driver_id": [1, 2, 3],
            "event_timestamp": pa.array([T0, T0, T0], pa.timestamp("us")),
            "n": pa.array([7, None, 9], pa.int64()),
            "flag": pa.array([True, None, False], pa.bool_()),
            "small": pa.array([1, 2, None], pa.int32()),
            "hist": pa.array([[1, None, 3], None, []], pa.list_(pa.int64())),
            "name": pa.array(["x", None, "z"]),
        },
    )
    src = SourceRef(path, "parquet", "event_timestamp", None, {}, "typed")
    cols = tuple((c, c) for c in ("n", "flag", "small", "hist", "name"))
    view = ViewJoin("typed", src, ("driver_id",), ("driver_id",), cols)
    ent = entity([(1, T0), (2, T0), (3, T0), (4, T0)])
    out = run(config_engine, ent, view)
    assert out.schema.field("n").type == pa.int64()
    assert out.schema.field("flag").type == pa.bool_()
    assert out.schema.field("small").type == pa.int32()
    assert pa.types.is_list(out.schema.field("hist").type)
    assert out.schema.field("hist").type.value_type == pa.int64()
    assert out.column("n").to_pylist() == [7, None, 9, None]
    assert out.column("flag").to_pylist() == [True, None, False, None]
    assert out.column("hist").to_pylist() == [[1, None, 3], None, [], None]
    assert out.column("name").to_pylist() == ["x", None, "z", None]


def test_to_df_keeps_nullable_dtypes(engine: OfflineEngine, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    path = write_parquet(
        tmp_path / "typed.parquet",
        {
            "driver_id": [1, 2],
            "event_timestamp": pa.array([T0, T0], pa.timestamp("us")),
            "n": pa.array([7, 8], pa.int64()),
            "flag": pa.array([True, False]),
            "hist": pa.array([[1, None], [2]], pa.list_(pa.int64())),
        },
    )
    src = SourceRef(path, "parquet", "event_timestamp", None, {}, "typed")
    cols = (("n", "n"), ("flag", "flag"), ("hist", "hist"))
    view = ViewJoin("typed", src, ("driver_id",), ("driver_id",), cols)
    frame = pd.DataFrame({"driver_id": [1, 3], "event_timestamp": [T0, T0]})
    df = engine.historical(frame, PitPlan((view,))).to_df()
    assert str(df["n"].dtype) == "Int64"
    assert str(df["flag"].dtype) == "boolean"
    assert df["n"].tolist() == [7, pd.NA]
    assert len(df["hist"][0]) == 2
    full = engine.historical(frame.iloc[:1], PitPlan((view,))).to_df()
    assert str(full["n"].dtype) == "int64"
    unit = np.datetime_data(frame["event_timestamp"].dtype)[0]  # pandas 2: ns, pandas 3: us
    assert str(full["event_timestamp"].dtype) == f"datetime64[{unit}, UTC]"


def test_wrong_key_type_names_column_view_and_types(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    ent = pa.table({"driver_id": ["1"], "event_timestamp": pa.array([T0], pa.timestamp("us"))})
    with pytest.raises(RetrievalError) as info:
        run(engine, ent, trips_view(src))
    message = str(info.value)
    for part in ("'driver_id'", "'driver'", "string", "int64"):
        assert part in message


def test_float_keys_match_integer_keys(config_engine: OfflineEngine, tmp_path: Path) -> None:
    # pandas turns an integer column with missing values into float64
    src = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0, T0, 20)])
    ent = pa.table(
        {
            "driver_id": pa.array([2.0, None, 1.0]),
            "event_timestamp": pa.array([T0, T0, T0], pa.timestamp("us")),
        }
    )
    assert run(config_engine, ent, trips_view(src)).column("trips").to_pylist() == [20, None, 10]


def test_integer_widths_and_dictionary_keys_match(
    config_engine: OfflineEngine, tmp_path: Path
) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0, T0, 20)])
    ent = pa.table(
        {
            "driver_id": pa.array([2, 1], pa.int16()).dictionary_encode(),
            "event_timestamp": pa.array([T0, T0], pa.timestamp("us")),
        }
    )
    assert run(config_engine, ent, trips_view(src)).column("trips").to_pylist() == [20, 10]


# -- entity frame problems --------------------------------------------------------------------


def test_missing_key_column(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    ent = pa.table({"driver": [1], "event_timestamp": pa.array([T0], pa.timestamp("us"))})
    with pytest.raises(RetrievalError, match=r"no column 'driver_id'.*'driver'.*Did you mean"):
        run(engine, ent, trips_view(src))


def test_missing_timestamp_column(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    ent = pa.table({"driver_id": [1], "event_ts": [T0.isoformat()]})  # text: not inferred
    with pytest.raises(RetrievalError, match=r"timestamp column 'event_timestamp'.*'event_ts'"):
        run(engine, ent, trips_view(src))


def test_feature_name_clashing_with_entity_column(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    ent = entity([(1, T0)], trips=[3])
    with pytest.raises(RetrievalError, match="'trips'"):
        run(engine, ent, trips_view(src))


def test_unknown_entity_object(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    with pytest.raises(RetrievalError, match="list"):
        run(engine, [1, 2], trips_view(src))


@pytest.mark.notimpl(["reference"], reason="takes no SQL entity queries")
def test_sql_entity_input(config_engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0, T0, 20)])
    sql = (
        "SELECT * FROM (VALUES (2, TIMESTAMP '2024-05-01 13:00:00', 'x'),"
        " (1, TIMESTAMP '2024-05-01 11:00:00', 'y'), (2, TIMESTAMP '2024-05-01 12:00:00', 'z'))"
        " AS t(driver_id, event_timestamp, label)"
    )
    out = run(config_engine, sql, trips_view(src))
    assert out.column("label").to_pylist() == ["x", "y", "z"]
    assert out.column("trips").to_pylist() == [20, None, 20]


@pytest.mark.notimpl(["reference"], reason="takes no SQL entity queries")
def test_bad_sql_entity(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    with pytest.raises(RetrievalError, match="entity SQL"):
        run(engine, "SELECT * FROM no_such_table", trips_view(src))


def test_pandas_entity_input(engine: OfflineEngine, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    frame = pd.DataFrame(
        {"driver_id": [1, 1], "event_timestamp": [T0, T0 - H], "y": [1, 0]}, index=[5, 3]
    )
    out = run(engine, frame, trips_view(src))
    assert out.column_names == ["driver_id", "event_timestamp", "y", "trips"]
    assert out.column("trips").to_pylist() == [10, None]


# -- sources ----------------------------------------------------------------------------------


def test_field_mapping(config_engine: OfflineEngine, tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "raw.parquet",
        {
            "id": [1, 1],
            "ts_raw": pa.array([T0, T0], pa.timestamp("us")),
            "made": pa.array([T0, T0 + H], pa.timestamp("us")),
            "trips_raw": [10, 11],
        },
    )
    mapping = {"id": "driver_id", "ts_raw": "event_ts", "made": "created", "trips_raw": "trips"}
    src = SourceRef(path, "parquet", "event_ts", "created", mapping, "raw")
    ent = entity([(1, T0)])
    assert run(config_engine, ent, trips_view(src)).column("trips").to_pylist() == [11]


def test_missing_source_column(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    view = ViewJoin("driver", src, ("driver_id",), ("driver_id",), (("trip", "trip"),))
    with pytest.raises(DataSourceError, match=r"no column 'trip'.*Did you mean 'trips'"):
        run(engine, entity([(1, T0)]), view)


def _partitioned(tmp_path: Path) -> Path:
    root = tmp_path / "stats"
    for day, rows in ((1, [(1, 10), (2, 20)]), (2, [(1, 11)])):
        part = root / f"day=2024-05-0{day}"
        part.mkdir(parents=True)
        ts = datetime(2024, 5, day, 6)
        write_parquet(
            part / "part-0.parquet",
            {
                "driver_id": [r[0] for r in rows],
                "event_timestamp": pa.array([ts] * len(rows), pa.timestamp("us")),
                "trips": [r[1] for r in rows],
            },
        )
    return root


def test_hive_partitioned_directory(config_engine: OfflineEngine, tmp_path: Path) -> None:
    root = _partitioned(tmp_path)
    src = SourceRef(str(root), "parquet", "event_timestamp", None, {}, "stats")
    view = ViewJoin(
        "stats", src, ("driver_id",), ("driver_id",), (("trips", "trips"), ("day", "day"))
    )
    ent = entity([(1, datetime(2024, 5, 3)), (2, datetime(2024, 5, 3)), (1, datetime(2024, 5, 1))])
    out = run(config_engine, ent, view)
    assert out.column("trips").to_pylist() == [11, 20, None]
    assert [str(d) if d else d for d in out.column("day").to_pylist()] == [
        "2024-05-02",
        "2024-05-01",
        None,
    ]


def test_glob_source(config_engine: OfflineEngine, tmp_path: Path) -> None:
    root = _partitioned(tmp_path)
    src = SourceRef(str(root / "*" / "*.parquet"), "parquet", "event_timestamp", None, {}, "g")
    ent = entity([(1, datetime(2024, 5, 3)), (2, datetime(2024, 5, 3))])
    assert run(config_engine, ent, trips_view(src)).column("trips").to_pylist() == [11, 20]


def test_csv_source(config_engine: OfflineEngine, tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    path.write_text(
        "driver_id,event_timestamp,created,trips,rate\n"
        "1,2024-05-01 12:00:00,2024-05-01 12:00:00,10,0.5\n"
        "1,2024-05-01T21:00:00+09:00,2024-05-01 13:00:00,11,0.7\n"
        "2,2024-05-01 12:00:00,2024-05-01 12:00:00,,0.9\n"
    )
    src = SourceRef(str(path), "auto", "event_timestamp", "created", {}, "csv")
    assert src.file_format == "csv"
    cols = (("trips", "trips"), ("rate", "rate"))
    view = ViewJoin("stats", src, ("driver_id",), ("driver_id",), cols)
    ent = entity([(1, T0), (2, T0 + H), (1, T0 - H)])
    out = run(config_engine, ent, view)
    assert out.column("trips").to_pylist() == [11, None, None]
    assert out.column("rate").to_pylist() == [0.7, 0.9, None]
    assert pa.types.is_integer(out.schema.field("trips").type)


def test_csv_written_by_arrow(engine: OfflineEngine, tmp_path: Path) -> None:
    table = pa.table(
        {
            "driver_id": [1],
            "event_timestamp": pa.array([utc(T0)], pa.timestamp("us", "UTC")),
            "trips": [4],
        }
    )
    pacsv.write_csv(table, tmp_path / "a.csv")
    src = SourceRef(str(tmp_path / "a.csv"), "csv", "event_timestamp", None, {}, "a")
    out = run(engine, entity([(1, T0), (1, T0 - H)]), trips_view(src))
    assert out.column("trips").to_pylist() == [4, None]


def test_bad_timestamp_in_source(engine: OfflineEngine, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("driver_id,event_timestamp,trips\n1,2024-05-01 12:00:00,3\n1,not a time,4\n")
    src = SourceRef(str(path), "csv", "event_timestamp", None, {}, "bad_csv")
    with pytest.raises(DataSourceError, match="not a time"):
        run(engine, entity([(1, T0)]), trips_view(src))


def test_missing_file_names_path_and_source(engine: OfflineEngine, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.parquet")
    src = SourceRef(missing, "parquet", "event_timestamp", None, {}, "driver_hourly")
    with pytest.raises(DataSourceError) as info:
        run(engine, entity([(1, T0)]), trips_view(src))
    assert missing in str(info.value)
    assert "'driver_hourly'" in str(info.value)


def test_empty_glob_and_directory(engine: OfflineEngine, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for path in (str(tmp_path / "empty"), str(tmp_path / "*.parquet")):
        src = SourceRef(path, "parquet", "event_timestamp", None, {}, "e")
        with pytest.raises(DataSourceError, match="'e'"):
            run(engine, entity([(1, T0)]), trips_view(src))


def test_unreadable_file(engine: OfflineEngine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    src = SourceRef(str(bad), "parquet", "event_timestamp", None, {}, "bad")
    with pytest.raises(DataSourceError, match="'bad'"):
        run(engine, entity([(1, T0)]), trips_view(src))


# -- entity-less modes ------------------------------------------------------------------------


def range_source(tmp_path: Path) -> SourceRef:
    rows = [
        (1, T0 - DAY, T0, 9),
        (1, T0, T0, 10),
        (1, T0 + H, T0 + H, 11),
        (1, T0 + H, T0 + 2 * H, 12),
        (2, T0 + 2 * H, T0, 20),
        (2, T0 + DAY, T0, 21),
    ]
    return driver_source(tmp_path, rows)


def test_range_returns_rows_in_inclusive_window(engine: OfflineEngine, tmp_path: Path) -> None:
    view = trips_view(range_source(tmp_path))
    out = engine.range(view, T0, utc(T0 + 2 * H)).to_arrow()
    assert out.column_names == ["driver_id", "event_timestamp", "trips"]
    assert out.schema.field("event_timestamp").type == pa.timestamp("us", "UTC")
    rows = sorted(zip(*(out.column(c).to_pylist() for c in out.column_names), strict=True))
    assert rows == [
        (1, utc(T0), 10),
        (1, utc(T0 + H), 11),
        (1, utc(T0 + H), 12),
        (2, utc(T0 + 2 * H), 20),
    ]
    everything = engine.range(view, None, None).to_arrow()
    assert everything.num_rows == 6


def test_latest_per_key_in_window(engine: OfflineEngine, tmp_path: Path) -> None:
    view = trips_view(range_source(tmp_path))
    latest = engine.latest(view, T0 - DAY, T0 + 2 * H)
    assert isinstance(latest.batches, pa.RecordBatchReader)
    assert latest.rows == 2
    out = latest.batches.read_all().sort_by("driver_id")
    assert out.column_names == ["driver_id", "event_timestamp", "created", "trips"]
    assert out.column("trips").to_pylist() == [12, 20]  # created breaks the tie at T0 + 1h
    assert out.column("event_timestamp").to_pylist() == [utc(T0 + H), utc(T0 + 2 * H)]
    early = engine.latest(view, None, T0)
    assert early.rows == 1
    assert early.batches.read_all().column("trips").to_pylist() == [10]
    nothing = engine.latest(view, T0 + 100 * DAY, None)
    assert nothing.rows == 0
    assert nothing.batches.read_all().column_names == out.column_names


def test_latest_in_key_order(engine: OfflineEngine, tmp_path: Path) -> None:
    keys = list(range(-50, 3000))
    random.Random(5).shuffle(keys)
    source = driver_source(tmp_path, [(k, T0, T0, k) for k in keys])
    latest = engine.latest(trips_view(source), None, None, key_order=True)
    assert latest.rows == len(keys)
    ordered = latest.batches.read_all().column("driver_id").to_pylist()
    assert ordered == sorted(keys)


def test_range_and_latest_with_remapped_keys(engine: OfflineEngine, tmp_path: Path) -> None:
    src = range_source(tmp_path)
    view = ViewJoin("d", src, ("driver",), ("driver_id",), (("trips", "t"),))
    out = engine.range(view, T0 + DAY, None).to_arrow()
    assert out.to_pylist() == [{"driver": 2, "event_timestamp": utc(T0 + DAY), "t": 21}]


def test_aware_range_bounds(engine: OfflineEngine, tmp_path: Path) -> None:
    view = trips_view(range_source(tmp_path))
    seoul = timezone(timedelta(hours=9))
    start = (T0 + 9 * H).replace(tzinfo=seoul)  # == T0 UTC
    out = engine.range(view, start, start).to_arrow()
    assert out.column("trips").to_pylist() == [10]


def test_three_views_small_batches(config_harness: Harness, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0 + H, T0, 20), (3, T0 - DAY, T0, 30)])
    a = trips_view(src, ttl=H, name="a")
    b = ViewJoin("b", src, ("driver_id",), ("driver_id",), (("trips", "b_trips"),), None)
    c = ViewJoin("c", src, ("driver_id",), ("driver_id",), (("created", "c_created"),), 2 * DAY)
    keys = [3, 1, 2, 2, 1, 4, 3]
    ent = entity([(k, T0 + 2 * H) for k in keys], idx=list(range(7)))
    eng = config_harness.engine(tmp_path, batch_size=2)
    try:
        out = run(eng, ent, a, b, c)
    finally:
        eng.close()
    assert out.column("idx").to_pylist() == list(range(7))
    assert out.column("trips").to_pylist() == [None, None, 20, 20, None, None, None]
    assert out.column("b_trips").to_pylist() == [30, 10, 20, 20, 10, None, 30]
    assert out.column("c_created").to_pylist() == [T0, T0, T0, T0, T0, None, T0]
