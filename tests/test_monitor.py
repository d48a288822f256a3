"""``pitstop monitor`` (drift against a saved dataset or a window of the logs, thresholds,
exit codes, the HTML report, consistency) and freshness (``pitstop status``, ``/metrics``),
over real logs written by serving."""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop import (
    Entity,
    FeatureService,
    FeatureStore,
    Field,
    FileSource,
    PushSource,
    StreamFeatureView,
    ValueType,
)
from pitstop.aggregation import Aggregation
from pitstop.config import DriftThresholds, parse_config
from pitstop.definitions import SavedDatasetFileStorage
from pitstop.errors import (
    ConfigError,
    DataSourceError,
    DefinitionError,
    NotFoundError,
    RetrievalError,
)
from pitstop.quality.consistency import consistency
from pitstop.quality.monitor import monitor
from pitstop.types import Float64
from test_feature_logging import NOW, draw, make_repo, users

DRIFTED = ["users__amount", "users__segment", "boosted__boosted"]
FEATURES = ["users__amount", "users__visits", "users__segment", "boosted__boosted"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    from test_cli import PITSTOP as executable

    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def serve_batches(store: FeatureStore, ids: np.ndarray, batch: int = 100) -> None:
    service = store.get_feature_service("svc")
    for start in range(0, len(ids), batch):
        chunk = [int(i) for i in ids[start : start + batch]]
        store.get_online_features(service, {"user_id": chunk, "bonus": [1.0] * len(chunk)})


@dataclass(frozen=True)
class Served:
    root: Path
    mid: datetime  # normal traffic before, shifted traffic after


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """3,000 customers: a training set of their old rows is saved; their current rows (the
    same distribution) are served, then shifted values are written online and served."""
    root = tmp_path_factory.mktemp("monitor") / "repo"
    n = 3000
    store = make_repo(root, entities=n)
    entity_df = pd.DataFrame({"user_id": range(n), "bonus": 1.0,
                              "event_timestamp": NOW - timedelta(days=5)})  # fmt: skip
    job = store.get_historical_features(entity_df, store.get_feature_service("svc"))
    storage = SavedDatasetFileStorage(path="data/train.parquet")
    store.create_saved_dataset(from_=job, name="train", storage=storage)
    rng = np.random.default_rng(21)
    serve_batches(store, rng.permutation(n))
    store.flush_feature_logs()
    mid = datetime.now(UTC)
    shifted = draw(rng, n, mean=58.0, shares=(0.35, 0.35, 0.3))
    shifted["visits"] = pq.read_table(root / "data" / "users.parquet").column("visits")[n:]
    store.write_to_online_store("users", pd.DataFrame(
        {"user_id": range(n), **shifted, "ts": NOW - timedelta(minutes=30)}))  # fmt: skip
    serve_batches(store, rng.permutation(n))
    store.close()
    yield Served(root, mid)


def test_serving_like_the_training_set_passes(served: Served) -> None:
    with FeatureStore(repo_path=served.root) as store:
        report = monitor(store, "svc", until=served.mid)
    assert report.reference == "saved dataset 'train' (3,000 rows)"
    assert [f.feature for f in report.features] == FEATURES
    assert [f.status for f in report.features] == ["ok"] * 4, [f.to_dict() for f in report.features]
    assert not report.breach
    assert all(f.current_rows == 3000 and f.reference_rows == 3000 for f in report.features)


def test_an_injected_shift_is_found(served: Served) -> None:
    with FeatureStore(repo_path=served.root) as store:
        report = monitor(store, "svc", dataset="train", since=served.mid)
    assert report.breach
    found = {f.feature: f for f in report.features}
    assert [f.feature for f in report.features if f.breach] == DRIFTED
    assert found["users__visits"].status == "ok"  # not shifted
    amount = found["users__amount"]
    assert amount.ks_statistic is not None and amount.ks_statistic > 0.25
    assert amount.psi is not None and amount.psi > 0.2
    segment = found["users__segment"]
    assert segment.chi2_p_value is not None and segment.chi2_p_value < 1e-10
    assert segment.ks_statistic is None


def test_a_window_of_the_logs_is_a_reference_too(served: Served) -> None:
    with FeatureStore(repo_path=served.root) as store:
        report = monitor(store, "svc", reference_until=served.mid, since=served.mid)
        assert report.reference.startswith("logs the beginning .. ")
        assert [f.feature for f in report.features if f.breach] == DRIFTED
        assert not monitor(store, "svc", reference_until=served.mid, until=served.mid).breach


def test_thresholds_come_from_feature_store_yaml(served: Served) -> None:
    relaxed = {"psi": 50, "ks_statistic": 1.0, "null_rate_change": 1.0}
    config = parse_config({"project": "logs", "registry": "data/registry.db",
                           "online_store": {"type": "sqlite", "path": "data/online.db"},
                           "monitoring": {"thresholds": relaxed}},
                          repo_path=served.root)  # fmt: skip
    with FeatureStore(config=config) as store:
        report = monitor(store, "svc", since=served.mid)
        assert report.thresholds.psi == 50 and not report.breach
        strict = DriftThresholds(psi=0.2, ks_statistic=0.1)
        assert monitor(store, "svc", since=served.mid, thresholds=strict).breach


@pytest.mark.parametrize(
    ("section", "message"),
    [({"thresholds": {"psi": -1}}, "monitoring.thresholds.psi: should be greater than 0"),
     ({"thresholds": {"pis": 0.1}}, "monitoring.thresholds.pis: unknown key 'pis'; did you "
                                    "mean 'psi'?"),
     ({"logging": {"queue_size": 0}}, "monitoring.logging.queue_size: should be greater than or "
                                      "equal to 1")],
)  # fmt: skip
def test_bad_monitoring_settings_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"project": "p", "monitoring": section}, repo_path=Path("/repo"))
    assert message in str(caught.value)


