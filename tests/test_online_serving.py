"""Serving online through FeatureStore, on every online store: materialize, push, read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import POSTGRES_URL
from pitstop import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushMode,
    PushSource,
    RequestSource,
    ValueType,
    on_demand_feature_view,
)
from pitstop.config import parse_config
from pitstop.errors import BackendUnavailableError, NotFoundError, RetrievalError
from pitstop.types import Float32, Float64, Int64, String

NOW = datetime.now(UTC).replace(microsecond=0)
BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
]

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
users_src = FileSource(path="data/users.parquet", timestamp_field="ts",
                       created_timestamp_column="created")  # fmt: skip
users = FeatureView(
    name="users", entities=[user], ttl=timedelta(days=1), source=users_src,
    schema=[Field(name="age", dtype=Int64), Field(name="score", dtype=Float32),
            Field(name="tier", dtype=String)],
)  # fmt: skip
store_entity = Entity(name="shop", join_keys=["shop_id"])
pairs = FeatureView(
    name="pairs", entities=[user, store_entity], ttl=None,
    source=FileSource(path="data/pairs.parquet", timestamp_field="ts"),
    schema=[Field(name="visits", dtype=Int64)],
)  # fmt: skip
clicks_push = PushSource(
    name="clicks_push", batch_source=FileSource(path="data/clicks.parquet", timestamp_field="ts")
)
clicks = FeatureView(name="clicks", entities=[user], ttl=timedelta(hours=1), source=clicks_push,
                     schema=[Field(name="clicks", dtype=Int64)])  # fmt: skip
req = RequestSource(name="req", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(sources=[users, req], schema=[Field(name="boosted", dtype=Float64)],
                        mode="python")  # fmt: skip
def boosted_py(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {
        "boosted": [None if s is None or a is None else s * a + b for s, a, b in
                    zip(inputs["score"], inputs["age"], inputs["bonus"], strict=True)]
    }  # fmt: skip


@on_demand_feature_view(sources=[users, req], schema=[Field(name="boosted", dtype=Float64)])
def boosted_pd(inputs: Any) -> Any:
    import pandas as pd

    return pd.DataFrame({"boosted": inputs["score"] * inputs["age"] + inputs["bonus"]})


def _write(path: Path, rows: dict[str, list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), path)


def _data(root: Path) -> None:
    day = timedelta(days=1)
    _write(root / "data/users.parquet", {
        "user_id": [1, 1, 2, 3, 4],
        "age": [30, 31, 40, 50, None],
        "score": pa.array([0.5, 1.5, 2.5, 3.5, 4.5], pa.float32()),
        "tier": ["a", "b", "c", "d", "e"],
        "ts": pa.array([NOW - 2 * day, NOW - timedelta(hours=1), NOW - timedelta(hours=2),
                        NOW - 3 * day, NOW - timedelta(hours=3)], pa.timestamp("us", tz="UTC")),
        "created": pa.array([NOW] * 5, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    _write(root / "data/pairs.parquet", {
        "user_id": [1, 1, 2], "shop_id": ["x", "y", "x"], "visits": [3, 4, 5],
        "ts": pa.array([NOW - day] * 3, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


def _online(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend in ("memory", "sqlite"):
        return {"type": backend}
    if backend == "redis":
        url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_key_prefix"))
        return {"type": "redis", "connection_string": url, "key_prefix": prefix}
    request.getfixturevalue("postgres_admin")
    return {"type": "postgres", "conninfo": POSTGRES_URL, "db_schema": "pitstop_serving_test"}


def make_store(root: Path, online: dict[str, Any], **extra: Any) -> FeatureStore:
    project = f"p{uuid.uuid4().hex[:10]}"
    cfg = parse_config({"project": project, "online_store": {**online, **extra}}, repo_path=root)
    return FeatureStore(config=cfg)


@pytest.fixture(params=BACKENDS)
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    _data(tmp_path)
    store = make_store(tmp_path, _online(request.param, request))
    store.apply([user, store_entity, users, pairs, clicks, boosted_py, boosted_pd])
    try:
        yield store
    finally:
        store.teardown()
        store.close()


def materialized(fs: FeatureStore) -> FeatureStore:
    fs.materialize(NOW - timedelta(days=10), NOW)
    return fs


def test_read_values_statuses_and_feast_shape(fs: FeatureStore) -> None:
    resp = materialized(fs).get_online_features(
        ["users:age", "users:tier"], [{"user_id": 1}, {"user_id": 2}, {"user_id": 99}]
    )
    assert resp.to_dict() == {"user_id": [1, 2, 99], "age": [31, 40, None],
                              "tier": ["b", "c", None]}  # fmt: skip
    assert resp.statuses["age"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    stamps = resp.to_dict(include_event_timestamps=True)["age__ts"]
    assert stamps[0] == NOW - timedelta(hours=1) and stamps[2] is None


def test_ttl_enforced_at_read_and_null_values(fs: FeatureStore) -> None:
    resp = materialized(fs).get_online_features(["users:age", "users:score"],
                                                {"user_id": [3, 4]})  # fmt: skip
    assert resp.values["age"] == [None, None]
    assert resp.statuses["age"] == ["OUTSIDE_MAX_AGE", "NULL_VALUE"]
    assert resp.statuses["score"] == ["OUTSIDE_MAX_AGE", "PRESENT"]


def test_enforce_ttl_false_serves_stale_values(tmp_path: Path) -> None:
    _data(tmp_path)
    store = make_store(tmp_path, {"type": "sqlite"}, enforce_ttl=False)
    store.apply([user, users])
    store.materialize(NOW - timedelta(days=10), NOW)
    resp = store.get_online_features(["users:age"], [{"user_id": 3}])
    assert resp.values["age"] == [50] and resp.statuses["age"] == ["PRESENT"]
    store.close()


def test_compound_keys_and_full_names(fs: FeatureStore) -> None:
    resp = materialized(fs).get_online_features(
        ["pairs:visits", "users:age"],
        [{"user_id": 1, "shop_id": "y"}, {"user_id": 2, "shop_id": "y"}],
        full_feature_names=True,
    )
    assert resp.to_dict()["pairs__visits"] == [4, None]
    assert resp.to_dict()["users__age"] == [31, 40]


def test_one_store_round_trip_per_request(fs: FeatureStore) -> None:
    materialized(fs)
    calls = []
    real = fs.online.read
    fs.online.read = lambda requests: calls.append(requests) or real(requests)  # type: ignore[method-assign]
    fs.get_online_features(
        ["users:age", "pairs:visits", "clicks:clicks", "boosted_py:boosted"],
        {"user_id": [1, 2, 3], "shop_id": ["x"] * 3, "bonus": [1.0] * 3},
    )
    assert len(calls) == 1


def test_on_demand_online_equals_offline(fs: FeatureStore) -> None:
    materialized(fs)
    rows = {"user_id": [1, 2, 4, 99], "bonus": [1.0, 2.0, 3.0, 4.0]}
    online_py = fs.get_online_features(["boosted_py:boosted"], rows).values["boosted"]
    online_pd = fs.get_online_features(["boosted_pd:boosted"], rows).values["boosted"]
    entity = pa.table(
        {**rows, "event_timestamp": pa.array([NOW] * 4, pa.timestamp("us", tz="UTC"))}
    )
    offline = fs.get_historical_features(entity, ["boosted_pd:boosted"]).to_arrow()
    expected = offline.column("boosted").to_pylist()
    assert online_py == pytest.approx(expected, nan_ok=True) or online_py == expected
    assert online_pd == online_py
    assert online_py[:2] == pytest.approx([1.5 * 31 + 1.0, 2.5 * 40 + 2.0])


def test_missing_request_data_and_keys_are_errors(fs: FeatureStore) -> None:
    with pytest.raises(RetrievalError, match=r"needs request field 'bonus'"):
        fs.get_online_features(["boosted_py:boosted"], [{"user_id": 1}])
    with pytest.raises(RetrievalError, match=r"lack join key 'user_id'"):
        fs.get_online_features(["users:age"], [{"uid": 1}])
    with pytest.raises(RetrievalError, match=r"join key 'user_id'.*takes int values, got '1'"):
        fs.get_online_features(["users:age"], [{"user_id": "1"}])
    with pytest.raises(NotFoundError, match=r"no feature 'agee'"):
        fs.get_online_features(["users:agee"], [{"user_id": 1}])


def test_materialize_is_idempotent_and_records_a_watermark(fs: FeatureStore) -> None:
    first = fs.materialize_incremental(NOW)
    assert {r.view: r.rows for r in first}["users"] == 3  # one TTL back: users 1, 2 and 4
    again = fs.materialize_incremental(NOW)
    assert all(r.rows == 0 for r in again)
    assert {(r.start, r.end) for r in again} == {(NOW, NOW)}  # from the watermark
    results = fs.materialize(NOW - timedelta(days=10), NOW)
    assert {(r.start, r.end) for r in results} == {(NOW - timedelta(days=10), NOW)}
    fs.materialize(NOW - timedelta(days=10), NOW)
    assert fs.get_online_features(["users:age"], [{"user_id": 1}]).values["age"] == [31]


def test_materialize_takes_iso_text_and_names_a_bad_bound(fs: FeatureStore) -> None:
    [result, *_] = fs.materialize("2000-01-01T00:00:00Z", NOW.isoformat())
    assert (result.start, result.end) == (datetime(2000, 1, 1, tzinfo=UTC), NOW)
    with pytest.raises(RetrievalError, match=r"^materialize_incremental end_date: 'tomorrow' is "
                       r"not an ISO 8601 timestamp such as '2026-11-26T10:00:00'$"):  # fmt: skip
        fs.materialize_incremental("tomorrow")
    with pytest.raises(RetrievalError, match=r"^materialize start_date: expected a datetime or "
                       r"ISO 8601 text, got int 20240101$"):  # fmt: skip
        fs.materialize(20240101, NOW)  # type: ignore[arg-type]


def test_older_materialize_window_never_replaces_newer(fs: FeatureStore) -> None:
    fs.materialize(NOW - timedelta(days=10), NOW)
    fs.materialize(NOW - timedelta(days=10), NOW - timedelta(days=1, hours=12))  # only day -2
    assert fs.get_online_features(["users:age"], [{"user_id": 1}]).values["age"] == [31]


def _clicks(
    values: list[int], hours_ago: list[float], users: list[int] | None = None
) -> dict[str, Any]:
    return {
        "user_id": users or [1] * len(values),
        "clicks": values,
        "ts": [NOW - timedelta(hours=h) for h in hours_ago],
    }


def test_push_is_event_time_ordered(fs: FeatureStore) -> None:
    fs.push("clicks_push", _clicks([5], [0.1]))
    fs.push("clicks_push", _clicks([3], [0.5]))  # older: ignored
    assert fs.get_online_features(["clicks:clicks"], [{"user_id": 1}]).values["clicks"] == [5]
    fs.push("clicks_push", _clicks([9, 7], [0.01, 0.2]))  # two rows, one key, newer first
    assert fs.get_online_features(["clicks:clicks"], [{"user_id": 1}]).values["clicks"] == [9]


def test_push_schema_errors_write_nothing(fs: FeatureStore) -> None:
    bad = {"user_id": [2], "ts": [NOW]}
    with pytest.raises(RetrievalError, match=r"column\(s\) \['clicks'\] needed by feature view"):
        fs.push("clicks_push", bad)
    wrong = {"user_id": [2], "clicks": ["many"], "ts": [NOW]}
    with pytest.raises(
        RetrievalError, match=r"column 'clicks' of feature view 'clicks' is declared"
    ):
        fs.push("clicks_push", wrong, to=PushMode.ONLINE_AND_OFFLINE)
    huge = {"user_id": [2], "clicks": [2**64], "ts": [NOW]}  # beyond any Arrow integer
    with pytest.raises(
        RetrievalError,
        match=r"^push to 'clicks_push': column 'clicks' cannot be read as Arrow values; the first "
        r"value that does not convert is in row 0: 18446744073709551616 \(int\)",
    ):
        fs.push("clicks_push", huge, to=PushMode.ONLINE_AND_OFFLINE)
    resp = fs.get_online_features(["clicks:clicks"], [{"user_id": 2}])
    assert resp.statuses["clicks"] == ["NOT_FOUND"]
    assert not (fs.repo_path / "data/clicks.parquet.pushed").exists()
    with pytest.raises(
        NotFoundError, match=r"push source 'click_push'.*Did you mean 'clicks_push'"
    ):
        fs.push("click_push", bad)


def test_push_offline_is_seen_by_historical_retrieval(fs: FeatureStore) -> None:
    fs.push("clicks_push", _clicks([4, 6], [0.5, 0.25], users=[7, 8]), to=PushMode.OFFLINE)
    assert fs.get_online_features(["clicks:clicks"], [{"user_id": 7}]).statuses["clicks"] == [
        "NOT_FOUND"
    ]
    entity = pa.table(
        {"user_id": [7, 8], "event_timestamp": pa.array([NOW, NOW], pa.timestamp("us", tz="UTC"))}
    )
    out = fs.get_historical_features(entity, ["clicks:clicks"]).to_arrow()
    assert out.column("clicks").to_pylist() == [4, 6]


def test_write_to_online_store(fs: FeatureStore) -> None:
    fs.write_to_online_store("users", {"user_id": [50], "age": [5], "score": [1.0],
                                       "tier": ["z"], "ts": [NOW]})  # fmt: skip
    assert fs.get_online_features(["users:tier"], [{"user_id": 50}]).values["tier"] == ["z"]


def test_unreachable_redis_fails_before_the_registry_changes(tmp_path: Path) -> None:
    _data(tmp_path)
    store = make_store(tmp_path, {"type": "redis", "connection_string": "127.0.0.1:1"})
    with pytest.raises(BackendUnavailableError, match=r"127\.0\.0\.1:1"):
        store.apply([user, users])
    assert store.list_feature_views() == []
    store.close()


@on_demand_feature_view(sources=[req], schema=[Field(name="doubled", dtype=Float64)],
                        mode="python")  # fmt: skip
def doubled(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {"doubled": [None if b is None else 2 * b for b in inputs["bonus"]]}


def test_response_returns_join_keys_not_request_data(fs: FeatureStore) -> None:
    """Like Feast: the join keys come back (those of every registered entity); request data
    and columns that are neither do not."""
    resp = materialized(fs).get_online_features(
        ["users:age", "boosted_py:boosted"],
        {"bonus": [1.0], "user_id": [1], "shop_id": ["x"], "label": [0]},
    )
    assert list(resp.to_dict()) == ["user_id", "shop_id", "age", "boosted"]
    assert resp.to_arrow().column_names == ["user_id", "shop_id", "age", "boosted"]
    rows = [{"user_id": 2, "bonus": 1.0}]
    assert fs.get_online_features(["boosted_pd:boosted"], rows).to_dict() == {
        "user_id": [2], "boosted": [2.5 * 40 + 1.0]}  # fmt: skip


def test_on_demand_outputs_of_an_unknown_entity_are_not_found(fs: FeatureStore) -> None:
    fs.apply([doubled])
    rows = {"user_id": [1, 99, 3, 4], "bonus": [1.0, 2.0, 3.0, 4.0]}  # 3 expired, 4 no age
    for view in ("boosted_py", "boosted_pd"):
        resp = materialized(fs).get_online_features([f"{view}:boosted", "doubled:doubled"], rows)
        assert resp.statuses["boosted"] == ["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE",
                                            "NULL_VALUE"]  # fmt: skip
        assert resp.values["boosted"] == [pytest.approx(1.5 * 31 + 1.0), None, None, None]
        assert resp.statuses["doubled"] == ["PRESENT"] * 4  # request data only: always computed
        assert resp.values["doubled"] == [2.0, 4.0, 6.0, 8.0]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (["NOT_FOUND"], "NOT_FOUND"),
        (["NOT_FOUND", "NOT_FOUND"], "NOT_FOUND"),
        (["OUTSIDE_MAX_AGE"], "OUTSIDE_MAX_AGE"),
        (["NOT_FOUND", "OUTSIDE_MAX_AGE"], "OUTSIDE_MAX_AGE"),
        (["NOT_FOUND", "PRESENT"], None),  # one view has the entity: computed
        (["OUTSIDE_MAX_AGE", "NULL_VALUE"], None),
        ([], None),  # request data only
    ],
)
def test_on_demand_status_rule(inputs: list[str], expected: str | None) -> None:
    from pitstop.engine.online import on_demand_status

    assert on_demand_status(inputs) == expected


def test_out_of_range_keys_name_the_declared_type(tmp_path: Path) -> None:
    shop = Entity(name="shop32", join_keys=["shop_id"], value_type=ValueType.INT32)
    shops = FeatureView(name="shops", entities=[shop], ttl=None,
                        source=FileSource(path="data/shops.parquet", timestamp_field="ts"),
                        schema=[Field(name="n", dtype=Int64)])  # fmt: skip
    store = make_store(tmp_path, {"type": "memory"})
    store.apply([user, users, shop, shops], skip_source_validation=True)  # no offline data
    cases = [
        (["shops:n"], {"shop_id": [7, 2**31]}, "shop_id", "shops", "Int32", 2**31),
        (["shops:n"], {"shop_id": [-(2**31) - 1]}, "shop_id", "shops", "Int32", -(2**31) - 1),
        (["shops:n"], {"shop_id": [2**70]}, "shop_id", "shops", "Int32", 2**70),
        (["users:age"], {"user_id": [2**63]}, "user_id", "users", "Int64", 2**63),
        (["users:age"], {"user_id": [2**70]}, "user_id", "users", "Int64", 2**70),
        (["users:age"], {"user_id": [float(2**70)]}, "user_id", "users", "Int64", 2.0**70),
    ]
    for refs, rows, key, view, dtype, value in cases:
        low, high = (-(2**31), 2**31 - 1) if dtype == "Int32" else (-(2**63), 2**63 - 1)
        with pytest.raises(RetrievalError) as err:
            store.get_online_features(refs, rows)
        assert str(err.value) == (f"join key {key!r} of feature view {view!r} is {dtype}: "
                                  f"{value!r} is out of its range ({low} to {high})")  # fmt: skip
    assert store.get_online_features(["shops:n"], {"shop_id": [2**31 - 1]}).statuses == {
        "n": ["NOT_FOUND"]}  # fmt: skip
    with pytest.raises(RetrievalError, match=r"takes int values, got 1\.5 \(float\)"):
        store.get_online_features(["users:age"], {"user_id": [1.5]})
    store.close()
