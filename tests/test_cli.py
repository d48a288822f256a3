"""The command line, run as users run it: a subprocess in a temporary feature repo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PITSTOP = str(Path(sys.executable).with_name("pitstop"))


def pitstop(
    *args: str, cwd: Path, ok: bool = True, columns: str = "200"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": columns}
    proc = subprocess.run([PITSTOP, *args], cwd=cwd, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)  # fmt: skip
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
    history = pitstop("history", "user_features", "--kind", "feature-views", cwd=repo).stdout
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
        (["history", "user_features", "--kind", "feature_veiw"], "'feature_veiw' is not a kind"),
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
    refused = pitstop("teardown", cwd=repo, ok=False)  # stdin is not a terminal: no prompt
    assert refused.returncode == 1
    assert "no terminal to confirm on, so pass --yes" in refused.stderr
    assert "'churn_prediction'" in refused.stderr
    assert "user_features" in pitstop("feature-views", "list", cwd=repo).stdout
    assert "torn down" in pitstop("teardown", "--yes", cwd=repo).stdout
    assert "No feature views registered" in pitstop("feature-views", "list", cwd=repo).stdout
    pitstop("apply", cwd=repo)
    assert "torn down" in pitstop("teardown", "-y", cwd=repo).stdout


def _on_a_terminal(args: list[str], cwd: Path, answer: bytes) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin and stdout, type ``answer``."""
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen([PITSTOP, *args], cwd=cwd, stdin=child, stdout=child, stderr=child)
    os.close(child)
    os.write(main, answer)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_teardown_asks_on_a_terminal(tmp_path: Path) -> None:
    pitstop("init", "r", "--users", "5", cwd=tmp_path)
    repo = tmp_path / "r"
    pitstop("apply", cwd=repo)
    code, seen = _on_a_terminal(["teardown"], repo, b"n\n")
    assert code == 1
    assert "Remove everything of project 'churn_prediction'?" in seen and "Aborted" in seen
    assert "user_features" in pitstop("feature-views", "list", cwd=repo).stdout
    code, seen = _on_a_terminal(["teardown"], repo, b"y\n")
    assert code == 0 and "torn down" in seen
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


LONG_NAME = "user_features_with_a_name_long_enough_to_be_cut_in_any_table"  # 60 characters


@pytest.fixture(scope="module")
def long_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-long")
    pitstop("init", "repo", "--users", "5", cwd=root)
    repo = root / "repo"
    (repo / "features" / "long.py").write_text(
        "from datetime import timedelta\n"
        "from pitstop import FeatureView, Field\n"
        "from pitstop.types import Int64\n"
        "from features.user_features import user, user_source\n"
        f"long_view = FeatureView(name={LONG_NAME!r}, entities=[user], source=user_source,\n"
        "    ttl=timedelta(hours=1, minutes=30),\n"
        "    schema=[Field(name='total_purchases', dtype=Int64)], tags={'team': 'x' * 40})\n"
    )
    pitstop("apply", cwd=repo)
    return repo


def test_long_names_are_never_cut_when_piped(long_repo: Path) -> None:
    assert len(LONG_NAME) == 60
    for columns in ("80", "40"):
        out = pitstop("feature-views", "list", cwd=long_repo, columns=columns).stdout
        line = next(x for x in out.splitlines() if LONG_NAME in x)  # one line, whole name
        assert "1h30m" in line and "team=" + "x" * 40 in line
        assert "…" not in out
    hist = pitstop("history", LONG_NAME, cwd=long_repo, columns="40").stdout
    assert "v1" in hist and "…" not in hist
    table = pitstop("feature-views", "describe", LONG_NAME, "-o", "table", cwd=long_repo,
                    columns="40").stdout  # fmt: skip
    assert LONG_NAME in table and re.search(r"ttl +│ 1h30m ", table)


def test_ttls_read_as_durations_in_tables(long_repo: Path) -> None:
    out = pitstop("feature-views", "list", cwd=long_repo).stdout
    rows = {line.split()[1]: line for line in out.splitlines() if "user_id" in line}
    assert "│ 1d " in rows["user_features"]
    assert "│ 7d " in rows["transaction_features"]
    assert "│ 1h30m " in rows[LONG_NAME]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_readable_output(long_repo: Path, fmt: str) -> None:
    import yaml

    parse = json.loads if fmt == "json" else yaml.safe_load
    views = parse(pitstop("feature-views", "list", "-o", fmt, cwd=long_repo).stdout)
    by_name = {v["name"]: v for v in views}
    assert set(by_name) == {"user_features", "transaction_features", LONG_NAME}
    assert by_name[LONG_NAME]["ttl_seconds"] == 5400  # seconds, as in the registry specs
    assert by_name[LONG_NAME]["tags"] == {"team": "x" * 40}
    one = parse(pitstop("feature-views", "describe", LONG_NAME, "-o", fmt, cwd=long_repo).stdout)
    assert one == by_name[LONG_NAME]
    for group, name in [("entities", "user_id"), ("feature-services", "churn_model_v1"),
                        ("data-sources", "transactions_source"),
                        ("on-demand-feature-views", "user_derived_features"),
                        ("stream-feature-views", "transaction_streaming_features")]:  # fmt: skip
        names = [o["name"] for o in parse(pitstop(group, "list", "-o", fmt, cwd=long_repo).stdout)]
        assert name in names, group
    history = parse(pitstop("history", "user_features", "-o", fmt, cwd=long_repo).stdout)
    assert history[0]["version"] == 1 and history[0]["kind"] == "feature_view"
    assert len(history[0]["spec_hash"]) == 64 and history[0]["deleted"] is False
    assert history[0]["applied_at"].endswith("+00:00")
    none = parse(pitstop("entities", "list", "--tags", "no:such", "-o", fmt, cwd=long_repo).stdout)
    assert none == []