def test_cli_exit_codes_json_and_report(served: Served, tmp_path: Path) -> None:
    mid = served.mid.isoformat()
    ok = cli("monitor", "--service", "svc", "--until", mid, cwd=served.root)
    assert ok.returncode == 0, ok.stderr
    assert "0 of 4 features beyond the thresholds" in ok.stdout
    assert re.search(r"users__amount +│ numeric +│ ok", ok.stdout), ok.stdout

    report_dir = tmp_path / "report"
    bad = cli("monitor", "--service", "svc", "--since", mid, "-o", "json", "--report",
              str(report_dir), cwd=served.root)  # fmt: skip
    assert bad.returncode == 3, bad.stderr
    answer = json.loads(bad.stdout)
    assert answer["breach"] is True
    assert [f["feature"] for f in answer["features"] if f["breach"]] == DRIFTED
    assert answer["report"] == str(report_dir / "index.html")
    page = (report_dir / "index.html").read_text()
    assert "threshold breached" in page
    for feature in FEATURES:
        assert f'src="plots/{feature}.svg"' in page
        svg = ET.parse(report_dir / "plots" / f"{feature}.svg").getroot()
        assert svg.tag == "{http://www.w3.org/2000/svg}svg"
        bins = 3 if feature == "users__segment" else 20  # the categories, or numeric bins
        rects = svg.findall("{http://www.w3.org/2000/svg}rect")
        assert len(rects) == 1 + 2 * bins + 2  # background, two bars a bin, the legend
    assert json.loads((report_dir / "report.json").read_text())["service"] == "svc"

    relaxed = cli("monitor", "--service", "svc", "--since", mid, "--psi", "50", "--ks", "1",
                  cwd=served.root)  # fmt: skip
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    wrong = cli("monitor", "--service", "svc", "--psi", "-1", cwd=served.root)
    assert wrong.returncode == 1
    assert "Error: --psi: input should be greater than 0 (got -1.0)" in wrong.stderr


