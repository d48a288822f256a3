"""The audit trail: what is recorded, by whom, and that tampering is found; every backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pitstop import FeatureStore, FeatureView
from pitstop.definitions import Model
from pitstop.errors import DataSourceError
from pitstop.registry import audit
from pitstop.registry.audit import Actor, acting_as
from test_feature_store import write_users
from test_lineage import OBJECTS, boosted, user, users
from test_server_registry import configured as make

ALICE = Actor("alice", "sdk@laptop")


@pytest.fixture
def store(tmp_path: Path, registry_url: str, project_name: str) -> Iterator[FeatureStore]:
    write_users(tmp_path)
    with make(tmp_path, registry_url, project_name) as s, acting_as(ALICE):
        s.apply(OBJECTS)
        yield s


def actions(store: FeatureStore) -> list[tuple[str, str]]:
    return [(r.action, r.outcome) for r in store.catalog.audit_log()]


def raw(store: FeatureStore, sql: str, *params: object) -> None:
    store.registry.store._db.execute(sql, params)


def test_changes_are_recorded_with_who_what_which_versions_and_where(store: FeatureStore) -> None:
    with acting_as(Actor("bob", "cli@ci")):
        store.apply([user, users, boosted], partial=False)  # removes the service
    store.rollback("churn", 1)
    store.teardown()
    first, second, third, fourth = store.catalog.audit_log()
    assert (first.seq, first.action, first.principal, first.origin) == (1, "apply", "alice",
                                                                        "sdk@laptop")  # fmt: skip
    assert {(o["name"], o["version"], o["change"]) for o in first.objects} >= {
        ("users", 1, "create"), ("churn", 1, "create")}  # fmt: skip
    assert (second.principal, second.origin) == ("bob", "cli@ci")
    assert second.objects == ({"kind": "feature_service", "name": "churn", "version": 2,
                               "change": "delete"},)  # fmt: skip
    assert third.action == "rollback" and third.objects == (
        {"kind": "feature_service", "name": "churn", "version": 3, "from_version": 1},)  # fmt: skip
    assert fourth.action == "teardown" and {o["name"] for o in fourth.objects} >= {"churn"}
    assert first.at <= second.at <= fourth.at and fourth.at.tzinfo is not None
    assert store.catalog.verify_audit().ok  # the trail outlives the teardown


def test_materialize_and_push_are_recorded_with_their_outcome(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pitstop.engine.materialize

    now = datetime.now(UTC)
    store.materialize(now - timedelta(days=3650), now)
    store.push("users_push", pd.DataFrame({"user_id": [7], "ts": [now], "age": [3],
                                           "score": [1.0]}))  # fmt: skip

    def unreadable(*args: object, **kwargs: object) -> None:
        raise DataSourceError("data/users.parquet is unreadable")

    monkeypatch.setattr(pitstop.engine.materialize, "materialize_view", unreadable)
    with pytest.raises(DataSourceError):
        store.materialize(now - timedelta(days=1), now)
    assert actions(store)[1:] == [("materialize", "ok"), ("push", "ok"), ("materialize", "error")]
    log = store.catalog.audit_log()
    assert log[1].objects == ({"kind": "feature_view", "name": "users"},)
    assert log[2].detail == "to online"
    assert log[3].detail == "data/users.parquet is unreadable"


def test_filters(store: FeatureStore) -> None:
    with acting_as(Actor("bob", "cli@ci")):
        store.register_model("m", "churn")
    later = datetime.now(UTC)
    store.rollback("churn", 1)
    assert [r.principal for r in store.catalog.audit_log(principal="bob")] == ["bob"]
    assert [r.action for r in store.catalog.audit_log(since=later)] == ["rollback"]
    assert [r.seq for r in store.catalog.audit_log(name="m")] == [2]


def test_an_edited_or_deleted_record_is_found(store: FeatureStore) -> None:
    store.register_model("m", "churn")
    store.rollback("churn", 1)
    result = store.catalog.verify_audit()
    assert result.ok and result.records == 3 and result.head.startswith("3:")
    raw(store, "UPDATE pitstop_audit SET principal = 'mallory' WHERE project = ? AND seq = 2",
        store.project)  # fmt: skip
    problems = store.catalog.verify_audit().problems
    assert problems == ["record 2 was changed after it was written (apply by mallory at "
                        f"{store.catalog.audit_log()[1].at.isoformat()})"]  # fmt: skip


def test_deleted_records_are_found(store: FeatureStore) -> None:
    store.register_model("m", "churn")
    store.rollback("churn", 1)
    store.rollback("churn", 1)
    raw(store, "DELETE FROM pitstop_audit WHERE project = ? AND seq = 2", store.project)
    problems = store.catalog.verify_audit().problems
    assert "records 2..2 are missing (deleted)" in problems
    assert any("record 3 does not follow" in p for p in problems)
    raw(store, "DELETE FROM pitstop_audit WHERE project = ? AND seq >= 3", store.project)
    last = store.catalog.verify_audit().problems
    assert any("the trail's head says 4:" in p for p in last)


def test_a_change_and_its_record_are_one_transaction(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(audit, "append", fail)
    with pytest.raises(RuntimeError, match="audit table unavailable"):
        store.register_model("m", "churn")
    monkeypatch.undo()
    assert store.catalog.list(Model, fresh=True) == []  # no model without its record
    assert store.catalog.serial() == 1
    assert actions(store) == [("apply", "ok")]


def test_reads_are_sampled_only_when_asked(
    tmp_path: Path, registry_url: str, project_name: str
) -> None:
    write_users(tmp_path)
    with make(tmp_path, registry_url, project_name) as quiet:
        quiet.apply(OBJECTS)
        quiet.search("age")
        quiet.catalog.describe(FeatureView, "users")
        assert actions(quiet) == [("apply", "ok")]
    with make(tmp_path, registry_url, project_name, audit={"read_sample_rate": 1.0}) as loud:
        loud.search("age")
        loud.catalog.describe(FeatureView, "users")
        loud.lineage("churn")
        assert actions(loud)[1:] == [("read:search", "ok"), ("read:describe", "ok"),
                                     ("read:lineage", "ok")]  # fmt: skip
        assert loud.catalog.audit_log()[1].detail == "age"


def test_cli_lists_and_verifies(tmp_path: Path) -> None:
    from test_cli import pitstop

    pitstop("init", "repo", "--users", "20", cwd=tmp_path)
    repo = tmp_path / "repo"
    pitstop("apply", cwd=repo)
    pitstop("rollback", "user_features", "1", cwd=repo)
    records = json.loads(pitstop("audit", "-o", "json", cwd=repo).stdout)
    assert [r["action"] for r in records] == ["apply", "rollback"]
    assert records[0]["origin"].startswith("cli@") and len(records[1]["hash"]) == 64
    assert "OK: 2 records" in pitstop("audit", "verify", cwd=repo).stdout
    only = json.loads(pitstop("audit", "--object", "user_features", "-o", "json", cwd=repo).stdout)
    assert [r["seq"] for r in only] == [1, 2]
    import sqlite3

    with sqlite3.connect(repo / "data/registry.db") as db:
        db.execute("UPDATE pitstop_audit SET outcome = 'denied' WHERE seq = 1")
    bad = pitstop("audit", "verify", cwd=repo, ok=False)
    assert bad.returncode == 1 and "TAMPERED: record 1 was changed" in bad.stderr


def test_the_server_records_denials_and_who_wrote(
    tmp_path: Path, registry_url: str, project_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    import httpx

    from test_server import thread_server

    monkeypatch.setenv("PITSTOP_TEST_KEYS", "writer:rw reader:ro")
    write_users(tmp_path)
    auth = {"auth": {"type": "api_key", "keys_env": "PITSTOP_TEST_KEYS"}}
    with make(tmp_path, registry_url, project_name, feature_server=auth) as store:
        store.apply(OBJECTS)
        body = {"push_source_name": "users_push",
                "df": {"user_id": [1], "ts": ["2026-01-01T00:00:00Z"], "age": [3],
                       "score": [1.0]}}  # fmt: skip
        with thread_server(store, registry_ttl_sec=0) as url:
            reader = {"Authorization": "Bearer reader"}
            writer = {"Authorization": "Bearer writer"}
            assert httpx.post(f"{url}/push", json=body, headers=reader).status_code == 403
            assert httpx.post(f"{url}/push", json=body).status_code == 401
            assert httpx.post(f"{url}/push", json=body, headers=writer).status_code == 200
        log = store.catalog.audit_log()
        key = "api-key:" + hashlib.sha256(b"reader").hexdigest()[:12]
        assert [(r.action, r.outcome, r.principal) for r in log[1:]] == [
            ("http POST /push", "denied", key),
            ("http POST /push", "denied", "anonymous"),
            ("push", "ok", "api-key:" + hashlib.sha256(b"writer").hexdigest()[:12]),
        ]
        assert log[1].origin == "http 127.0.0.1" and "read-only" in log[1].detail
        assert store.catalog.verify_audit().ok


def test_pushes_are_written_in_the_background_and_at_close(
    tmp_path: Path, registry_url: str, project_name: str
) -> None:
    import time

    write_users(tmp_path)
    row = pd.DataFrame({"user_id": [7], "ts": [datetime.now(UTC)], "age": [3], "score": [1.0]})
    with make(tmp_path, registry_url, project_name) as writer, \
            make(tmp_path, registry_url, project_name) as reader:  # fmt: skip
        writer.apply(OBJECTS)
        writer.push("users_push", row)
        deadline = time.monotonic() + 5
        while len(reader.registry.store.audit_records()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # another process sees it without the writer flushing
        assert [r.action for r in reader.registry.store.audit_records()] == ["apply", "push"]
        writer.catalog._batched.delay = 60  # no background write now: close must write it
        writer.push("users_push", row)
        writer.close()
        assert [r.action for r in reader.registry.store.audit_records()][-1] == "push"
        assert reader.catalog.verify_audit().ok
