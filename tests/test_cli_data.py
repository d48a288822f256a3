"""The commands that read and write feature values: get-online-features,
get-historical-features and push, on a `pitstop init` repo."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop import FeatureStore
from pitstop.cli.main import main

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_data") / "repo"
    assert main(["init", str(root), "--users", "20"]) == 0
    assert main(["-c", str(root), "apply"]) == 0
    assert main(["-c", str(root), "materialize", "2000-01-01", NOW.isoformat()]) == 0
    return root


def run(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-c", str(repo), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_online_features_are_those_the_sdk_reads(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = ["user_features:total_purchases", "user_features:customer_segment"]
    code, out, err = run(repo, capsys, "get-online-features", *refs, "-e", "user_id=1001,1002,9",
                         "-o", "json")  # fmt: skip
    assert code == 0, err
    with FeatureStore(repo_path=repo) as store:
        expected = store.get_online_features(refs, {"user_id": [1001, 1002, 9]}).to_dict()
    assert json.loads(out) == [dict(zip(expected, row, strict=True))
                               for row in zip(*expected.values(), strict=True)]  # fmt: skip
    assert json.loads(out)[2] == {"user_id": 9, "total_purchases": None,
                                  "customer_segment": None}  # fmt: skip
    code, out, _ = run(repo, capsys, "get-online-features", "-s", "churn_model_v1",
                       "--full-feature-names", "-e", "user_id=1001")  # fmt: skip
    assert code == 0 and "user_features__total_purchases" in out and "1001" in out


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_historical_features_are_written_to_a_file(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    entities = tmp_path / "entities.parquet"
    pq.write_table(pa.table({"user_id": [1001, 1002], "event_timestamp": [NOW, NOW]}), entities)
    out_file = tmp_path / f"train{suffix}"
    code, out, err = run(repo, capsys, "get-historical-features", "-s", "churn_model_v1",
                         "--entities", str(entities), "-O", str(out_file))  # fmt: skip
    assert code == 0, err
    assert f"Wrote 2 rows to {out_file}" in out
    with FeatureStore(repo_path=repo) as store:
        service = store.get_feature_service("churn_model_v1")
        expected = store.get_historical_features(pq.read_table(entities), service).to_arrow()
    if suffix == ".parquet":
        assert pq.read_table(out_file).equals(expected)
    elif suffix == ".csv":
        header, *lines = out_file.read_text().splitlines()
        assert header.replace('"', "").split(",") == expected.column_names and len(lines) == 2
    else:
        rows = [json.loads(line) for line in out_file.read_text().splitlines()]
        assert [r["tenure_months"] for r in rows] == expected["tenure_months"].to_pylist()


def test_pushed_rows_are_read_back(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = ["get-online-features", "transaction_streaming_features:transaction_count_1h",
             "-e", "user_id=1019", "-o", "json"]  # fmt: skip
    assert json.loads(run(repo, capsys, *count)[1])[0]["transaction_count_1h"] == 0
    csv = tmp_path / "rows.csv"
    csv.write_text(f"user_id,transaction_amount,transaction_timestamp\n"
                   f"1019,12.5,{NOW.isoformat()}\n1019,3.0,{NOW.isoformat()}\n")  # fmt: skip
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(json.dumps({"user_id": 1019, "transaction_amount": 1.0,
                                 "transaction_timestamp": NOW.isoformat()}) + "\n")  # fmt: skip
    code, out, err = run(repo, capsys, "push", "transaction_push_source", str(csv))
    assert code == 0 and "Pushed 2 rows to 'transaction_push_source' (online)" in out, err
    code, out, err = run(repo, capsys, "push", "transaction_push_source", str(jsonl), "--to",
                         "online_and_offline")  # fmt: skip
    assert code == 0 and "(online_and_offline); 1 online rows written" in out, err
    assert json.loads(run(repo, capsys, *count)[1])[0]["transaction_count_1h"] == 3
    offline = pq.read_table(repo / "data/transaction_events.parquet.pushed").to_pylist()
    assert [(r["user_id"], r["transaction_amount"]) for r in offline][-1] == (1019, 1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get-online-features", "-e", "user_id=1"], "name the features (view:feature ...) or"),
        (["get-online-features", "-s", "churn_model_v1", "user_features:tenure_months", "-e",
          "user_id=1"], "or a feature service (-s NAME), one of them"),
        (["get-online-features", "user_features:tenure_months", "-e", "user_id"],
         "-e 'user_id': write a join key and its values, e.g. -e user_id=1001,1002"),
        (["get-online-features", "user_features:tenure_months", "-e", "user_id=1", "-e",
          "user_id=2", "-e", "other=1,2,3"], "(user_id: 2, other: 3); give each the same"),
        (["get-online-features", "-s", "nope", "-e", "user_id=1"], "nope"),
        (["push", "transaction_push_source", "{rows.txt}"],
         "FILE '{rows.txt}': name a .parquet, .csv or .jsonl (JSON lines) file"),
        (["push", "transaction_push_source", "{bad.parquet}"],
         "FILE '{bad.parquet}': cannot read it as parquet"),
        (["get-historical-features", "user_features:tenure_months", "--entities",
          "{rows.txt}", "-O", "out.xlsx"], "--out 'out.xlsx': name a .parquet, .csv or"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_fix(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "rows.txt").write_text("user_id\n1\n")
    (tmp_path / "bad.parquet").write_text("not parquet")
    files = {
        "{rows.txt}": str(tmp_path / "rows.txt"),
        "{bad.parquet}": str(tmp_path / "bad.parquet"),
    }
    args = [files.get(a, a) for a in args]
    for placeholder, path in files.items():
        message = message.replace(placeholder, path)
    code, _, err = run(repo, capsys, *args)
    assert code == 1 and err.startswith("Error: ") and len(err.splitlines()) == 1, err
    assert message in err
