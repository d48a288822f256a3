"""Training sets, pushes and materialization through a FeatureStore, on every offline engine:
the services (``pitstop.engine``) over each engine's protocol."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushMode,
    PushSource,
    RequestSource,
    StreamFeatureView,
    on_demand_feature_view,
)
from pitstop.aggregation import Aggregation
from pitstop.engine.historical import check_capabilities
from pitstop.errors import RetrievalError
from pitstop.offline import EngineCapabilities, SourceRef
from pitstop.types import Float32, Float64, Int64, String

from .conftest import Harness, feature_store

NOW = datetime.now(UTC).replace(microsecond=0)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)

user = Entity(name="user", join_keys=["user_id"])
users = FeatureView(
    name="users", entities=[user], ttl=DAY,
    source=FileSource(name="users_src", path="data/users.parquet", timestamp_field="ts",
                      created_timestamp_column="created"),
    schema=[Field(name="age", dtype=Int64), Field(name="score", dtype=Float32),
            Field(name="tier", dtype=String)],
)  # fmt: skip
clicks_push = PushSource(
    name="clicks_push", batch_source=FileSource(path="data/clicks.parquet", timestamp_field="ts")
)
clicks = FeatureView(name="clicks", entities=[user], ttl=None, source=clicks_push,
                     schema=[Field(name="clicks", dtype=Int64)])  # fmt: skip
windows = StreamFeatureView(
    name="windows", entities=[user], ttl=timedelta(0), source=clicks_push,
    schema=[Field(name="clicks_2h", dtype=Float64), Field(name="n_2h", dtype=Int64)],
    aggregations=[
        Aggregation(column="clicks", function="sum", time_window=2 * HOUR, name="clicks_2h"),
        Aggregation(column="clicks", function="count", time_window=2 * HOUR, name="n_2h"),
    ],
)  # fmt: skip
req = RequestSource(name="req", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(sources=[users, req], schema=[Field(name="ratio", dtype=Float64)],
                        mode="python")  # fmt: skip
def ratio_py(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    pairs = zip(inputs["score"], inputs["bonus"], strict=True)
    return {"ratio": [None if s is None else s / b if b else None for s, b in pairs]}


@on_demand_feature_view(sources=[users, req], schema=[Field(name="ratio", dtype=Float64)])
def ratio_pd(inputs: Any) -> Any:
    import pandas as pd

    return pd.DataFrame({"ratio": inputs["score"] / inputs["bonus"]})


def _write(path: Path, columns: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


@pytest.fixture
def fs(harness: Harness, tmp_path: Path) -> Iterator[FeatureStore]:
    stamp = pa.timestamp("us", "UTC")
    _write(tmp_path / "data/users.parquet", {
        "user_id": [1, 1, 2, 3],
        "age": pa.array([30, 31, None, 50], pa.int64()),
        "score": pa.array([1.0, 2.0, 3.0, 0.0], pa.float32()),
        "tier": ["a", "b", "c", "d"],
        "ts": pa.array([NOW - 3 * HOUR, NOW - HOUR, NOW - HOUR, NOW - 3 * DAY], stamp),
        "created": pa.array([NOW] * 4, stamp),
    })  # fmt: skip
    store = feature_store(harness, tmp_path, online_store={"type": "sqlite"})
    store.apply([user, users, clicks_push, clicks, windows, req, ratio_py, ratio_pd])
    try:
        yield store
    finally:
        store.close()


def entity(users_: list[int], times: list[datetime], **extra: list[Any]) -> pa.Table:
    return pa.table(
        {"user_id": users_, "event_timestamp": pa.array(times, pa.timestamp("us", "UTC")), **extra}
    )


def push_clicks(fs: FeatureStore, users_: list[int], times: list[datetime], n: list[int]) -> None:
    table = pa.table({"user_id": users_, "ts": pa.array(times, pa.timestamp("us", "UTC")),
                      "clicks": n})  # fmt: skip
    fs.push("clicks_push", table, to=PushMode.OFFLINE)


def test_training_set_with_on_demand_views(fs: FeatureStore) -> None:
    ent = entity([1, 2, 3, 9], [NOW] * 4, bonus=[2.0, 0.0, 1.0, 1.0])
    refs = ["users:age", "users:score", "ratio_py:ratio"]
    out = fs.get_historical_features(ent, refs).to_arrow()
    assert out.column_names == ["user_id", "event_timestamp", "bonus", "age", "score", "ratio"]
    assert out.column("age").to_pylist() == [31, None, None, None]  # user 3 is past the TTL
    assert out.column("ratio").to_pylist() == [1.0, None, None, None]
    frame = fs.get_historical_features(ent, ["users:score", "ratio_pd:ratio"]).to_df()
    assert frame["ratio"].tolist()[:1] == [1.0]
    assert frame["ratio"].tolist()[1] == float("inf")  # x/0 -> inf in pandas mode
    df = fs.get_historical_features(ent, ["users:age"]).to_df()
    assert str(df["age"].dtype) == "Int64"  # an integer feature with nulls stays integer
    with pytest.raises(RetrievalError, match="bonus"):
        fs.get_historical_features(entity([1], [NOW]), ["ratio_py:ratio"]).to_arrow()


def test_full_names_and_aliases(fs: FeatureStore) -> None:
    service = FeatureService(name="buyers", features=[users.with_name("buyer")[["age"]]])
    fs.apply([service])
    out = fs.get_historical_features(
        entity([1], [NOW]), [*(f"users:{f}" for f in ("age", "tier"))], full_feature_names=True
    ).to_arrow()
    assert out.column_names[-2:] == ["users__age", "users__tier"]
    assert out.column("users__tier").to_pylist() == ["b"]
    projected = fs.get_historical_features(
        entity([1], [NOW - 2 * HOUR]), service, full_feature_names=True
    ).to_arrow()
    assert projected.column("buyer__age").to_pylist() == [30]


def test_entity_less_retrieval(fs: FeatureStore) -> None:
    out = fs.get_historical_features(
        features=["users:age", "users:tier"], start_date=NOW - 4 * HOUR, end_date=NOW
    ).to_arrow()
    got = sorted(zip(*(out.column(c).to_pylist() for c in ("user_id", "age", "tier")), strict=True),
                 key=str)  # fmt: skip
    assert got == [(1, 30, "a"), (1, 31, "b"), (2, None, "c")]


def test_pushes_reach_training_sets_windows_and_materialize(fs: FeatureStore) -> None:
    push_clicks(fs, [1, 1, 2], [NOW - 3 * HOUR, NOW - HOUR, NOW - HOUR], [4, 6, 1])
    push_clicks(fs, [1], [NOW - 30 * timedelta(minutes=1)], [10])
    ent = entity([1, 1, 2, 3], [NOW, NOW - 2 * HOUR, NOW, NOW])
    refs = ["clicks:clicks", "windows:clicks_2h", "windows:n_2h", "users:tier"]
    out = fs.get_historical_features(ent, refs).to_arrow()
    assert out.column_names[2:] == ["clicks", "clicks_2h", "n_2h", "tier"]  # as requested
    assert out.column("clicks").to_pylist() == [10, 4, 1, None]
    assert out.column("clicks_2h").to_pylist() == [16.0, 4.0, 1.0, None]
    assert out.column("n_2h").to_pylist() == [2, 1, 1, 0]  # an empty window counts 0
    assert out.schema.field("clicks_2h").type == pa.float64()  # the declared type
    fs.materialize(NOW - DAY, NOW, ["clicks", "users"])
    got = fs.get_online_features(["clicks:clicks", "users:age"], {"user_id": [1, 2, 3]})
    assert got.to_dict()["clicks"] == [10, 1, None]
    assert got.to_dict()["age"] == [31, None, None]


def test_materialize_before_any_push_writes_nothing(fs: FeatureStore) -> None:
    results = fs.materialize(NOW - DAY, NOW, ["clicks"])
    assert [r.rows for r in results] == [0]
    push_clicks(fs, [5], [NOW + 30 * timedelta(minutes=1)], [3])  # after the watermark
    fs.materialize_incremental(NOW + HOUR, ["clicks"])
    assert fs.get_online_features(["clicks:clicks"], {"user_id": [5]}).to_dict()["clicks"] == [3]


@pytest.mark.notimpl(["reference"], reason="takes no SQL entity queries")
def test_sql_entity_frame_through_the_store(fs: FeatureStore) -> None:
    sql = "SELECT 1 AS user_id, now() AS event_timestamp"
    out = fs.get_historical_features(sql, ["users:tier"]).to_arrow()
    assert out.column("tier").to_pylist() == ["b"]


class _Capabilities:
    def __init__(self, **flags: Any) -> None:
        self.capabilities = EngineCapabilities(**flags)


def test_services_check_the_engines_capabilities() -> None:
    csv = SourceRef("/data/x.csv", "csv", "ts", name="x_csv")
    with pytest.raises(RetrievalError, match=r"reads parquet files, not source 'x_csv' \(csv\)"):
        check_capabilities(_Capabilities(), [csv])  # type: ignore[arg-type]
    with pytest.raises(RetrievalError, match="does not run SQL entity queries"):
        check_capabilities(_Capabilities(), [], "SELECT 1")  # type: ignore[arg-type]
    check_capabilities(_Capabilities(entity_sql=True, file_formats=("csv",)), [csv], "SELECT 1")  # type: ignore[arg-type]
