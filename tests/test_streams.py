"""Stream features end to end: push → tiles → online reads, equal to offline retrieval."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conftest import POSTGRES_URL
from pitstop import (
    Entity,
    FeatureStore,
    Field,
    FileSource,
    PushMode,
    PushSource,
    StreamFeatureView,
    ValueType,
)
from pitstop.aggregation import Aggregation
from pitstop.config import parse_config
from pitstop.engine.historical import source_ref
from pitstop.engine.streams import Delivery, decode_row, layout_of, push_events, read_values
from pitstop.engine.tiles import tile_end
from pitstop.engine.verify import verify
from pitstop.online.encoding import entity_key
from pitstop.types import Float32, Int64

BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
]
US = 1_000_000
user = Entity(name="user_id", value_type=ValueType.INT64)
transactions = FileSource(path="data/transactions.parquet", timestamp_field="transaction_timestamp")
push_source = PushSource(name="transaction_push_source", batch_source=transactions)
hour = timedelta(hours=1)
seed_view = StreamFeatureView(
    name="transaction_streaming_features", entities=[user], ttl=hour, source=push_source,
    schema=[Field(name="transaction_count_1h", dtype=Int64),
            Field(name="total_amount_1h", dtype=Float32)],
    aggregations=[Aggregation(column="transaction_amount", function="count", time_window=hour),
                  Aggregation(column="transaction_amount", function="sum", time_window=hour)],
)  # fmt: skip
FUNCTIONS = ["count", "sum", "mean", "min", "max", "count_distinct", "last"]
every_view = StreamFeatureView(
    name="every_function", entities=[user], ttl=hour, source=push_source,
    aggregations=[
        Aggregation(column="transaction_amount", function=f, time_window=w,
                    slide_interval=timedelta(minutes=1))
        for f in FUNCTIONS for w in (timedelta(minutes=10), hour)
    ],
)  # fmt: skip


def append_offline(fs: FeatureStore, table: pa.Table) -> None:
    """Add ``table`` to the transactions source's offline data, as a push would."""
    fs.offline.append(source_ref(transactions, fs.repo_path), table)


