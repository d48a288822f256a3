"""OpenLineage run events of materialize, historical retrieval and push, through
openlineage-python's file transport, checked against the RunEvent structure of the spec.

openlineage-python does not ship the spec's JSON Schema (its code generator reads it from the
OpenLineage source tree), and tests download nothing, so the schema below states, in our own
words, what the spec requires of a run event: the fields, their types and formats. The
events are also rebuilt with the client's own generated model, which checks the run id and
the event time.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pandas as pd
import pytest
import yaml

from pitstop import FeatureStore
from pitstop.catalog.runs import Dataset, Emitter, transport_config
from pitstop.errors import ConfigError
from pitstop.templates.churn import create_repo

pytest.importorskip("openlineage.client")

NAMED = {"type": "object", "required": ["namespace", "name"],
         "properties": {"namespace": {"type": "string", "minLength": 1},
                        "name": {"type": "string", "minLength": 1},
                        "facets": {"type": "object"}}}  # fmt: skip
RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri"},
        "run": {"type": "object", "required": ["runId"],
                "properties": {"runId": {"type": "string", "format": "uuid"},
                               "facets": {"type": "object"}}},
        "job": NAMED,
        "inputs": {"type": "array", "items": NAMED},
        "outputs": {"type": "array", "items": NAMED},
    },
}  # fmt: skip


def events(path: Path) -> list[dict[str, Any]]:
    out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    checker = jsonschema_rs.Draft202012Validator(RUN_EVENT, validate_formats=True)
    for event in out:
        checker.validate(event)
        uuid.UUID(event["run"]["runId"])
        datetime.fromisoformat(event["eventTime"])
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = create_repo(tmp_path / "repo", project="lineage_demo", users=20)
    config = yaml.safe_load((root / "feature_store.yaml").read_text())
    config["lineage"] = {"namespace": "churn",
                             "transport": {"type": "file", "log_file_path": "data/lineage.jsonl",
                                           "append": True}}  # fmt: skip
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config))
    return root


def test_materialize_retrieval_and_push_send_run_events(repo: Path) -> None:
    from pitstop.repo import load_repo

    log = repo / "data/lineage.jsonl"
    with FeatureStore(repo_path=repo) as store:
        store.apply(list(load_repo(repo, project=store.project).all()), partial=False)
        end = datetime.now(UTC)
        store.materialize(end - timedelta(days=400), end, ["user_features"])
        service = store.get_feature_service("churn_model_v1")
        entity_df = pd.DataFrame({"user_id": [1001], "event_timestamp": [end]})
        job = store.get_historical_features(entity_df, service)
        assert not log.exists() or "get_historical_features" not in log.read_text()  # lazy
        job.to_df()
        store.push("transaction_push_source", pd.DataFrame({
            "user_id": [1001], "transaction_amount": [12.5],
            "transaction_timestamp": [end]}))  # fmt: skip
    found = events(log)
    jobs = [(e["job"]["name"], e["eventType"]) for e in found]
    assert jobs == [
        ("materialize.user_features", "START"), ("materialize.user_features", "COMPLETE"),
        ("get_historical_features.churn_model_v1", "START"),
        ("get_historical_features.churn_model_v1", "COMPLETE"),
        ("push.transaction_push_source", "START"), ("push.transaction_push_source", "COMPLETE"),
    ]  # fmt: skip
    assert {e["job"]["namespace"] for e in found} == {"churn"}
    for first, last in zip(found[::2], found[1::2], strict=True):
        assert first["run"]["runId"] == last["run"]["runId"]
    assert [(i["namespace"], i["name"]) for i in found[0]["inputs"]] == [
        ("churn", "data_source.user_features_source")]  # fmt: skip
    assert [o["name"] for o in found[0]["outputs"]] == ["online_store.user_features"]
    retrieval_inputs = {i["name"] for i in found[2]["inputs"]}
    assert retrieval_inputs == {"feature_view.user_features", "feature_view.user_derived_features"}
    assert [o["name"] for o in found[2]["outputs"]] == ["training_set.churn_model_v1"]
    assert [o["name"] for o in found[5]["outputs"]] == [
        "online_store.transaction_streaming_features"
    ]


def test_a_failing_job_sends_fail(repo: Path) -> None:
    from pitstop.repo import load_repo

    with FeatureStore(repo_path=repo) as store:
        store.apply(list(load_repo(repo, project=store.project).all()), partial=False)
        (repo / "data/user_features.parquet").unlink()
        with pytest.raises(Exception, match="user_features"):
            store.materialize(datetime(2020, 1, 1), datetime.now(UTC), ["user_features"])
    states = [e["eventType"] for e in events(repo / "data/lineage.jsonl")]
    assert states == ["START", "FAIL"]


def test_without_the_section_nothing_is_sent(tmp_path: Path) -> None:
    root = create_repo(tmp_path / "repo", project="quiet", users=10)
    with FeatureStore(repo_path=root) as store:
        assert store.config.lineage is None
        with store._run("x", [], []):
            pass
    assert not list(root.rglob("*.jsonl"))


def test_events_are_the_clients_own_model(tmp_path: Path) -> None:
    from openlineage.client.serde import Serde

    emitter = Emitter("ns", {"type": "console"})
    run_id = str(uuid.uuid4())
    event = emitter.event("START", run_id, "job", [Dataset("feature_view", "a")], [])
    data = json.loads(Serde.to_json(event))
    jsonschema_rs.Draft202012Validator(RUN_EVENT, validate_formats=True).validate(data)
    with pytest.raises(jsonschema_rs.ValidationError):  # the schema does reject bad events
        jsonschema_rs.Draft202012Validator(RUN_EVENT, validate_formats=True).validate(
            {**data, "run": {"runId": "x"}}
        )
    assert data["schemaURL"].startswith("https://openlineage.io/spec/")
    with pytest.raises(ValueError, match="badly formed"):
        emitter.event("START", "not-a-uuid", "job", [], [])


@pytest.mark.parametrize(
    ("transport", "message"),
    [
        ({"type": "kafka"}, "must be one of console, file, http"),
        ({"type": "file"}, "log_file_path: name the file"),
        ({"type": "http"}, "url: give the lineage server's URL"),
    ],
)
def test_transport_mistakes(tmp_path: Path, transport: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        transport_config(transport, tmp_path)
