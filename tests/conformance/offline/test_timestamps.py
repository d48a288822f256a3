"""Every timestamp encoding of sources, pushed rows and entity frames, through every offline path,
on every engine.

One small dataset is written with its event and created timestamps in each encoding (timestamp
s/ms/us/ns without a zone, in UTC, in America/New_York and in Asia/Seoul; date32; ISO 8601 text
with and without an offset; Parquet INT96; CSV). Every path must pick the same rows at the same
instants. The instants are chosen so that reading a zoned value's wall time as UTC (relabelling
instead of converting) picks other rows: New York is 5 hours behind UTC, Seoul 9 ahead.

Rows of user 1 (all at midnight UTC so a date encodes them exactly):

====  ========  ========  =====
row   event     created   value
====  ========  ========  =====
A     D0        D0        10
B     D1        D1        20
C     D1        D2        21     ties B on event time; created later
D     D2        D2        30
====  ========  ========  =====
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pitstop import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushMode,
    PushSource,
    StreamFeatureView,
)
from pitstop.aggregation import Aggregation
from pitstop.engine.verify import verify
from pitstop.errors import DataSourceError, RetrievalError
from pitstop.types import Int64, UnixTimestamp

from .conftest import Harness, feature_store

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
D0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - 4 * DAY
D1, D2, D3 = D0 + DAY, D0 + 2 * DAY, D0 + 3 * DAY
ROWS = [(1, D0, D0, 10), (1, D1, D1, 20), (1, D1, D2, 21), (1, D2, D2, 30)]
NEW_YORK, SEOUL = "America/New_York", "Asia/Seoul"

Encode = Callable[[list[datetime]], pa.Array]


def _zoned(unit: str, zone: str | None) -> Encode:
    def encode(instants: list[datetime]) -> pa.Array:
        utc = pa.array(instants, pa.timestamp(unit, "UTC"))
        if zone is None:  # wall time in UTC
            return utc.cast(pa.timestamp(unit))
        return utc.cast(pa.timestamp(unit, zone))  # the same instants, labelled with the zone

    return encode


def _text(zone: str | None) -> Encode:
    def encode(instants: list[datetime]) -> pa.Array:
        if zone is None:
            return pa.array([t.strftime("%Y-%m-%d %H:%M:%S") for t in instants])
        return pa.array([pd.Timestamp(t).tz_convert(zone).isoformat() for t in instants])

    return encode


def _date(instants: list[datetime]) -> pa.Array:
    return pa.array([t.date() for t in instants], pa.date32())


#: name -> (file suffix, encoder, extra Parquet writer options)
ENCODINGS: dict[str, tuple[str, Encode, dict[str, Any]]] = {
    **{
        f"{unit}-{zone or 'naive'}": (".parquet", _zoned(unit, zone), {})
        for unit in ("s", "ms", "us", "ns")
        for zone in (None, "UTC", NEW_YORK, SEOUL)
    },
    "date32": (".parquet", _date, {}),
    "iso-offset": (".parquet", _text(SEOUL), {}),
    "iso-naive": (".parquet", _text(None), {}),
    "int96": (".parquet", _zoned("ns", NEW_YORK), {"use_deprecated_int96_timestamps": True}),
    "csv-naive": (".csv", _zoned("us", None), {}),
    "csv-offset": (".csv", _text(NEW_YORK), {}),
}
CSV = [name for name, (suffix, _, _) in ENCODINGS.items() if suffix == ".csv"]


user = Entity(name="user", join_keys=["user_id"])


def definitions(path: str, extra: tuple[Field, ...] = ()) -> list[Any]:
    source = FileSource(
        name="events", path=path, timestamp_field="ts", created_timestamp_column="created"
    )
    push = PushSource(name="events_push", batch_source=source)
    values = FeatureView(
        name="vals", entities=[user], ttl=timedelta(0), source=push,
        schema=[Field(name="value", dtype=Int64), *extra],
    )  # fmt: skip
    windows = StreamFeatureView(
        name="windows", entities=[user], ttl=timedelta(0), source=push,
        schema=[Field(name=n, dtype=Int64) for n in ("sum_1d", "count_1d", "sum_7d")],
        aggregations=[
            Aggregation(column="value", function="sum", time_window=DAY, name="sum_1d"),
            Aggregation(column="value", function="count", time_window=DAY, name="count_1d"),
            Aggregation(column="value", function="sum", time_window=7 * DAY, name="sum_7d"),
        ],
    )  # fmt: skip
    return [user, push, values, windows]


def write_source(folder: Path, encoding: str) -> Path:
    suffix, encode, options = ENCODINGS[encoding]
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "user_id": pa.array([r[0] for r in ROWS], pa.int64()),
        "ts": encode([r[1] for r in ROWS]),
        "created": encode([r[2] for r in ROWS]),
        "value": pa.array([r[3] for r in ROWS], pa.int64()),
    })  # fmt: skip
    path = folder / f"events{suffix}"
    if suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path, **options)
    return path


@pytest.fixture(params=list(ENCODINGS))
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_store(harness: Harness, tmp_path: Path, encoding: str) -> FeatureStore:
    path = write_source(tmp_path / "data", encoding)
    store = feature_store(harness, tmp_path, online_store={"type": "sqlite"})
    store.apply(definitions(str(path.relative_to(tmp_path))))
    return store


@pytest.fixture
def fs(harness: Harness, tmp_path: Path, encoding: str) -> Iterator[FeatureStore]:
    """A store of its own, for tests that write."""
    with open_store(harness, tmp_path, encoding) as store:
        yield store


@pytest.fixture(scope="module", params=list(ENCODINGS))
def shared(
    harness: Harness, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FeatureStore]:
    """A store per encoding shared by the tests that only read."""
    with open_store(harness, tmp_path_factory.mktemp("shared"), str(request.param)) as store:
        yield store


def utc(values: list[datetime]) -> pa.Array:
    return pa.array(values, pa.timestamp("us", "UTC"))


def entity(users: list[int], times: list[datetime]) -> pa.Table:
    return pa.table({"user_id": pa.array(users, pa.int64()), "event_timestamp": utc(times)})


def column(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist()


# -- sources in every encoding ---------------------------------------------------------------


def test_historical_retrieval_picks_rows_at_their_instants(shared: FeatureStore) -> None:
    # D1 03:00 catches Seoul read as UTC (B and C would move to 09:00), D1 21:00 New York
    # (D would move to D1 19:00); C wins B's tie on event time by its later created time
    times = [D1 + 3 * HOUR, D1 + 21 * HOUR, D1 + 21 * HOUR, D0 - HOUR]
    ent = entity([1, 1, 2, 1], times)
    out = shared.get_historical_features(ent, ["vals:value"]).to_arrow()
    assert column(out, "value") == [21, 21, None, None]
    assert out.schema.field("event_timestamp").type == pa.timestamp("us", "UTC")
    assert column(out, "event_timestamp") == times
    job = shared.get_historical_features(ent, ["vals:value"], filter_by_created_timestamp=True)
    assert column(job.to_arrow(), "value") == [20, 20, None, None]  # C created after t


def test_entity_less_retrieval_returns_rows_in_range(shared: FeatureStore) -> None:
    out = shared.get_historical_features(
        features=["vals:value"], start_date=D0 + 12 * HOUR, end_date=D2
    ).to_arrow()
    rows = out.select(["user_id", "event_timestamp", "value"]).to_pylist()
    rows = [tuple(r.values()) for r in rows]
    assert rows == [(1, D1, 21), (1, D2, 30)]


def test_windowed_aggregations_use_the_instants(shared: FeatureStore) -> None:
    # windows are (t - w, t]: at D2 exactly, B and C (at D1) are just outside the day window
    ent = entity([1, 1, 1], [D1 + 3 * HOUR, D1 + 21 * HOUR, D2])
    refs = ["windows:sum_1d", "windows:count_1d", "windows:sum_7d"]
    out = shared.get_historical_features(ent, refs).to_arrow()
    assert column(out, "sum_1d") == [41, 41, 30]
    assert column(out, "count_1d") == [2, 2, 1]
    assert column(out, "sum_7d") == [51, 51, 81]


def test_materialize_then_online_read_and_verify(fs: FeatureStore) -> None:
    fs.materialize(D0 + 12 * HOUR, D1 + 21 * HOUR, ["vals"])  # D (at D2) is outside
    got = fs.get_online_features(["vals:value"], [{"user_id": 1}]).to_dict(True)
    assert (got["value"], got["value__ts"]) == ([21], [D1])
    fs.materialize(None, datetime.now(UTC))
    got = fs.get_online_features(["vals:value", "windows:sum_7d"], [{"user_id": 1}]).to_dict(True)
    assert (got["value"], got["value__ts"], got["sum_7d"]) == ([30], [D2], [81])
    for name in ("vals", "windows"):
        report = verify(fs, name, sample=10)
        assert report.ok, report.mismatches
        assert report.entities == 1


@pytest.mark.parametrize("mode", [PushMode.OFFLINE, PushMode.ONLINE_AND_OFFLINE])
def test_push_offline_is_seen_by_training_sets(
    fs: FeatureStore, encoding: str, mode: PushMode
) -> None:
    at = pd.Timestamp(D3).tz_convert(NEW_YORK)  # D3 as New York wall time, zone attached
    frame = pd.DataFrame({"user_id": [1], "ts": [at], "created": [at], "value": [40]})
    if encoding in CSV:
        with pytest.raises(RetrievalError, match="offline pushes need a Parquet source"):
            fs.push("events_push", frame, to=mode)
        online = fs.get_online_features(["vals:value"], [{"user_id": 1}]).to_dict()
        assert online["value"] == [None]  # nothing written online either
        return
    fs.push("events_push", frame, to=mode)
    ent = entity([1, 1], [D3 - HOUR, D3 + HOUR])
    out = fs.get_historical_features(ent, ["vals:value", "windows:sum_1d"]).to_arrow()
    assert column(out, "value") == [30, 40]
    assert column(out, "sum_1d") == [30, 40]  # D (at D2) is inside (D2 - 1h, D3 - 1h] only
    online = fs.get_online_features(["vals:value"], [{"user_id": 1}]).to_dict()
    assert online["value"] == ([40] if mode == PushMode.ONLINE_AND_OFFLINE else [None])


# -- entity frames and pushed rows in every encoding --------------------------------------------


def _entity_frames(name: str) -> dict[str, Any]:
    times = [D1 + 3 * HOUR, D1 + 21 * HOUR, D2]
    aware = pd.Series(pd.to_datetime(times)).dt.tz_convert(SEOUL)
    frames = {
        "pandas-ns-seoul": pd.DataFrame({"user_id": [1, 1, 1], name: aware}),
        "pandas-ns-naive": pd.DataFrame(
            {"user_id": [1, 1, 1], name: aware.dt.tz_convert("UTC").dt.tz_localize(None)}
        ),
        "pandas-us-new-york": pd.DataFrame(
            {"user_id": [1, 1, 1], name: aware.dt.tz_convert(NEW_YORK).dt.as_unit("us")}
        ),
        "polars-us-new-york": pl.DataFrame(
            {"user_id": [1, 1, 1], name: pl.Series(times).dt.convert_time_zone(NEW_YORK)}
        ),
        "arrow-s-seoul": pa.table(
            {"user_id": [1, 1, 1], name: utc(times).cast(pa.timestamp("s", SEOUL))}
        ),
    }
    if name == "event_timestamp":  # text is parsed only under the standard name
        texts = [pd.Timestamp(t).tz_convert(SEOUL).isoformat() for t in times]
        frames["text-offset"] = pd.DataFrame({"user_id": [1, 1, 1], name: texts})
        frames["text-naive"] = pd.DataFrame(
            {"user_id": [1, 1, 1], name: [t.strftime("%Y-%m-%dT%H:%M:%S") for t in times]}
        )
    return frames


ENTITY_CASES = [
    (column_name, kind)
    for column_name in ("event_timestamp", "asof")
    for kind in _entity_frames(column_name)
]


@pytest.fixture(scope="module")
def ns_store(harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStore]:
    # pandas 2 writes tz-aware columns as timestamp[ns, tz=UTC] (Feast's sample data too)
    with open_store(harness, tmp_path_factory.mktemp("ns"), "ns-UTC") as store:
        yield store


@pytest.mark.parametrize(("name", "kind"), ENTITY_CASES)
def test_entity_frame_timestamp_encodings(ns_store: FeatureStore, name: str, kind: str) -> None:
    frame = _entity_frames(name)[kind]
    refs = ["vals:value", "windows:sum_1d"]
    out = ns_store.get_historical_features(frame, refs).to_arrow()
    assert out.column_names == ["user_id", name, "value", "sum_1d"]  # the column keeps its name
    out_type = out.schema.field(name).type  # tz-aware UTC, in the frame's own unit if it has one
    assert pa.types.is_timestamp(out_type)
    assert out_type.tz == "UTC"
    given = pa.table(frame).schema.field(name).type if not isinstance(frame, dict) else None
    if given is not None and pa.types.is_timestamp(given):
        assert out_type.unit == given.unit
    assert column(out, name) == [D1 + 3 * HOUR, D1 + 21 * HOUR, D2]
    assert column(out, "value") == [21, 21, 30]
    assert column(out, "sum_1d") == [41, 41, 30]


PUSH_FRAMES: dict[str, Callable[[datetime], Any]] = {
    "pandas-ns-new-york": lambda t: pd.DataFrame(
        {"user_id": [1], "ts": [pd.Timestamp(t).tz_convert(NEW_YORK)], "value": [40]}
    ),
    "pandas-ns-naive": lambda t: pd.DataFrame(
        {"user_id": [1], "ts": [pd.Timestamp(t).tz_convert(None)], "value": [40]}
    ),
    "pandas-sub-microsecond": lambda t: pd.DataFrame(
        {"user_id": [1], "ts": [pd.Timestamp(t) + pd.Timedelta(nanoseconds=700)], "value": [40]}
    ),
    "text-offset": lambda t: {
        "user_id": [1],
        "ts": [pd.Timestamp(t).tz_convert(SEOUL).isoformat()],
        "value": [40],
    },
    "text-naive": lambda t: {
        "user_id": [1],
        "ts": [t.strftime("%Y-%m-%d %H:%M:%S")],
        "value": [40],
    },
    "polars-ms-seoul": lambda t: pl.DataFrame(
        {
            "user_id": [1],
            "ts": pl.Series([t]).dt.cast_time_unit("ms").dt.convert_time_zone(SEOUL),
            "value": [40],
        }
    ),
    "arrow-date32": lambda t: pa.table(
        {"user_id": [1], "ts": pa.array([t.date()], pa.date32()), "value": [40]}
    ),
}


@pytest.mark.parametrize("kind", list(PUSH_FRAMES))
def test_pushed_row_timestamp_encodings(ns_store: FeatureStore, kind: str) -> None:
    key = 100 + list(PUSH_FRAMES).index(kind)  # a user of its own in the shared store
    frame = PUSH_FRAMES[kind](D3)
    if isinstance(frame, dict):
        frame["user_id"] = [key]
    elif isinstance(frame, pd.DataFrame):
        frame = frame.assign(user_id=[key])
    elif isinstance(frame, pl.DataFrame):
        frame = frame.with_columns(pl.lit(key).alias("user_id"))
    else:
        frame = frame.set_column(0, "user_id", pa.array([key]))
    ns_store.push("events_push", frame, to=PushMode.ONLINE_AND_OFFLINE, allow_missing_columns=True)
    ent = entity([key, key], [D3 - pd.Timedelta(microseconds=1), D3])
    out = ns_store.get_historical_features(ent, ["vals:value"]).to_arrow()
    assert column(out, "value") == [None, 40]
    got = ns_store.get_online_features(["vals:value"], [{"user_id": key}]).to_dict(True)
    assert (got["value"], got["value__ts"]) == ([40], [D3])


# -- the entity frame's row-time column --------------------------------------------------------


def _frames(columns: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        "pandas": pd.DataFrame(columns),
        "polars": pl.DataFrame(columns),
        "pyarrow": pa.table(columns),
    }


@pytest.mark.parametrize("library", ["pandas", "polars", "pyarrow"])
def test_a_single_datetime_column_is_the_row_time_whatever_its_name(
    ns_store: FeatureStore, library: str
) -> None:
    frame = _frames({"user_id": [1, 1], "label": [0.5, 1.5], "seen_at": [D1 + 3 * HOUR, D2]})
    out = ns_store.get_historical_features(frame[library], ["vals:value"]).to_arrow()
    assert out.column_names == ["user_id", "label", "seen_at", "value"]
    assert column(out, "value") == [21, 30]
    assert column(out, "seen_at") == [D1 + 3 * HOUR, D2]


@pytest.mark.parametrize("library", ["pandas", "polars", "pyarrow"])
def test_event_timestamp_wins_over_other_datetime_columns(
    ns_store: FeatureStore, library: str
) -> None:
    frame = _frames(
        {"user_id": [1], "signup": [D0 - DAY], "event_timestamp": [D2], "seen": [D0 - DAY]}
    )
    out = ns_store.get_historical_features(frame[library], ["vals:value"]).to_arrow()
    assert column(out, "value") == [30]
    assert column(out, "signup") == [D0 - DAY]  # passed through as given


@pytest.mark.parametrize("library", ["pandas", "polars", "pyarrow"])
def test_ambiguous_or_missing_row_time_is_an_error_naming_the_columns(
    ns_store: FeatureStore, library: str
) -> None:
    two = _frames({"user_id": [1], "signup": [D0], "seen_at": [D2]})[library]
    with pytest.raises(RetrievalError) as info:
        ns_store.get_historical_features(two, ["vals:value"]).to_arrow()
    assert "no timestamp column 'event_timestamp' but 2 timestamp-typed columns" in str(info.value)
    assert "['signup', 'seen_at']; rename the one holding each row's time" in str(info.value)
    none = _frames({"user_id": [1], "event_time": ["2024-05-01"]})[library]
    with pytest.raises(RetrievalError) as info:
        ns_store.get_historical_features(none, ["vals:value"]).to_arrow()
    message = str(info.value)
    assert "no timestamp column 'event_timestamp' and no timestamp-typed column" in message
    assert "Did you mean 'event_time'?" in message
    assert "Columns: ['user_id', 'event_time']" in message


# -- edges of the rule ---------------------------------------------------------------------------


def test_nanoseconds_are_dropped_alike_in_sources_and_entity_frames(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "data" / "events.parquet"
    path.parent.mkdir()
    stamp = pa.array([pd.Timestamp(D1).value + 999], pa.timestamp("ns", "UTC"))  # D1 + 999 ns
    pq.write_table(pa.table({"user_id": [1], "ts": stamp, "created": stamp, "value": [7]}), path)
    with feature_store(harness, tmp_path) as store:
        store.apply(definitions("data/events.parquet"))
        exact = entity([1, 1], [D1 - timedelta(microseconds=1), D1])
        out = store.get_historical_features(exact, ["vals:value"]).to_arrow()
        assert column(out, "value") == [None, 7]
        ns_entity = pa.table({"user_id": [1], "event_timestamp": stamp})  # D1 + 999 ns as well
        out = store.get_historical_features(ns_entity, ["vals:value"]).to_arrow()
        assert column(out, "value") == [7]  # joined at D1: nanoseconds dropped for the join
        assert out.column("event_timestamp").combine_chunks().equals(stamp)  # returned as given


def test_a_source_column_that_holds_no_time_is_named(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "data" / "events.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"user_id": [1], "ts": [1_700_000_000], "created": [1], "value": [7]}),
                   path)  # fmt: skip
    with feature_store(harness, tmp_path) as store:
        store.apply(
            definitions("data/events.parquet"), skip_source_validation=True
        )  # read-time check
        with pytest.raises(DataSourceError) as info:
            store.get_historical_features(entity([1], [D1]), ["vals:value"]).to_arrow()
    assert "The timestamp column 'ts' of source 'events' (view 'vals') has type int64" in str(
        info.value
    )


def test_an_entity_time_column_that_holds_no_time_is_named(ns_store: FeatureStore) -> None:
    frame = pa.table({"user_id": [1], "event_timestamp": [1_700_000_000]})
    with pytest.raises(RetrievalError) as info:
        ns_store.get_historical_features(frame, ["vals:value"]).to_arrow()
    assert "timestamp column 'event_timestamp' of the entity frame has type int64" in str(
        info.value
    )


def test_a_timestamp_feature_is_not_taken_for_the_row_time(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "data" / "events.parquet"
    path.parent.mkdir()
    rows = {"user_id": [1, 1], "ts": utc([D0, D1]), "created": utc([D0, D1]), "value": [5, 6]}
    pq.write_table(pa.table({**rows, "seen": utc([D0 - DAY, D1 - DAY])}), path)
    with feature_store(harness, tmp_path) as store:
        store.apply(definitions("data/events.parquet", (Field(name="seen", dtype=UnixTimestamp),)))
        frame = pa.table({"user_id": [1], "asof": utc([D1 + HOUR])})
        refs = ["vals:value", "vals:seen", "windows:count_1d"]
        out = store.get_historical_features(frame, refs).to_arrow()
    assert out.column_names == ["user_id", "asof", "value", "seen", "count_1d"]
    assert (column(out, "value"), column(out, "seen"), column(out, "count_1d")) == (
        [6],
        [D1 - DAY],
        [1],
    )