def _online(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend in ("memory", "sqlite"):
        return {"type": backend}
    if backend == "redis":
        url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_key_prefix"))
        return {"type": "redis", "connection_string": url, "key_prefix": prefix}
    request.getfixturevalue("postgres_admin")
    return {"type": "postgres", "conninfo": POSTGRES_URL, "db_schema": "pitstop_streams_test"}


@pytest.fixture(params=BACKENDS)
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    project = f"s{uuid.uuid4().hex[:10]}"
    cfg = parse_config({"project": project, "online_store": _online(request.param, request)},
                       repo_path=tmp_path)  # fmt: skip
    store = FeatureStore(config=cfg)
    store.apply([user, push_source, seed_view, every_view])
    try:
        yield store
    finally:
        store.teardown()
        store.close()


def _events(users: list[int], amounts: list[float], times: list[datetime]) -> pa.Table:
    return pa.table({
        "user_id": users, "transaction_amount": amounts,
        "transaction_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


def _entity(users: list[int], at: datetime) -> pa.Table:
    return pa.table(
        {
            "user_id": users,
            "event_timestamp": pa.array([at] * len(users), pa.timestamp("us", tz="UTC")),
        }
    )


def test_seed_stream_view_counts_and_sums_online_and_offline(fs: FeatureStore) -> None:
    now = datetime.now(UTC)
    for amount, minutes in ((1.0, 50), (2.0, 30), (4.0, 10)):
        event = _events([7], [amount], [now - timedelta(minutes=minutes)])
        fs.push("transaction_push_source", event, to=PushMode.ONLINE_AND_OFFLINE)
    refs = ["transaction_streaming_features:transaction_count_1h",
            "transaction_streaming_features:total_amount_1h"]  # fmt: skip
    online = fs.get_online_features(refs, [{"user_id": 7}]).to_dict()
    assert online["transaction_count_1h"] == [3]
    assert online["total_amount_1h"] == [7.0]
    offline = fs.get_historical_features(_entity([7], now), refs).to_df()
    assert offline["transaction_count_1h"].tolist() == [3]
    assert offline["total_amount_1h"].tolist() == [7.0]
    unknown = fs.get_online_features(refs, [{"user_id": 8}])
    assert unknown.statuses["transaction_count_1h"] == ["NOT_FOUND"]


def test_every_function_online_equals_offline_with_late_events(fs: FeatureStore) -> None:
    rng = random.Random(11)
    minute = 60 * US
    t_end = (int(datetime.now(UTC).timestamp() * US) // minute) * minute  # a tile boundary
    users, amounts, stamps = [], [], []
    for _ in range(300):
        users.append(rng.randint(1, 5))
        amounts.append(float(rng.randint(1, 20)))  # repeats make count_distinct meaningful
        stamps.append(t_end - rng.randint(1, 80 * minute))
    order = sorted(range(300), key=lambda i: stamps[i] + rng.randint(0, 3 * minute))  # late
    table = _events([users[i] for i in order], [amounts[i] for i in order],
                    [datetime.fromtimestamp(stamps[i] / US, UTC) for i in order])  # fmt: skip
    for start in range(0, 300, 37):  # arrival in several pushes
        part = table.slice(start, 37)
        push_events(fs.online, every_view, part, now_us=t_end)
        append_offline(fs, part)
    layout = layout_of(every_view)
    keys = [entity_key(("user_id",), (u,)) for u in range(1, 6)]
    rows = fs.online.read([(every_view.name, keys)])[0]
    at = datetime.fromtimestamp(t_end / US, UTC)
    refs = [f"every_function:{f.name}" for f in every_view.features]
    offline = fs.get_historical_features(_entity(list(range(1, 6)), at), refs).to_arrow()
    for i, row in enumerate(rows):
        online = read_values(layout, row, t_end)
        for name in layout.outputs:
            expected = offline.column(name)[i].as_py()
            assert online[name] == pytest.approx(expected), (i + 1, name)


def test_events_outside_every_window_are_ignored_and_old_tiles_dropped(fs: FeatureStore) -> None:
    now = datetime.now(UTC)
    push_events(fs.online, seed_view, _events([3], [5.0], [now - timedelta(hours=3)]))
    key = entity_key(("user_id",), (3,))
    assert fs.online.read([(seed_view.name, [key])])[0] == [None]
    push_events(fs.online, seed_view, _events([3, 3], [1.0, 2.0],
                                               [now - timedelta(minutes=5), now]))  # fmt: skip
    later = int((now + timedelta(hours=2)).timestamp() * US)
    push_events(fs.online, seed_view, _events([3], [9.0], [now + timedelta(hours=2)]), now_us=later)
    row = fs.online.read([(seed_view.name, [key])])[0][0]
    values = read_values(layout_of(seed_view), row, later)
    assert values == {"transaction_count_1h": 1, "total_amount_1h": 9.0}


def test_redelivered_stream_events_are_applied_once(fs: FeatureStore) -> None:
    now = datetime.now(UTC)
    batch = _events([4, 4, 5], [1.0, 2.0, 3.0], [now - timedelta(minutes=m) for m in (3, 2, 1)])
    ids = [(1000, 0), (1000, 1), (1001, 0)]
    for _ in range(3):
        push_events(fs.online, seed_view, batch, delivery=Delivery("s", ids, (ids[0], ids[-1])))
    push_events(fs.online, seed_view, batch.slice(1, 2), delivery=Delivery("s", ids[1:]))
    resp = fs.get_online_features(["transaction_streaming_features:transaction_count_1h"],
                                  {"user_id": [4, 5]})  # fmt: skip
    assert resp.values["transaction_count_1h"] == [2, 1]


def test_stream_events_delivered_out_of_order_are_applied_once(fs: FeatureStore) -> None:
    """A consumer dies holding ids 1-3; another handles 4-6, then takes over 1-3 (twice)."""
    now = datetime.now(UTC)
    table = _events([4] * 6, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
                    [now - timedelta(minutes=m) for m in range(6, 0, -1)])  # fmt: skip
    ids = [(1000, n) for n in range(6)]
    early, late = table.slice(0, 3), table.slice(3)
    push_events(fs.online, seed_view, late, delivery=Delivery("s", ids[3:], (ids[3], ids[5])))
    push_events(fs.online, seed_view, early.slice(0, 2), delivery=Delivery("s", ids[:2]))
    push_events(fs.online, seed_view, early, delivery=Delivery("s", ids[:3], settled=ids[0]))
    push_events(fs.online, seed_view, table, delivery=Delivery("s", ids, settled=(1000, 6)))
    push_events(fs.online, seed_view, early, delivery=Delivery("s", ids[:3]))
    refs = [f"{seed_view.name}:{f.name}" for f in seed_view.features]
    resp = fs.get_online_features(refs, {"user_id": [4]}).to_dict()
    assert resp["transaction_count_1h"] == [6] and resp["total_amount_1h"] == [63.0]
    row = fs.online.read([(seed_view.name, [entity_key(("user_id",), (4,))])])[0][0]
    assert decode_row(row.value)[1]["s"] == {"below": [1000, 6], "done": []}  # all settled


def test_materialize_backfills_tiles_from_the_batch_source(fs: FeatureStore) -> None:
    now = datetime.now(UTC)
    events = _events([1, 1, 2, 2], [1.5, 2.5, 10.0, 1.0],
                     [now - timedelta(minutes=m) for m in (90, 20, 30, 5)])  # fmt: skip
    append_offline(fs, events)
    fs.materialize(now - timedelta(days=1), now, ["transaction_streaming_features"])
    resp = fs.get_online_features(["transaction_streaming_features:total_amount_1h"],
                                  {"user_id": [1, 2]})  # fmt: skip
    assert resp.values["total_amount_1h"] == [2.5, 11.0]
    report = verify(fs, "transaction_streaming_features", sample=10)
    assert report.ok, report.mismatches


def test_materialize_with_an_end_after_now_keeps_the_current_windows(fs: FeatureStore) -> None:
    now = datetime.now(UTC)
    events = _events([1, 1, 2, 2, 2], [1.5, 2.5, 10.0, 1.0, 4.0],
                     [now - timedelta(minutes=m) for m in (50, 20, 30, 5, 90)])  # fmt: skip
    append_offline(fs, events)
    fs.materialize(now - timedelta(days=1), now + timedelta(days=1), [seed_view.name])
    refs = [f"{seed_view.name}:{f.name}" for f in seed_view.features]
    resp = fs.get_online_features(refs, {"user_id": [1, 2]}).to_dict()
    assert resp["transaction_count_1h"] == [2, 2]
    assert resp["total_amount_1h"] == [4.0, 11.0]
    report = verify(fs, seed_view.name, sample=10)
    assert report.ok, report.mismatches
    fs.materialize_incremental(now + timedelta(days=2), [seed_view.name])
    assert fs.get_online_features(refs, {"user_id": [1, 2]}).to_dict() == resp


def test_materialize_with_an_end_in_the_past_holds_the_events_up_to_end(
    fs: FeatureStore,
) -> None:
    now = datetime.now(UTC)
    events = _events([1, 1, 1], [1.0, 2.0, 4.0],
                     [now - timedelta(minutes=m) for m in (50, 40, 10)])  # fmt: skip
    append_offline(fs, events)
    fs.materialize(None, now - timedelta(minutes=30), [seed_view.name])
    refs = [f"{seed_view.name}:{f.name}" for f in seed_view.features]
    resp = fs.get_online_features(refs, {"user_id": [1]}).to_dict()
    assert resp["transaction_count_1h"] == [2]  # the event after end is not materialized
    assert resp["total_amount_1h"] == [3.0]
    push_events(fs.online, seed_view, events.slice(2))  # ...until the stream brings it
    report = verify(fs, seed_view.name, sample=10)
    assert report.ok, report.mismatches


def test_verify_reports_mismatches(fs: FeatureStore) -> None:
    now = datetime.now(UTC)
    append_offline(fs, _events([1], [1.0], [now - timedelta(minutes=5)]))
    fs.materialize(now - timedelta(days=1), now, ["transaction_streaming_features"])
    push_events(fs.online, seed_view, _events([1], [100.0], [now - timedelta(minutes=1)]))
    report = verify(fs, "transaction_streaming_features", sample=10)
    assert not report.ok
    assert {m.feature for m in report.mismatches} == {"transaction_count_1h", "total_amount_1h"}


def test_tiles_cover_whole_windows() -> None:
    layout = layout_of(every_view)
    assert layout.size_us == 60 * US
    assert tile_end(60 * US, layout.size_us) == 60 * US  # right-closed tiles


def test_bad_requests_name_the_problem(fs: FeatureStore) -> None:
    from pitstop.errors import NotFoundError, RetrievalError

    with pytest.raises(NotFoundError, match=r"'transaction_streaming_feature'.*Did you mean"):
        fs.materialize(None, datetime.now(UTC), ["transaction_streaming_feature"])
    with pytest.raises(RetrievalError, match=r"entity-less retrieval .* does not support stream"):
        fs.get_historical_features(
            features=["transaction_streaming_features:transaction_count_1h"],
            start_date=datetime.now(UTC) - hour, end_date=datetime.now(UTC),
        )  # fmt: skip
    with pytest.raises(RetrievalError, match=r"start .* is after end"):
        fs.materialize(datetime.now(UTC), datetime.now(UTC) - hour, ["every_function"])
