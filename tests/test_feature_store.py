"""FeatureStore as a facade over the registry: apply, versions, lookups, cache, teardown."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    RequestSource,
    on_demand_feature_view,
)
from pitstop.config import parse_config
from pitstop.errors import DefinitionError, NotFoundError
from pitstop.types import Float64, Int64


def make_store(tmp_path: Path, registry_url: str, project: str, ttl: int = 60) -> FeatureStore:
    registry = (
        {"registry_type": "sql", "path": registry_url, "cache_ttl_seconds": ttl}
        if registry_url.startswith("postgresql")
        else {"path": str(tmp_path / "registry.db"), "cache_ttl_seconds": ttl}
    )
    config = parse_config({"project": project, "registry": registry}, repo_path=tmp_path)
    return FeatureStore(config=config)


user = Entity(name="user", join_keys=["user_id"])
source = FileSource(path="data/users.parquet", timestamp_field="ts")


def view(ttl_days: int = 1, name: str = "users") -> FeatureView:
    return FeatureView(
        name=name,
        entities=[user],
        ttl=timedelta(days=ttl_days),
        schema=[Field(name="age", dtype=Int64), Field(name="score", dtype=Float64)],
        source=source,
    )


def write_users(repo: Path) -> None:
    """The rows ``source`` points to (apply reads their schema)."""
    (repo / "data").mkdir(exist_ok=True)
    table = pa.table(
        {
            "user_id": pa.array([1], pa.int64()),
            "ts": pa.array([datetime(2026, 1, 1, tzinfo=UTC)], pa.timestamp("us", "UTC")),
            "age": pa.array([30], pa.int64()),
            "score": pa.array([0.5], pa.float64()),
            "x": pa.array([1], pa.int64()),
        }
    )
    pq.write_table(table, repo / "data" / "users.parquet")


@pytest.fixture
def store(tmp_path: Path, registry_url: str, project_name: str) -> FeatureStore:
    write_users(tmp_path)
    with make_store(tmp_path, registry_url, project_name) as s:
        yield s


def test_apply_versions_only_on_change(store: FeatureStore) -> None:
    first = {(c.kind, c.name): c.action for c in store.apply([user, view()])}
    assert first[("feature_view", "users")] == "create"
    assert first[("data_source", "users_source")] == "create"  # embedded sources are registered
    again = store.apply([user, view()])
    assert all(c.action == "unchanged" for c in again)
    changed = {(c.kind, c.name): c.action for c in store.apply([view(ttl_days=2)])}
    assert changed[("feature_view", "users")] == "update"
    history = store.history("users", FeatureView)
    assert [r.version for r in history] == [1, 2]
    assert store.get_feature_view("users").ttl == timedelta(days=2)


def test_partial_apply_keeps_other_objects_and_prune_removes_them(store: FeatureStore) -> None:
    store.apply([user, view(name="a")])
    store.apply([view(name="b")])  # partial: 'a' stays
    assert [v.name for v in store.list_feature_views()] == ["a", "b"]
    changes = store.apply([user, view(name="b")], partial=False)
    assert ("feature_view", "a", "delete") in {(c.kind, c.name, c.action) for c in changes}
    assert [v.name for v in store.list_feature_views()] == ["b"]
    assert store.history("a", FeatureView)[-1].deleted


def test_objects_to_delete(store: FeatureStore) -> None:
    store.apply([user, view(name="a"), view(name="b")])
    store.apply([], objects_to_delete=[view(name="a")])
    assert [v.name for v in store.list_feature_views()] == ["b"]


def test_plan_writes_nothing(store: FeatureStore) -> None:
    changes = store.plan([user, view()])
    assert {c.action for c in changes} == {"create"}
    assert store.list_feature_views() == []


def test_references_are_checked_at_apply(store: FeatureStore) -> None:
    orphan = FeatureView(
        name="orphan", entities=["customer"], source=source, schema=[Field(name="x", dtype=Int64)]
    )
    with pytest.raises(DefinitionError, match=r"uses entity 'customer', which is not defined"):
        store.apply([orphan])
    svc = FeatureService(name="svc", features=[view(name="ghost")])
    with pytest.raises(DefinitionError, match=r"uses feature view 'ghost'.*not defined"):
        store.apply([svc])
    assert store.list_feature_services() == []  # nothing half-written


def test_view_names_share_one_namespace(store: FeatureStore) -> None:
    req = RequestSource(name="req", schema=[Field(name="x", dtype=Float64)])

    @on_demand_feature_view(sources=[req], schema=[Field(name="y", dtype=Float64)], mode="python")
    def users(inputs: dict[str, list[float]]) -> dict[str, list[float]]:
        return {"y": inputs["x"]}

    with pytest.raises(DefinitionError, match=r"'users' is used by a feature view and a"):
        store.apply([user, view(), users])


def test_join_keys_resolved_from_registered_entity(store: FeatureStore) -> None:
    by_name = FeatureView(
        name="by_name",
        entities=["user"],
        source=source,
        schema=[Field(name="user_id", dtype=Int64), Field(name="age", dtype=Int64)],
    )
    store.apply([user, by_name])
    stored = store.get_feature_view("by_name")
    assert stored.join_keys == ("user_id",)
    assert [f.name for f in stored.features] == ["age"]


def test_lookups_suggest_close_names(store: FeatureStore) -> None:
    store.apply([user, view()])
    with pytest.raises(NotFoundError, match=r"feature view 'usres'.*Did you mean 'users'"):
        store.get_feature_view("usres")
    with pytest.raises(NotFoundError, match=r"entity 'usr'"):
        store.get_entity("usr")


def test_list_filters_by_tags(store: FeatureStore) -> None:
    tagged = FeatureView(
        name="tagged",
        entities=[user],
        source=source,
        schema=[Field(name="x", dtype=Int64)],
        tags={"team": "a"},
    )
    store.apply([user, view(), tagged])
    assert [v.name for v in store.list_feature_views(tags={"team": "a"})] == ["tagged"]


def test_readers_cache_until_ttl(tmp_path: Path, registry_url: str, project_name: str) -> None:
    write_users(tmp_path)
    writer = make_store(tmp_path, registry_url, project_name)
    reader = make_store(tmp_path, registry_url, project_name, ttl=1)
    try:
        writer.apply([user, view()])
        assert reader.get_feature_view("users").ttl == timedelta(days=1)
        writer.apply([view(ttl_days=3)])
        assert reader.get_feature_view("users").ttl == timedelta(days=1)  # cached
        time.sleep(1.1)
        assert reader.get_feature_view("users").ttl == timedelta(days=3)  # refreshed
        writer.apply([view(ttl_days=4)])
        reader.refresh_registry()
        assert reader.get_feature_view("users").ttl == timedelta(days=4)
    finally:
        writer.close()
        reader.close()


def test_rollback_through_the_registry(store: FeatureStore) -> None:
    store.apply([user, view(ttl_days=1)])
    store.apply([view(ttl_days=2)])
    record = store.rollback("users", 1, FeatureView)
    assert record.version == 3
    store.refresh_registry()
    assert store.get_feature_view("users").ttl == timedelta(days=1)


def test_teardown(store: FeatureStore) -> None:
    store.apply([user, view()])
    store.teardown()
    assert store.list_feature_views() == []
    assert store.list_entities() == []


def _apply_views(registry_url: str, root: str, project: str, worker: int) -> None:
    with make_store(Path(root), registry_url, project) as s:
        for i in range(5):
            s.apply([user, view(name=f"w{worker}_v{i}")])


def test_concurrent_applies_lose_nothing(
    tmp_path: Path, registry_url: str, project_name: str
) -> None:
    write_users(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_apply_views, args=(registry_url, str(tmp_path), project_name, w))
        for w in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with make_store(tmp_path, registry_url, project_name) as s:
        names = {v.name for v in s.list_feature_views(allow_cache=False)}
    assert names == {f"w{w}_v{i}" for w in range(4) for i in range(5)}


def test_online_store_may_share_the_registry_file(tmp_path: Path) -> None:
    write_users(tmp_path)
    same = {"path": "data/registry.db"}
    config = parse_config(
        {"project": "p", "registry": same, "online_store": {"type": "sqlite", **same}},
        repo_path=tmp_path,
    )
    with FeatureStore(config=config) as s:
        started = time.monotonic()
        s.apply([user, view()])
        s.apply([user, view(name="other")], partial=False)  # drops 'users' online
        assert time.monotonic() - started < 10  # no apply waits on its own registry lock
        assert [v.name for v in s.list_feature_views()] == ["other"]
