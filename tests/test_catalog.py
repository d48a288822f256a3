"""The catalog: typed lookups, listings by tag and owner, versions, on every registry backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pitstop import (
    DataSource,
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    StreamFeatureView,
)
from pitstop.catalog.kinds import COLLECTIONS, collection, parse_kind
from pitstop.definitions.serde import KINDS, from_spec
from pitstop.errors import NotFoundError
from pitstop.registry.store import RegistryStore
from pitstop.types import Float64, Int64
from test_feature_store import make_store, write_users

user = Entity(name="user", join_keys=["user_id"], owner="growth@example.com")
source = FileSource(path="data/users.parquet", timestamp_field="ts")


def users(ttl_days: int = 1, **extra: object) -> FeatureView:
    return FeatureView(
        name="users",
        entities=[user],
        ttl=timedelta(days=ttl_days),
        schema=[Field(name="age", dtype=Int64), Field(name="score", dtype=Float64)],
        source=source,
        **extra,  # type: ignore[arg-type]
    )


scores = FeatureView(
    name="scores",
    entities=[user],
    schema=[Field(name="score", dtype=Float64)],
    source=source,
    tags={"team": "risk"},
    owner="risk@example.com",
)


@pytest.fixture
def store(tmp_path: Path, registry_url: str, project_name: str) -> Iterator[FeatureStore]:
    write_users(tmp_path)
    with make_store(tmp_path, registry_url, project_name) as s:
        yield s


def test_get_is_typed_by_class(store: FeatureStore) -> None:
    store.apply([user, users(), scores])
    view = store.catalog.get(FeatureView, "users")
    assert isinstance(view, FeatureView) and view.name == "users"
    assert store.catalog.get(Entity, "user").owner == "growth@example.com"
    # a subclass narrows the kind: the source is a FileSource, not a PushSource
    assert isinstance(store.catalog.get(FileSource, "users_source"), FileSource)
    with pytest.raises(NotFoundError, match="is a FileSource, not a PushSource"):
        store.catalog.get(PushSource, "users_source")


def test_a_miss_names_close_names_and_other_kinds(store: FeatureStore) -> None:
    store.apply([user, users()])
    with pytest.raises(NotFoundError, match=r"feature view 'user' is not in the registry\. "
                       r"Did you mean 'users'\? \('user' is an entity\.\)"):  # fmt: skip
        store.catalog.get(FeatureView, "user")
    with pytest.raises(NotFoundError, match="stream feature view 'users' is not in the registry"):
        store.catalog.get(StreamFeatureView, "users")


def test_list_filters_by_tags_and_owner(store: FeatureStore) -> None:
    store.apply([user, users(tags={"team": "growth"}), scores])
    catalog = store.catalog
    assert [v.name for v in catalog.list(FeatureView)] == ["scores", "users"]
    assert [v.name for v in catalog.list(FeatureView, tags={"team": "risk"})] == ["scores"]
    assert [v.name for v in catalog.list(FeatureView, owner="risk@example.com")] == ["scores"]
    assert catalog.list(FeatureView, tags={"team": "risk"}, owner="x") == []
    assert [s.name for s in catalog.list(DataSource)] == ["users_source"]
    # Feast's listings are the catalog's
    assert store.list_feature_views(tags={"team": "growth"}) == [users(tags={"team": "growth"})]


def test_describe_history_diff_and_rollback(store: FeatureStore) -> None:
    store.apply([user, users(1)], author="alice")
    store.apply([user, users(2)], author="bob")
    catalog = store.catalog
    entry = catalog.describe(FeatureView, "users")
    assert (entry.version, entry.author, entry.kind) == (2, "bob", "feature_view")
    data = entry.to_dict()
    assert data["spec"]["ttl_seconds"] == 172800 and data["version"] == 2
    json.dumps(data)  # plain data
    assert [r.author for r in catalog.history("users", FeatureView)] == ["alice", "bob"]
    assert [(c.path, c.old, c.new) for c in catalog.diff("users", 1, 2)] == [
        ("ttl_seconds", 86400, 172800)
    ]
    record = catalog.rollback("users", 1, FeatureView, author="carol")
    assert (record.version, record.author) == (3, "carol")
    # the rollback is visible at once, without waiting for the cache
    assert catalog.get(FeatureView, "users").ttl == timedelta(days=1)
    assert catalog.version("users", 3).spec == catalog.version("users", 1).spec
    assert catalog.serial() == 3


def test_teardown_through_the_catalog(store: FeatureStore) -> None:
    store.apply([user, users()])
    store.catalog.teardown()
    assert store.catalog.list(FeatureView) == []
    assert store.catalog.serial() == 0


def test_every_definition_carries_description_owner_and_tags() -> None:
    for kind, cls in KINDS.items():  # declared on the class or a base of it
        declared = {name for c in cls.__mro__ for name in vars(c).get("__annotations__", {})}
        assert {"description", "owner", "tags"} <= declared, kind
    for obj in (user, users(), scores, FeatureService(name="svc", features=[scores]), source):
        spec = obj.to_spec()
        assert {"description", "owner", "tags"} <= spec.keys(), obj


def test_specs_without_description_owner_or_tags_still_read(
    registry_url: str, project_name: str
) -> None:
    """Registries written before these fields existed keep working."""
    spec = users().to_spec()
    for key in ("description", "owner", "tags"):
        spec.pop(key)
    with RegistryStore.open(registry_url, project_name) as raw:
        raw.apply([("feature_view", "users", spec)])
        stored = raw.live()["feature_view"]["users"].spec
    assert stored is not None
    view = from_spec("feature_view", stored)
    assert (view.description, view.owner, view.tags) == ("", "", {})  # type: ignore[attr-defined]


def test_kind_names_at_the_edges() -> None:
    for text in ("feature_view", "feature-view", "feature-views", "FeatureView", "feature view"):
        assert parse_kind(text) is FeatureView
    assert parse_kind("entities") is Entity
    assert collection(StreamFeatureView) == "stream-feature-views"
    assert set(COLLECTIONS.values()) == set(KINDS.values())
    with pytest.raises(NotFoundError, match=r"'feature_veiw' is not a kind.*Did you mean"):
        parse_kind("feature_veiw")
