"""Pinned views (``view@v2:feature``, ``view.with_version(2)``) and staged versions, through
the SDK, on every registry backend."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pitstop import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    on_demand_feature_view,
)
from pitstop.definitions import Permission, Role
from pitstop.definitions.datasets import SavedDatasetFileStorage
from pitstop.errors import DefinitionError, NotFoundError, PermissionDeniedError, RetrievalError
from pitstop.registry.audit import Actor, acting_as
from pitstop.types import Float64, Int64
from test_cli import PITSTOP
from test_server import thread_server
from test_server_registry import configured

NOW = datetime.now(UTC).replace(microsecond=0)
ROW_TS = NOW - timedelta(days=3)  # older than v1's TTL (1 day), within v2's (10 days)

user = Entity(name="user", join_keys=["user_id"])


def users(version: int, **changes: object) -> FeatureView:
    """The view ``users`` as its version ``version`` is defined: v1 reads v1.parquet (a, b;
    TTL 1 day), v2 and later read v2.parquet (a, b, c; TTL 10 days)."""
    schema = [Field(name="a", dtype=Int64), Field(name="b", dtype=Float64)]
    if version >= 2:
        schema.append(Field(name="c", dtype=Int64))
    options: dict[str, object] = {
        "name": "users",
        "entities": [user],
        "ttl": timedelta(days=1 if version == 1 else 10),
        "schema": schema,
        "source": FileSource(name=f"users_v{min(version, 2)}", path=f"data/v{min(version, 2)}"
                             ".parquet", timestamp_field="ts"),
        "description": f"users as of v{version}",
        **changes,
    }  # fmt: skip
    return FeatureView(**options)  # type: ignore[arg-type]


def write_data(root: Path) -> None:
    (root / "data").mkdir(exist_ok=True)
    ts = pa.array([ROW_TS, ROW_TS], pa.timestamp("us", "UTC"))
    pq.write_table(pa.table({"user_id": [1, 2], "ts": ts, "a": [10, 20], "b": [0.1, 0.2]}),
                   root / "data/v1.parquet")  # fmt: skip
    pq.write_table(pa.table({"user_id": [1, 2], "ts": ts, "a": [11, 21], "b": [1.1, 1.2],
                             "c": [100, 200]}), root / "data/v2.parquet")  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, registry_url: str, project_name: str) -> Iterator[FeatureStore]:
    write_data(tmp_path)
    with configured(tmp_path, registry_url, project_name) as s:
        s.apply([user, users(1)])
        s.apply([user, users(2)])  # v2 served
        yield s


def rows(*at: datetime) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1] * len(at), "event_timestamp": list(at)})


# --- historical ---------------------------------------------------------------------------------


def test_historical_reads_each_version_as_it_was(store: FeatureStore) -> None:
    features = ["users@v1:a", "users@v2:a", "users:c", "users@v1:b"]
    df = store.get_historical_features(rows(ROW_TS + timedelta(hours=1), NOW), features,
                                       full_feature_names=True).to_df()  # fmt: skip
    assert list(df.columns[-4:]) == ["users@v1__a", "users@v2__a", "users__c", "users@v1__b"]
    assert df["users@v1__a"].tolist()[0] == 10  # v1's source
    assert df["users@v2__a"].tolist() == [11, 11]  # v2's source
    assert df["users__c"].tolist() == [100, 100]  # the served version: v2
    assert pd.isna(df["users@v1__a"].tolist()[1])  # v1's TTL: 1 day, the row is 3 days old


def test_a_pinned_version_keeps_plain_names(store: FeatureStore) -> None:
    df = store.get_historical_features(rows(NOW), ["users@v2:a", "users@v1:b"]).to_df()
    assert list(df.columns[-2:]) == ["a", "b"]
    assert df["a"].tolist() == [11]


def test_two_versions_of_a_view_need_full_names(store: FeatureStore) -> None:
    with pytest.raises(RetrievalError, match=r"feature name 'a' is produced by both 'users@v1' "
                       r"and 'users@v2'; pass full_feature_names=True"):  # fmt: skip
        store.get_historical_features(rows(NOW), ["users@v1:a", "users@v2:a"])
    with pytest.raises(RetrievalError, match=r"produced by both 'users' and 'users@v1'"):
        store.get_historical_features(rows(NOW), ["users:a", "users@v1:a"])


def test_reference_mistakes(store: FeatureStore) -> None:
    def fetch(*refs: str) -> None:
        store.get_historical_features(rows(NOW), list(refs))

    with pytest.raises(NotFoundError, match=r"feature view 'users' has no version 7 to read "
                       r"\(v7 does not exist\); its versions are v1, v2 \(served\)\. Pin one of "
                       r"them, e\.g\. 'users@v2:<feature>'"):  # fmt: skip
        fetch("users@v7:a")
    with pytest.raises(NotFoundError, match=r"feature view 'users@v1' has no feature 'c'"):
        fetch("users@v1:c")
    with pytest.raises(RetrievalError, match=r"'users@2:a': a pinned version is written "
                       r"'view@vN' with N a version number from 1"):  # fmt: skip
        fetch("users@2:a")
    with pytest.raises(RetrievalError, match=r"'users@v0:a': a pinned version"):
        fetch("users@v0:a")
    with pytest.raises(NotFoundError, match=r"feature view 'usrs' is not in the registry, in "
                       r"any version\. Did you mean 'users'"):  # fmt: skip
        fetch("usrs@v1:a")


def test_a_deleted_view_is_still_readable_by_version(store: FeatureStore) -> None:
    store.apply([user], partial=False)  # users removed: v3 is its deletion
    with pytest.raises(NotFoundError, match=r"feature view 'users' is not in the registry"):
        store.get_historical_features(rows(NOW), ["users:a"])
    df = store.get_historical_features(rows(NOW), ["users@v2:a"]).to_df()
    assert df["a"].tolist() == [11]
    with pytest.raises(NotFoundError, match=r"has no version 3 to read \(v3 is its deletion\); "
                       r"its versions are v1, v2\."):  # fmt: skip
        store.get_historical_features(rows(NOW), ["users@v3:a"])


# --- staged versions -----------------------------------------------------------------------------


def test_stage_then_promote(store: FeatureStore) -> None:
    changes = store.apply([user, users(3, ttl=timedelta(hours=1))], stage=True)
    [staged] = [c for c in changes if c.name == "users"]
    assert (staged.action, staged.version, staged.staged) == ("update", 3, True)
    assert store.get_feature_view("users").description == "users as of v2"  # still served
    assert [(r.version, r.status) for r in store.history("users")] == [
        (1, ""), (2, "served"), (3, "staged")]  # fmt: skip
    df = store.get_historical_features(rows(NOW), ["users:a", "users@v3:c"],
                                       full_feature_names=True).to_df()  # fmt: skip
    assert df["users__a"].tolist() == [11]  # v2: TTL 10 days
    assert pd.isna(df["users@v3__c"].tolist()[0])  # v3 (staged): TTL 1 hour

    rec = store.promote("users", 3)
    assert rec.version == 3
    assert store.get_feature_view("users").ttl == timedelta(hours=1)
    assert [r.status for r in store.history("users")] == ["", "", "served"]
    log = store.catalog.audit_log(name="users")
    assert [r.action for r in log][-2:] == ["stage", "promote"]


def test_a_staged_new_view_is_served_once_promoted(store: FeatureStore, tmp_path: Path) -> None:
    fresh = users(2, name="fresh")
    store.apply([fresh], stage=True)
    with pytest.raises(NotFoundError, match=r"feature view 'fresh' is not in the registry"):
        store.get_online_features(["fresh:a"], [{"user_id": 1}])
    with pytest.raises(DefinitionError, match=r"feature view 'fresh' v1 cannot be read online: "
                       r"no version of 'fresh' is served as a feature view, so the online store "
                       r"holds no values for it\. Read v1 offline \(get_historical_features\), "
                       r"or serve it: `pitstop promote fresh 1`, then materialize\."):  # fmt: skip
        store.get_online_features(["fresh@v1:a"], [{"user_id": 1}])
    assert not online_tables(tmp_path, "fresh")  # staging leaves the online store alone
    store.promote("fresh", 1)
    assert online_tables(tmp_path, "fresh")
    store.materialize(NOW - timedelta(days=5), NOW)
    assert store.get_online_features(["fresh:c"], [{"user_id": 2}]).to_dict()["c"] == [200]


def online_tables(root: Path, view: str) -> list[str]:
    with sqlite3.connect(root / "data" / "online_store.db") as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return [n for n in names if n.endswith(f":{view}")]


# --- online ---------------------------------------------------------------------------------------


def test_online_serves_a_pinned_version_from_the_served_values(store: FeatureStore) -> None:
    store.materialize(NOW - timedelta(days=5), NOW)  # values of the served v2
    got = store.get_online_features(["users@v1:a", "users@v2:c", "users:b"],
                                    [{"user_id": 1}, {"user_id": 7}],
                                    full_feature_names=True)  # fmt: skip
    assert got.to_dict() == {"user_id": [1, 7], "users@v1__a": [None, None],
                             "users@v2__c": [100, None], "users__b": [1.1, None]}  # fmt: skip
    assert got.statuses["users@v1__a"] == ["OUTSIDE_MAX_AGE", "NOT_FOUND"]  # v1's TTL: 1 day
    assert got.statuses["users@v2__c"] == ["PRESENT", "NOT_FOUND"]
    plain = store.get_online_features(["users@v2:a"], [{"user_id": 2}]).to_dict()
    assert plain == {"user_id": [2], "a": [21]}


def test_online_refuses_what_the_served_version_cannot_answer(store: FeatureStore) -> None:
    store.materialize(NOW - timedelta(days=5), NOW)
    store.promote("users", 1)  # v1 serves a and b only
    with pytest.raises(DefinitionError, match=r"feature view 'users' v2 cannot be read online: "
                       r"feature 'c' is not in the served v1, whose values the online store "
                       r"holds \(its features: a, b\)\. Read v2 offline "
                       r"\(get_historical_features\), or serve it: `pitstop promote users 2`, "
                       r"then materialize\."):  # fmt: skip
        store.get_online_features(["users@v2:c"], [{"user_id": 1}])
    retyped = users(4, schema=[Field(name="a", dtype=Float64)])
    store.apply([retyped], stage=True)
    with pytest.raises(DefinitionError, match=r"feature 'a' is Float64 in v3 but Int64 in the "
                       r"served v1"):  # fmt: skip
        store.get_online_features(["users@v3:a"], [{"user_id": 1}])
    shop = Entity(name="shop", join_keys=["shop_id"])
    store.apply([shop, users(5, entities=[shop])], stage=True, skip_source_validation=True)
    with pytest.raises(DefinitionError, match=r"the online store holds values of the served v1 "
                       r"\(feature_view keyed by user_id\), not of a feature_view keyed by "
                       r"shop_id"):  # fmt: skip
        store.get_online_features(["users@v4:a"], [{"shop_id": 1}])
    assert store.get_online_features(["users@v2:a"], [{"user_id": 1}]).to_dict()["a"] == [11]


@on_demand_feature_view(sources=[users(2)], schema=[Field(name="out", dtype=Int64)],
                        mode="python", name="scaled")  # fmt: skip
def scaled_v1(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {"out": [None if a is None else a * 2 for a in inputs["a"]]}


@on_demand_feature_view(sources=[users(2)], schema=[Field(name="out", dtype=Int64)],
                        mode="python", name="scaled")  # fmt: skip
def scaled_v2(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {"out": [None if a is None else a * 3 for a in inputs["a"]]}


def test_an_on_demand_view_runs_its_pinned_function(store: FeatureStore) -> None:
    store.apply([scaled_v1])
    store.apply([scaled_v2], stage=True)
    refs = ["scaled:out", "scaled@v2:out"]
    df = store.get_historical_features(rows(NOW), refs, full_feature_names=True).to_df()
    assert (df["scaled__out"].tolist(), df["scaled@v2__out"].tolist()) == ([22], [33])
    store.materialize(NOW - timedelta(days=5), NOW)
    online = store.get_online_features(refs, [{"user_id": 2}], full_feature_names=True)
    assert online.to_dict() == {"user_id": [2], "scaled__out": [42], "scaled@v2__out": [63]}


# --- feature services --------------------------------------------------------------------------


def test_a_feature_service_can_pin_a_version(store: FeatureStore) -> None:
    svc = FeatureService(name="svc", features=[users(1).with_version(1)[["a"]], users(2)[["c"]]])
    assert svc.to_spec()["features"][0]["version"] == 1
    assert "version" not in svc.to_spec()["features"][1]  # unpinned specs keep their hash
    store.apply([svc])
    assert store.get_feature_service("svc").projections[0].version == 1

    df = store.get_historical_features(rows(ROW_TS + timedelta(hours=1)), svc,
                                       full_feature_names=True).to_df()  # fmt: skip
    assert list(df.columns[-2:]) == ["users@v1__a", "users__c"]
    assert (df["users@v1__a"].tolist(), df["users__c"].tolist()) == ([10], [100])

    store.materialize(NOW - timedelta(days=5), NOW)
    online = store.get_online_features(store.get_feature_service("svc"), [{"user_id": 2}])
    assert online.to_dict() == {"user_id": [2], "a": [None], "c": [200]}  # v1's TTL again
    assert online.statuses["a"] == ["OUTSIDE_MAX_AGE"]


def test_a_service_pinning_a_missing_version_is_refused(store: FeatureStore) -> None:
    svc = FeatureService(name="svc", features=[users(2).with_version("v9")])
    with pytest.raises(DefinitionError, match=r"feature service 'svc' uses 'users@v9': feature "
                       r"view 'users' has no version 9 to read"):  # fmt: skip
        store.apply([svc])
    picky = FeatureService(name="svc", features=[users(1).with_version(1)])
    store.apply([picky])
    older = FeatureService(name="svc", features=[users(1).with_version(2)[["c"]]])
    store.apply([older])  # 'c' is not in the repo's users(1), but in the registry's v2
    bad = FeatureService(name="svc2", features=[users(2).with_version(1)[["c"]]])
    with pytest.raises(DefinitionError, match=r"feature service 'svc2' selects feature 'c' of "
                       r"'users@v1', which has no such feature"):  # fmt: skip
        store.apply([bad])
    assert [s.name for s in store.list_feature_services()] == ["svc"]


def test_with_version_mistakes() -> None:
    with pytest.raises(DefinitionError, match=r"FeatureView 'users'\.with_version: version must "
                       r"be a version number from 1 \(2 or 'v2'\), got 0"):  # fmt: skip
        users(1).with_version(0)
    with pytest.raises(DefinitionError, match=r"got 'latest'"):
        users(1).with_version("latest")
    assert users(1).with_version("v3").projection.name_to_use == "users@v3"
    assert users(1).with_version(3).with_name("old").projection.name_to_use == "old"


def test_a_saved_dataset_remembers_pinned_features(store: FeatureStore) -> None:
    job = store.get_historical_features(rows(NOW), ["users@v1:a", "users:c"])
    dataset = store.create_saved_dataset(
        from_=job, name="train", storage=SavedDatasetFileStorage(path="data/train.parquet")
    )
    assert dataset.features == ("users@v1:a", "users:c")
    assert dataset.views == ("users",)
    assert "users" in [n.name for n in store.lineage("train").upstream()]


# --- access control -----------------------------------------------------------------------------


def test_a_pinned_read_obeys_the_tags_the_view_has_now(store: FeatureStore) -> None:
    admin, analyst = Actor("admin", "t"), Actor("analyst", "t")
    policy = [
        Role(name="admins", principals=["admin"]),
        Role(name="analysts", principals=["analyst"]),
        Permission(name="all", roles=["admins"],
                   actions=["describe", "apply", "delete", "read_offline", "read_online"]),
        Permission(name="public", roles=["analysts"], actions=["read_offline"],
                   required_tags={"pii": "false"}),
    ]  # fmt: skip
    with acting_as(admin):
        store.apply([*policy, users(3, tags={"pii": "false"})])
        store.apply([users(4, tags={"pii": "true"})])  # served v4: restricted
    with acting_as(analyst), pytest.raises(PermissionDeniedError, match=r"analyst may not read "
                                           r"offline feature view 'users'"):  # fmt: skip
        store.get_historical_features(rows(NOW), ["users@v3:a"])
    with acting_as(admin):
        store.promote("users", 3)
    with acting_as(analyst):
        assert store.get_historical_features(rows(NOW), ["users@v3:a"]).to_df()["a"].size == 1
        with pytest.raises(PermissionDeniedError, match=r"analyst may not apply"):
            store.promote("users", 4)


# --- feature server and command line --------------------------------------------------------------


def test_the_feature_server_reads_pinned_versions(store: FeatureStore) -> None:
    store.materialize(NOW - timedelta(days=5), NOW)
    store.apply([user, users(3, description="next")], stage=True)
    with thread_server(store, registry_ttl_sec=0) as url:

        def post(features: list[str], **extra: object) -> httpx.Response:
            body = {"features": features, "entities": {"user_id": [2]}, **extra}
            return httpx.post(f"{url}/get-online-features", json=body, timeout=30)

        ok = post(["users@v1:a", "users@v3:c"], full_feature_names=True)
        assert ok.status_code == 200, ok.text
        data = ok.json()
        assert data["metadata"]["feature_names"] == ["user_id", "users@v1__a", "users@v3__c"]
        assert [r["statuses"][0] for r in data["results"][1:]] == ["OUTSIDE_MAX_AGE", "PRESENT"]
        assert data["results"][2]["values"] == [200]

        missing = post(["users@v9:a"])
        assert missing.status_code == 404
        assert missing.json()["error"]["message"].startswith(
            "feature view 'users' has no version 9 to read (v9 does not exist); its versions are "
            "v1, v2 (served), v3 (staged)."
        )
        assert post(["users@v1:a", "users@v2:a"]).status_code == 400  # the names collide
        assert post(["users@x1:a"]).json()["error"]["type"] == "RetrievalError"
        store.promote("users", 1)
        refused = post(["users@v2:c"])
        assert refused.status_code == 422
        assert "feature view 'users' v2 cannot be read online" in refused.text

        history = httpx.get(f"{url}/registry/feature-views/users/history", timeout=30).json()
        assert [(v["version"], v["status"]) for v in history["versions"]] == [
            (1, "served"), (2, ""), (3, "staged")]  # fmt: skip


def test_command_line_stage_promote_history(store: FeatureStore, tmp_path: Path) -> None:
    (tmp_path / "feature_store.yaml").write_text(yaml.safe_dump(store.config.model_dump(
        mode="json", exclude={"repo_path"}, exclude_none=True)))  # fmt: skip
    (tmp_path / "repo.py").write_text(
        "from datetime import timedelta\n"
        "from pitstop import Entity, FeatureView, Field, FileSource\n"
        "from pitstop.types import Float64, Int64\n"
        "user = Entity(name='user', join_keys=['user_id'])\n"
        "users = FeatureView(name='users', entities=[user], ttl=timedelta(days=3),\n"
        "    schema=[Field(name='a', dtype=Int64), Field(name='b', dtype=Float64)],\n"
        "    source=FileSource(name='users_v1', path='data/v1.parquet', timestamp_field='ts'))\n"
    )

    def pitstop(*args: str) -> str:
        proc = subprocess.run([PITSTOP, "-c", str(tmp_path), *args], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    staged = pitstop("apply", "--stage")
    assert "Staged feature view users as v3 (not served; `pitstop promote users 3` serves it)" in (
        " ".join(staged.split())
    )
    assert "Deleted" not in staged  # a staged apply removes nothing (data source users_v2)
    rows = [line.split() for line in pitstop("history", "users").splitlines() if "│ v" in line]
    assert [(r[1], r[-2]) for r in rows] == [("v1", "│"), ("v2", "served"), ("v3", "staged")]
    assert "feature view 'users' serves v3" in pitstop("promote", "users", "3")
    listed = json.loads(pitstop("history", "users", "-o", "json"))
    assert [v["status"] for v in listed] == ["", "", "served"]
    proc = subprocess.run([PITSTOP, "-c", str(tmp_path), "promote", "users", "8"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1
    assert "has no version 8; its versions are 1..3" in proc.stderr