def test_monitor_mistakes_are_explained(served: Served, tmp_path: Path) -> None:
    with FeatureStore(repo_path=served.root) as store:
        with pytest.raises(DataSourceError, match=r"no logged rows 2001-01-01T00:00:00\+00:00 "
                           r"\.\. 2001-01-02T00:00:00\+00:00 under .*service=svc"):  # fmt: skip
            monitor(store, "svc", since=datetime(2001, 1, 1, tzinfo=UTC),
                    until=datetime(2001, 1, 2, tzinfo=UTC))  # fmt: skip
        with pytest.raises(NotFoundError, match="saved dataset 'trian' is not in the registry"):
            monitor(store, "svc", dataset="trian")
        with pytest.raises(NotFoundError, match="feature service 'svcc'"):
            monitor(store, "svcc")
        with pytest.raises(RetrievalError, match=r"either a saved dataset \(--dataset\) or a "
                           r"window of the logs"):  # fmt: skip
            monitor(store, "svc", dataset="train", reference_until=served.mid)
    other = make_repo(tmp_path / "other", entities=10)
    other.apply([FeatureService(name="plain", features=[users])])
    serve_batches(other, np.arange(10))
    other.flush_feature_logs()
    with pytest.raises(NotFoundError, match=r"no saved dataset is made from it; name the "
                       r"reference with --dataset NAME"):  # fmt: skip
        monitor(other, "svc")
    with pytest.raises(DefinitionError, match=r"feature service 'plain' has no logging_config"):
        monitor(other, "plain")
    other.close()
    wrong = cli("monitor", "--service", "svc", "--since", "yesterday", cwd=served.root)
    assert wrong.returncode == 1 and "'yesterday' is not an ISO 8601 timestamp" in wrong.stderr


