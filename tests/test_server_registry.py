"""The read-only registry endpoints of the feature server, on every registry backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pitstop import FeatureStore
from pitstop.config import parse_config
from pitstop.types import Int64
from test_feature_store import write_users
from test_search import OBJECTS, user, view
from test_server import thread_server


def configured(tmp_path: Path, registry_url: str, project: str, **extra: Any) -> FeatureStore:
    registry = (
        {"registry_type": "sql", "path": registry_url}
        if registry_url.startswith("postgresql")
        else {"path": str(tmp_path / "registry.db")}
    )
    data = {"project": project, "registry": registry, **extra}
    return FeatureStore(config=parse_config(data, repo_path=tmp_path))


@pytest.fixture
def served(tmp_path: Path, registry_url: str, project_name: str) -> Iterator[tuple[str, Any]]:
    write_users(tmp_path)
    store = configured(tmp_path, registry_url, project_name)
    store.apply(OBJECTS, skip_source_validation=True, author="alice")
    store.apply([user, view("user_profile", {"age": Int64, "years": Int64})],
                skip_source_validation=True, author="bob")  # fmt: skip
    with thread_server(store, registry_ttl_sec=0) as url:
        yield url, store
    store.close()


def get(url: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, timeout=30)


def test_list_and_describe(served: tuple[str, Any]) -> None:
    url, _ = served
    r = get(url, "/registry/feature-views")
    assert r.status_code == 200, r.text
    objects = r.json()["objects"]
    assert [o["name"] for o in objects] == ["scores", "user_features", "user_profile"]
    assert objects[2]["version"] == 2 and objects[2]["author"] == "bob"
    tagged = get(url, "/registry/feature-views", tag="team=growth").json()["objects"]
    assert [o["name"] for o in tagged] == ["user_features"]
    owned = get(url, "/registry/feature-services", owner="ds@example.com").json()["objects"]
    assert [o["name"] for o in owned] == ["churn_model"]
    one = get(url, "/registry/feature-views/user_features").json()
    assert one["kind"] == "feature_view" and one["spec"]["owner"] == "growth@example.com"
    assert one["applied_at"].endswith("+00:00") and len(one["spec_hash"]) == 64


def test_history_and_diff(served: tuple[str, Any]) -> None:
    url, _ = served
    versions = get(url, "/registry/feature-views/user_profile/history").json()["versions"]
    assert [(v["version"], v["author"], v["deleted"]) for v in versions] == [
        (1, "alice", False), (2, "bob", False)]  # fmt: skip
    diff = get(url, "/registry/feature-views/user_profile/diff", v1=1, v2=2).json()
    changes = {c["path"]: c for c in diff["changes"]}
    assert changes["schema[1].name"] == {"path": "schema[1].name", "op": "changed",
                                         "old": "segment", "new": "years"}  # fmt: skip
    assert changes["owner"]["op"] == "changed"


def test_search(served: tuple[str, Any]) -> None:
    url, _ = served
    r = get(url, "/registry/search", q="age")
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert (results[0]["ref"], results[0]["match"]) == ("user_profile:age", "exact")
    only = get(url, "/registry/search", q="user", kind="feature-views", limit=1).json()
    assert [h["ref"] for h in only["results"]] == ["user_profile"]
    features = get(url, "/registry/search", q="purchses", kind="feature").json()["results"]
    assert {h["match"] for h in features} == {"fuzzy"} and all(h["feature"] for h in features)
    tagged = get(url, "/registry/search", q="user", tag="team=growth").json()["results"]
    assert {h["name"] for h in tagged} == {"user_features"}


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/registry/features-views", {}, 404, "Did you mean 'feature-views'"),
        ("/registry/feature-views/nope", {}, 404, "feature view 'nope' is not in the registry"),
        ("/registry/feature-views/user_profile/history/x", {}, 404, "no endpoint"),
        ("/registry/feature-views/a b", {}, 404, "names use letters"),
        ("/registry/feature-views/user_profile/diff", {"v1": 1}, 400, "'v2' is required"),
        ("/registry/feature-views/user_profile/diff", {"v1": 1, "v2": "x"}, 400, "an integer"),
        ("/registry/feature-views/user_profile/diff", {"v1": 1, "v2": 9}, 404, "no version 9"),
        ("/registry/search", {}, 400, "'q' is required"),
        ("/registry/search", {"q": "a", "limit": 0}, 400, "from 1 to 1000"),
        ("/registry/search", {"q": "a\x01"}, 400, "control characters"),
        ("/registry/search", {"q": "a", "tag": "x"}, 400, "key=value"),
        ("/registry/search", {"q": "a", "owner": "\x00"}, 400, "plain text"),
        ("/registry/search", {"q": "a", "kind": "views"}, 404, "no registry collection"),
    ],
)
def test_mistakes(
    served: tuple[str, Any], path: str, params: dict[str, Any], status: int, message: str
) -> None:
    r = get(served[0], path, **params)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


def test_registry_reads_need_a_key_when_keys_are_set(
    tmp_path: Path, registry_url: str, project_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PITSTOP_TEST_KEYS", "reader:ro")
    auth = {"auth": {"type": "api_key", "keys_env": "PITSTOP_TEST_KEYS"}}
    store = configured(tmp_path, registry_url, project_name, feature_server=auth)
    store.apply(OBJECTS, skip_source_validation=True)
    with thread_server(store, registry_ttl_sec=0) as url:
        assert get(url, "/registry/search", q="age").status_code == 401
        r = httpx.get(f"{url}/registry/entities", headers={"Authorization": "Bearer reader"})
        assert r.status_code == 200 and r.json()["objects"][0]["name"] == "user"
    store.close()


def test_lineage(served: tuple[str, Any]) -> None:
    url, _ = served
    r = get(url, "/registry/feature-services/churn_model/lineage", direction="upstream")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["root"] == "feature_service:churn_model" and data["registry_version"] == 2
    assert {"source": "feature_view:scores", "target": "feature_service:churn_model",
            "relation": "features"} in data["edges"]  # fmt: skip
    old = get(url, "/registry/feature-views/user_profile/lineage", version=1).json()
    assert old["registry_version"] == 1
    bad = get(url, "/registry/feature-views/user_profile/lineage", direction="up")
    assert bad.status_code == 400
    gone = get(url, "/registry/feature-views/user_profile/lineage", version=7)
    assert gone.status_code == 404 and "no registry version 7" in gone.json()["error"]["message"]
