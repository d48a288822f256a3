"""The command line, run as users run it: a subprocess in a temporary feature repo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PITSTOP = str(Path(sys.executable).with_name("pitstop"))


def pitstop(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([PITSTOP, *args], cwd=cwd, capture_output=True, text=True, env=env)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    pitstop("init", "repo", "--users", "20", cwd=root)
    return root / "repo"


def test_init_creates_a_repo_with_data(repo: Path) -> None:
    assert (repo / "feature_store.yaml").is_file()
    assert (repo / "features" / "user_features.py").is_file()
    assert (repo / "data" / "user_features.parquet").is_file()
    assert (repo / "data" / "transactions.parquet").is_file()


def test_init_refuses_a_non_empty_folder(repo: Path) -> None:
    proc = pitstop("init", str(repo), cwd=repo.parent, ok=False)
    assert proc.returncode == 1
    assert "already exists and is not empty" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_apply_then_lists(repo: Path) -> None:
    first = pitstop("apply", cwd=repo).stdout
    assert "Created feature view user_features" in first
    assert "Created on-demand feature view user_derived_features" in first
    assert "Created stream feature view transaction_streaming_features" in first
    assert "No changes" in pitstop("apply", cwd=repo).stdout
    listing = pitstop("feature-views", "list", cwd=repo).stdout
    assert "user_features" in listing and "transaction_features" in listing
    for group, name in [
        ("entities", "user_id"),
        ("data-sources", "user_features_source"),
        ("on-demand-feature-views", "user_derived_features"),
        ("stream-feature-views", "transaction_streaming_features"),
        ("feature-services", "churn_model_v1"),
    ]:
        assert name in pitstop(group, "list", cwd=repo).stdout, group
    spec = json.loads(pitstop("feature-views", "describe", "user_features", cwd=repo).stdout)
    assert spec["ttl_seconds"] == 86400
    dump = json.loads(pitstop("registry-dump", cwd=repo).stdout)
    assert dump["project"] == "churn_prediction"
    assert {s["name"] for s in dump["objects"]["feature_view"]} == {
        "user_features",
        "transaction_features",
    }


def test_chdir_and_yaml_options(repo: Path) -> None:
    pitstop("apply", cwd=repo)
    out = pitstop("-c", str(repo), "entities", "list", cwd=repo.parent).stdout
    assert "user_id" in out
    yaml_path = str(repo / "feature_store.yaml")
    out = pitstop("-f", yaml_path, "feature-services", "list", cwd=repo.parent).stdout
    assert "churn_model_v1" in out


def test_plan_apply_history_diff_rollback(repo: Path) -> None:
    pitstop("apply", cwd=repo)
    source = repo / "features" / "user_features.py"
    original = source.read_text()
    try:
        source.write_text(original.replace("ttl=timedelta(days=1)", "ttl=timedelta(days=2)"))
        plan = pitstop("plan", cwd=repo).stdout
        assert "Will update feature view user_features" in plan
        assert "ttl_seconds: 86400.0 → 172800.0" in plan
        assert "Will update" in pitstop("plan", cwd=repo).stdout  # plan wrote nothing
        applied = pitstop("apply", cwd=repo).stdout
        assert "Updated feature view user_features" in applied
    finally:
        source.write_text(original)
    history = pitstop("history", "user_features", "--kind", "feature_view", cwd=repo).stdout
    assert "v1" in history and "v2" in history
    diff = pitstop("diff", "user_features", "1", "2", "--kind", "feature_view", cwd=repo).stdout
    assert "ttl_seconds: 86400.0 → 172800.0" in diff
    out = pitstop("rollback", "user_features", "1", "--kind", "feature_view", cwd=repo).stdout
    assert "now v3 (= v1)" in out
    spec = json.loads(pitstop("feature-views", "describe", "user_features", cwd=repo).stdout)
    assert spec["ttl_seconds"] == 86400
    assert "No changes" in pitstop("apply", cwd=repo).stdout  # repo == rolled-back registry


def test_removed_object_is_deleted_with_history_kept(repo: Path) -> None:
    pitstop("apply", cwd=repo)
    services = repo / "features" / "services.py"
    original = services.read_text()
    try:
        services.unlink()
        assert "Will delete feature service churn_model_v1" in pitstop("plan", cwd=repo).stdout
        assert "Deleted feature service churn_model_v1" in pitstop("apply", cwd=repo).stdout
        assert "churn_model_v1" not in pitstop("feature-services", "list", cwd=repo).stdout
        assert "deleted" in pitstop("history", "churn_model_v1", cwd=repo).stdout
    finally:
        services.write_text(original)
    assert "Created feature service churn_model_v1" in pitstop("apply", cwd=repo).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["feature-views", "describe", "user_featurs"], "Did you mean 'user_features'"),
        (["history", "no_such_thing"], "no_such_thing"),
        (["diff", "user_features", "1", "99", "--kind", "feature_view"], "99"),
    ],
)
def test_user_mistakes_are_one_line_errors(repo: Path, args: list[str], message: str) -> None:
    pitstop("apply", cwd=repo)
    proc = pitstop(*args, cwd=repo, ok=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_yaml_is_a_clear_error(tmp_path: Path) -> None:
    proc = pitstop("apply", cwd=tmp_path, ok=False)
    assert proc.returncode == 1
    assert "feature_store.yaml" in proc.stderr and "pitstop init" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_broken_definition_file_names_the_file(tmp_path: Path) -> None:
    pitstop("init", "r", "--users", "5", cwd=tmp_path)
    (tmp_path / "r" / "features" / "broken.py").write_text("x = 1 +\n")
    proc = pitstop("apply", cwd=tmp_path / "r", ok=False)
    assert proc.returncode == 1
    assert "features/broken.py" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_teardown_removes_everything(tmp_path: Path) -> None:
    pitstop("init", "r", "--users", "5", cwd=tmp_path)
    repo = tmp_path / "r"
    pitstop("apply", cwd=repo)
    assert "torn down" in pitstop("teardown", "--yes", cwd=repo).stdout
    assert "No feature views registered" in pitstop("feature-views", "list", cwd=repo).stdout


def test_version() -> None:
    assert pitstop("version", cwd=Path.cwd()).stdout.startswith("pitstop ")


def test_materialize_then_verify(tmp_path: Path) -> None:
    pitstop("init", "r", "--users", "10", cwd=tmp_path)
    repo = tmp_path / "r"
    pitstop("apply", cwd=repo)
    out = pitstop("materialize", "2020-01-01T00:00:00", "2100-01-01T00:00:00", cwd=repo).stdout
    assert "user_features: 10 rows" in out
    assert re.search(r"user_features +━+ 10/10 +rows [\d,]+ rows/s +[\d:]+ ETA [\d:]+", out)
    again = pitstop("materialize-incremental", "2100-01-01T00:00:00", "-v", "user_features",
                    cwd=repo).stdout  # fmt: skip
    assert "user_features: 0 rows" in again
    ok = pitstop("verify", "--view", "user_features", "--sample", "5", cwd=repo)
    assert ok.stdout.startswith("OK user_features: 5 entities")
    bad = pitstop("materialize", "2100-01-01", "2020-01-01", cwd=repo, ok=False)
    assert bad.returncode == 1 and "is after end" in bad.stderr
    wrong = pitstop("materialize-incremental", "tomorrow", cwd=repo, ok=False)
    assert "'tomorrow' is not a timestamp" in wrong.stderr


def test_verify_exits_1_on_a_mismatch(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from pitstop import FeatureStore

    pitstop("init", "r", "--users", "3", cwd=tmp_path)
    repo = tmp_path / "r"
    pitstop("apply", cwd=repo)
    pitstop("materialize", "2020-01-01T00:00:00", "2100-01-01T00:00:00", cwd=repo)
    with FeatureStore(repo_path=repo) as store:  # an online value offline data does not have
        row = {"user_id": [1001], "total_purchases": [10**6], "avg_purchase_amount": [1.0],
               "days_since_last_purchase": [0], "customer_segment": ["x"],
               "tenure_months": [1], "event_timestamp": [datetime.now(UTC)]}  # fmt: skip
        store.write_to_online_store("user_features", row)
    proc = pitstop("verify", "--view", "user_features", cwd=repo, ok=False)
    assert proc.returncode == 1
    assert "mismatches in user_features" in proc.stdout