def test_consistency_finds_an_injected_mismatch(tmp_path: Path) -> None:
    store = make_repo(tmp_path, entities=200)
    serve_batches(store, np.arange(200), batch=50)
    store.flush_feature_logs()
    mid = datetime.now(UTC)
    # 20 customers get another amount online only: the offline store never saw it
    current = pq.read_table(tmp_path / "data" / "users.parquet").slice(200).to_pandas()
    changed = current[current["user_id"] < 20].assign(amount=lambda d: d["amount"] + 100.0)
    store.write_to_online_store("users", changed)
    serve_batches(store, np.arange(200), batch=50)
    store.flush_feature_logs()

    before = consistency(store, "svc", until=mid).consistency
    assert before is not None and before.rows == 200 and not before.breach
    assert [f.mismatches for f in before.features] == [0, 0, 0, 0]
    after = consistency(store, "svc", since=mid).consistency
    assert after is not None and after.breach
    rates = {f.feature: f.rate for f in after.features}
    assert rates == {"users__amount": 0.1, "users__visits": 0.0, "users__segment": 0.0,
                     "boosted__boosted": 0.1}  # fmt: skip
    example = after.features[0].examples[0]
    assert example.keys["user_id"] < 20 and example.online == pytest.approx(example.offline + 100)
    sampled = consistency(store, "svc", since=mid, sample=50).consistency
    assert sampled is not None and sampled.rows == 50
    store.close()
    done = cli("monitor", "--service", "svc", "--consistency", "--since", mid.isoformat(),
               "--max-mismatch-rate", "0.2", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 of 4 features above the mismatch rate 0.2" in done.stdout
    strict = cli("monitor", "--service", "svc", "--consistency", "--since", mid.isoformat(),
                 cwd=tmp_path)  # fmt: skip
    assert strict.returncode == 3
    assert "2 of 4 features above the mismatch rate 0: users__amount, boosted__boosted" in (
        strict.stdout
    )


# --- freshness --------------------------------------------------------------------------------

hour = timedelta(hours=1)
buyer = Entity(name="buyer", join_keys=["buyer_id"], value_type=ValueType.INT64)
purchases = FileSource(path="data/purchases.parquet", timestamp_field="ts")
purchase_push = PushSource(name="purchase_push", batch_source=purchases)
spend = StreamFeatureView(
    name="spend", entities=[buyer], ttl=hour, source=purchase_push,
    schema=[Field(name="spend_1h", dtype=Float64)],
    aggregations=[Aggregation(column="amount", function="sum", time_window=hour)],
)  # fmt: skip


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logging repo (materialized up to NOW, newest event an hour ago) plus a stream
    view whose newest pushed event is ten minutes ago."""
    root = tmp_path_factory.mktemp("fresh") / "repo"
    store = make_repo(root, entities=20)
    empty = pa.table({"buyer_id": pa.array([], pa.int64()), "amount": pa.array([], pa.float64()),
                      "ts": pa.array([], pa.timestamp("us", tz="UTC"))})  # fmt: skip
    pq.write_table(empty, root / "data" / "purchases.parquet")
    store.apply([buyer, purchases, purchase_push, spend])
    store.push("purchase_push", pd.DataFrame({
        "buyer_id": [1, 2], "amount": [5.0, 7.0],
        "ts": [NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)],
    }))  # fmt: skip
    store.close()
    return root


def test_status_shows_materialization_and_event_times(fresh: Path) -> None:
    done = cli("status", "-o", "json", cwd=fresh)
    assert done.returncode == 0, done.stderr
    views = {v["feature_view"]: v for v in json.loads(done.stdout)}
    assert set(views) == {"users", "spend"}
    users_ = views["users"]
    assert users_["kind"] == "batch" and users_["ttl_seconds"] == 30 * 86400
    assert users_["materialized_start"] == (NOW - timedelta(days=20)).isoformat()
    assert users_["materialized_end"] == users_["materialized_until"] == NOW.isoformat()
    assert users_["materialized_rows"] == 20
    finished = datetime.fromisoformat(users_["last_materialization"])
    assert NOW - timedelta(minutes=1) <= finished <= datetime.now(UTC)
    assert users_["newest_event_online"] == (NOW - hour).isoformat()
    since_newest = (datetime.now(UTC) - (NOW - hour)).total_seconds()  # NOW: set at import
    assert 3600 <= users_["staleness_seconds"] <= since_newest
    assert users_["watermark"] is None
    stream = views["spend"]
    assert stream["kind"] == "stream" and stream["last_materialization"] is None
    assert stream["watermark"] == stream["newest_event_online"]
    assert stream["watermark"] == (NOW - timedelta(minutes=10)).isoformat()

    table = cli("status", "-v", "users", cwd=fresh)
    assert table.returncode == 0, table.stderr
    assert re.search(r"users +│ batch +│ \d{4}-\d\d-\d\dT[\d:]+Z", table.stdout), table.stdout
    assert "1h" in table.stdout and "spend" not in table.stdout
    unknown = cli("status", "-v", "userz", cwd=fresh)
    assert unknown.returncode == 1 and "feature view 'userz' is not in the registry" in (
        unknown.stderr
    )


def _gauge(text: str, name: str, **labels: str) -> float:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(inner)}\}} (\S+)$", text, re.M)
    assert match, f"{name}{{{inner}}} not in /metrics"
    return float(match.group(1))


def test_metrics_export_freshness_drift_and_logging(fresh: Path, served: Served) -> None:
    from test_server import thread_server

    with FeatureStore(repo_path=served.root) as store:
        monitor(store, "svc", since=served.mid)
    with FeatureStore(repo_path=fresh) as store, thread_server(store) as url:
        httpx.post(
            f"{url}/get-online-features",
            json={"feature_service": "svc", "entities": {"user_id": [1], "bonus": [0.0]}},
        )
        store.flush_feature_logs()
        text = httpx.get(f"{url}/metrics").text
    assert _gauge(text, "pitstop_feature_view_newest_event_timestamp_seconds",
                  feature_view="users") == (NOW - hour).timestamp()  # fmt: skip
    assert _gauge(text, "pitstop_feature_view_materialized_until_timestamp_seconds",
                  feature_view="users") == NOW.timestamp()  # fmt: skip
    assert _gauge(text, "pitstop_feature_view_staleness_seconds", feature_view="users") >= 3600
    assert _gauge(text, "pitstop_feature_view_watermark_timestamp_seconds",
                  feature_view="spend") == (NOW - timedelta(minutes=10)).timestamp()  # fmt: skip
    assert "# TYPE pitstop_feature_view_last_materialization_timestamp_seconds gauge" in text
    assert _gauge(text, "pitstop_feature_log_rows_total", service="svc") == 1
    assert "# TYPE pitstop_feature_log_dropped_total counter" in text
    # the drift figures of the last monitor run of the other repo's service
    with FeatureStore(repo_path=served.root) as store, thread_server(store) as url:
        text = httpx.get(f"{url}/metrics").text
    assert _gauge(text, "pitstop_feature_drift_breach", service="svc",
                  feature="users__amount") == 1.0  # fmt: skip
    assert _gauge(text, "pitstop_feature_drift_breach", service="svc",
                  feature="users__visits") == 0.0  # fmt: skip
    assert _gauge(text, "pitstop_feature_drift_psi", service="svc", feature="users__amount") > 0.2
    assert _gauge(text, "pitstop_monitor_last_run_timestamp_seconds", service="svc") > 0
