"""The churn example (examples/churn) and the demo that runs it (examples/demo.py)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

from churn.app import create_app  # noqa: E402
from churn.data import generate_transactions, make_labels  # noqa: E402
from churn.pipeline import FEATURES_SCHEMA, FeatureEngineeringPipeline  # noqa: E402
from churn.train import save_model, train_model, training_set  # noqa: E402

from pitstop import FeatureStore  # noqa: E402
from pitstop.errors import DataQualityError  # noqa: E402

PITSTOP = str(Path(sys.executable).with_name("pitstop"))
NOW = datetime.now(UTC).replace(microsecond=0)


# --- the batch pipeline ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return generate_transactions(60, 60, now=NOW)


def _run(raw: pd.DataFrame, folder: Path, out: Path) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    raw.to_parquet(folder / "raw.parquet", index=False)
    return FeatureEngineeringPipeline(folder / "raw.parquet", out, now=NOW, log=None).run()


def test_pipeline_computes_features_as_of_each_day(tmp_path: Path) -> None:
    raw = pd.DataFrame(
        {
            "transaction_id": [1, 2, 3],
            "user_id": [7, 7, 8],
            "transaction_amount": [10.0, 30.0, 5.0],
            "transaction_timestamp": [NOW - timedelta(days=3, hours=1),
                                      NOW - timedelta(days=1, hours=1),
                                      NOW - timedelta(hours=2)],
        }
    )  # fmt: skip
    out = tmp_path / "repo" / "user_features.parquet"
    _run(raw, tmp_path, out)
    assert pq.read_schema(out).remove_metadata() == FEATURES_SCHEMA
    df = pd.read_parquet(out)
    user7 = df[df["user_id"] == 7]
    assert list(user7["event_timestamp"]) == [NOW - timedelta(days=d) for d in (3, 2, 1, 0)]
    assert list(user7["total_purchases"]) == [1, 1, 2, 2]
    assert list(user7["avg_purchase_amount"]) == [10.0, 10.0, 20.0, 20.0]
    assert list(user7["days_since_last_purchase"]) == [0, 1, 0, 1]
    assert list(user7["customer_segment"]) == ["bronze"] * 4
    user8 = df[df["user_id"] == 8]  # no row before the first purchase
    assert list(user8["event_timestamp"]) == [NOW]
    assert list(user8["total_purchases"]) == [1]


def _negative_amounts(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[[3, 11], "transaction_amount"] = [-5.0, -0.5]
    return df


def _null_users(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[[4], "user_id"] = None
    return df


def _future_purchase(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[[2], "transaction_timestamp"] = pd.Timestamp(NOW + timedelta(days=2))
    return df


def _text_amounts(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(transaction_amount=df["transaction_amount"].astype(str))


def _no_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="transaction_timestamp")


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (_negative_amounts, r"between\('transaction_amount', 0\.01, 100000\.0\): 2 of \d+ rows are "
                            r"outside \[0\.01, 100000\]; e\.g\. row 3 \(transaction_id 4\): -5\.0, "
                            r"row 11 \(transaction_id 12\): -0\.5"),
        (_null_users, r"not_null\('user_id'\): 1 of \d+ rows are null; e\.g\. row 4 "
                      r"\(transaction_id 5\): null"),
        (_future_purchase, r"not_in_future\('transaction_timestamp'\): 1 of \d+ rows are after "),
        (_text_amounts, r"of_type\('transaction_amount', 'number'\): column 'transaction_amount' "
                        r"holds string values; expected number values"),
        (_no_timestamps, r"not_null\('transaction_timestamp'\): there is no column "
                         r"'transaction_timestamp'"),
    ],
)  # fmt: skip
def test_bad_raw_data_stops_the_pipeline_and_writes_nothing(
    tmp_path: Path, transactions: pd.DataFrame, corrupt: Any, expected: str
) -> None:
    out = tmp_path / "repo" / "data" / "user_features.parquet"
    with pytest.raises(DataQualityError) as caught:
        _run(corrupt(transactions.copy()), tmp_path / "raw", out)
    report = str(caught.value)
    assert re.search(expected, report), report
    assert "nothing was written" in report
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_bad_raw_data_leaves_the_previous_features_untouched(
    tmp_path: Path, transactions: pd.DataFrame
) -> None:
    out = tmp_path / "repo" / "user_features.parquet"
    _run(transactions, tmp_path / "good", out)
    before = out.read_bytes()
    with pytest.raises(DataQualityError, match="transaction_amount"):
        _run(_negative_amounts(transactions.copy()), tmp_path / "bad", out)
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


def test_computed_features_are_checked_too(tmp_path: Path, transactions: pd.DataFrame) -> None:
    pipeline = FeatureEngineeringPipeline(tmp_path / "raw", tmp_path / "out", now=NOW, log=None)
    features = pipeline.compute_user_features(transactions)
    features.loc[[0, 1], "avg_purchase_amount"] = float("nan")
    features.loc[[2], "customer_segment"] = "diamond"
    with pytest.raises(DataQualityError) as caught:
        pipeline.validate_features(features)
    failed = caught.value.reports[0].failures
    assert [(r.expectation, r.unexpected) for r in failed] == [
        ("not_null('avg_purchase_amount')", 2),
        ("in_set('customer_segment', ['bronze', 'silver', 'gold', 'platinum'])", 1),
    ]
    assert "'diamond'" in str(caught.value)
    assert "user features" in str(caught.value) and "nothing was written" in str(caught.value)


# --- the prediction service ------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw data → features → apply → model → materialize, as the demo does, on 150 users."""
    root = tmp_path_factory.mktemp("churn")
    raw = generate_transactions(150, 120, now=NOW)
    shutil.copytree(EXAMPLES / "churn" / "feature_repo", root / "feature_repo")
    _run(raw, root / "data", root / "feature_repo" / "data" / "user_features.parquet")
    subprocess.run([PITSTOP, "apply"], cwd=root / "feature_repo", check=True,
                   capture_output=True)  # fmt: skip
    with FeatureStore(repo_path=root / "feature_repo") as store:
        trained = train_model(training_set(store, make_labels(raw, now=NOW)))
        save_model(trained.model, root / "models" / "churn_model.pkl")
        store.materialize_incremental(end_date=datetime.now(UTC))
        # a customer whose only online row is older than the view's TTL (2 days)
        store.write_to_online_store("user_features", pd.DataFrame({
            "user_id": [5000], "total_purchases": [3], "avg_purchase_amount": [20.0],
            "days_since_last_purchase": [1], "tenure_months": [2],
            "customer_segment": ["bronze"], "event_timestamp": [NOW - timedelta(days=5)],
        }))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def app_url(workspace: Path) -> Iterator[str]:
    """The FastAPI app served by uvicorn in a thread, on a free port."""
    import uvicorn

    app = create_app(workspace / "models" / "churn_model.pkl", workspace / "feature_repo")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def call(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_predict_a_known_user(app_url: str) -> None:
    status, answer = call(f"{app_url}/predict", {"user_id": 1001})
    assert status == 200, answer
    assert answer["user_id"] == 1001
    assert answer["prediction"] in (0, 1)
    assert len(answer["probability"]) == 2
    assert sum(answer["probability"]) == pytest.approx(1.0)
    assert answer["prediction"] == int(answer["probability"][1] > 0.5)
    assert list(answer["features"]) == [
        "total_purchases",
        "avg_purchase_amount",
        "days_since_last_purchase",
        "tenure_months",
        "purchase_frequency",
    ]


def test_predict_an_unknown_user_is_404(app_url: str) -> None:
    status, answer = call(f"{app_url}/predict", {"user_id": 424242})
    assert status == 404
    assert "user 424242 has no features in the online store" in answer["detail"]


def test_predict_with_features_past_their_ttl_is_503(app_url: str) -> None:
    status, answer = call(f"{app_url}/predict", {"user_id": 5000})
    assert status == 503
    assert "total_purchases is OUTSIDE_MAX_AGE" in answer["detail"]
    assert "materialize" in answer["detail"]


def test_predict_a_malformed_request_is_422(app_url: str) -> None:
    assert call(f"{app_url}/predict", {"user_id": "someone"})[0] == 422
    assert call(f"{app_url}/predict", {})[0] == 422


def test_health(app_url: str) -> None:
    status, answer = call(f"{app_url}/health")
    assert status == 200
    assert answer["status"] == "healthy"
    assert answer["feature_service"] == "churn_model_v1"


def test_a_pushed_purchase_changes_the_prediction(workspace: Path, app_url: str) -> None:
    from churn.streaming import process_purchase_event

    with FeatureStore(repo_path=workspace / "feature_repo") as store:
        before = store.get_online_features(
            ["user_features:total_purchases"], [{"user_id": 1002}]
        ).to_dict()["total_purchases"][0]
        pushed = process_purchase_event(store, {"user_id": 1002, "amount": 50.0})
    assert pushed is not None and pushed["total_purchases"] == before + 1
    status, answer = call(f"{app_url}/predict", {"user_id": 1002})
    assert status == 200
    assert answer["features"]["total_purchases"] == before + 1
    assert answer["features"]["days_since_last_purchase"] == 0


# --- the demo --------------------------------------------------------------------------------


def test_the_demo_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / "demo.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"Training data shape: \(\d+, 8\)", out)
    auc = float(re.search(r"ROC AUC (\d\.\d+)", out).group(1))  # type: ignore[union-attr]
    assert auc > 0.7
    assert "expectations failed on" in out and "unchanged: True" in out
    assert "Created feature view user_features" in out
    assert re.search(r"99999 +- .*NOT_FOUND", out)  # the unknown user, in-process
    assert "feature server not available yet" in out or "POST /get-online-features" in out
    assert re.search(r'POST /predict \{"user_id": 1001\} → 200 .*"probability"', out)
    assert re.search(r'POST /predict \{"user_id": 99999\} → 404', out)
    assert re.search(r"POST /predict → P\(churn\) \d\.\d\d \(was \d\.\d\d\)", out)
    assert re.search(r"user_features__avg_purchase_amount +│ numeric +│ drift", out)
    assert re.search(r"user_features__tenure_months +│ numeric +│ ok", out)
    assert "2 of 5 features beyond the thresholds" in out and "exit status 3" in out
    ui = r"/feature-views/user_features → 200, shows total_purchases, churn_model_v1, Lineage"
    assert re.search(ui, out)  # the web UI, over the demo's repo
    assert "pitstop -c DIR/feature_repo ui` → http://127.0.0.1:8888/" in out
    assert "total" in out.split("Timings")[-1]
    workdir = Path(re.search(r"working in (\S+)", out).group(1))  # type: ignore[union-attr]
    assert not workdir.exists()  # cleaned up