def test_diff_as_json(tmp_path: Path) -> None:
    pitstop("init", "r", "--users", "5", cwd=tmp_path)
    repo = tmp_path / "r"
    pitstop("apply", cwd=repo)
    source = repo / "features" / "user_features.py"
    source.write_text(source.read_text().replace("timedelta(days=1)", "timedelta(days=2)"))
    pitstop("apply", cwd=repo)
    args = ["diff", "user_features", "1", "2", "--kind", "feature_view"]
    changes = json.loads(pitstop(*args, "-o", "json", cwd=repo).stdout)
    assert changes == [{"path": "ttl_seconds", "old": 86400.0, "new": 172800.0}]


def test_durations() -> None:
    from pitstop.cli.output import duration

    assert [duration(s) for s in (86400, 604800, 5400, 90061, 1.5, 0, None)] == [
        "1d", "7d", "1h30m", "1d1h1m1s", "1.5s", "-", "-",
    ]  # fmt: skip


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import click

    found = [path]
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            found += _commands(command, (*path, name))
    return found


def test_dash_h_is_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    from pitstop.cli.main import cli, main

    commands = _commands(cli)
    assert ("serve",) in commands and ("feature-views", "list") in commands
    for path in commands:
        for flag in ("-h", "--help"):
            assert main([*path, flag]) == 0, (path, flag)
            assert capsys.readouterr().out.startswith("Usage: pitstop"), (path, flag)
    main(["serve", "--help"])
    assert "-H, --host TEXT" in capsys.readouterr().out


def test_describe_is_a_table_on_a_terminal_and_json_when_piped(repo: Path) -> None:
    pitstop("apply", cwd=repo)
    code, seen = _on_a_terminal(["feature-views", "describe", "user_features"], repo, b"")
    assert code == 0
    assert re.search(r"ttl +│ 1d ", seen) and re.search(r"source\.path +│ data/user_", seen)
    piped = pitstop("feature-views", "describe", "user_features", cwd=repo).stdout
    assert json.loads(piped)["ttl_seconds"] == 86400


def test_list_by_owner(repo: Path) -> None:
    pitstop("apply", cwd=repo)
    out = pitstop("feature-services", "list", "--owner", "data-science", "-o", "json", cwd=repo)
    assert [s["name"] for s in json.loads(out.stdout)] == ["churn_model_v1"]
    none = pitstop("feature-services", "list", "--owner", "nobody", cwd=repo).stdout
    assert "No feature services match the filters." in none


def test_search(repo: Path) -> None:
    pitstop("apply", cwd=repo)
    table = pitstop("search", "purchase", cwd=repo).stdout
    assert "user_features:total_purchases" in table and "token" in table
    hits = json.loads(pitstop("search", "purchse", "--kind", "feature", "-o", "json",
                              cwd=repo).stdout)  # fmt: skip
    assert {h["match"] for h in hits} == {"fuzzy"} and all(h["feature"] for h in hits)
    tagged = json.loads(pitstop("search", "user", "--tag", "team=ml-platform", "-o", "json",
                                cwd=repo).stdout)  # fmt: skip
    assert tagged[0]["ref"] == "user_features" and tagged[0]["match"] == "prefix"
    assert "Nothing matches 'zzzz'." in pitstop("search", "zzzz", cwd=repo).stdout
    bad = pitstop("search", "user", "--tag", "team", cwd=repo, ok=False)
    assert bad.returncode == 1 and "write key=value" in bad.stderr


def test_lineage(repo: Path) -> None:
    pitstop("apply", cwd=repo)
    text = pitstop("lineage", "user_features", cwd=repo).stdout
    assert text.startswith("user_features (feature view), registry version")
    assert "  user_features_source (data source, source)" in text
    assert "churn_model_v1 (feature service, features)" in text
    up = json.loads(pitstop("lineage", "churn_model_v1", "--upstream", "-o", "json",
                            cwd=repo).stdout)  # fmt: skip
    assert up["direction"] == "upstream" and "feature_view:user_features" in {
        n["id"] for n in up["nodes"]}  # fmt: skip
    assert "digraph lineage" in pitstop("lineage", "user_id", "-o", "dot", cwd=repo).stdout
    mermaid = pitstop("lineage", "user_id", "--downstream", "-o", "mermaid", cwd=repo).stdout
    assert mermaid.startswith("flowchart LR")
    missing = pitstop("lineage", "user_featurs", cwd=repo, ok=False)
    assert missing.returncode == 1 and "Did you mean 'user_features'" in missing.stderr
