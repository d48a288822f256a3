"""Feature logging: served vectors of a service with a logging_config, sampled, to Parquet,
in process and from ``pitstop serve``; flushed at close, exit and server shutdown; a full
queue drops (and counts) instead of blocking."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
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
    RequestSource,
    ValueType,
    on_demand_feature_view,
)
from pitstop.definitions.feature_logging import FileLoggingDestination, LoggingConfig
from pitstop.types import Float64, Int64, String

NOW = datetime.now(UTC).replace(microsecond=0)
SEGMENTS = np.array(["bronze", "silver", "gold"])

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
source = FileSource(path="data/users.parquet", timestamp_field="ts")
users = FeatureView(
    name="users",
    entities=[user],
    ttl=timedelta(days=30),
    source=source,
    schema=[
        Field(name="amount", dtype=Float64),
        Field(name="visits", dtype=Int64),
        Field(name="segment", dtype=String),
    ],
)
req = RequestSource(name="req", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(sources=[users, req], schema=[Field(name="boosted", dtype=Float64)],
                        mode="python")  # fmt: skip
def boosted(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    pairs = zip(inputs["amount"], inputs["bonus"], strict=True)
    return {"boosted": [None if a is None else a + b for a, b in pairs]}


def draw(rng: np.random.Generator, n: int, mean: float = 50.0,
         shares: tuple[float, ...] = (0.6, 0.3, 0.1)) -> dict[str, Any]:  # fmt: skip
    """Feature values of ``n`` entities: amount ~ N(mean, 10), visits ~ Poisson(5)."""
    return {
        "amount": rng.normal(mean, 10.0, n),
        "visits": rng.poisson(5, n),
        "segment": SEGMENTS[rng.choice(3, n, p=list(shares))],
    }


def make_repo(
    root: Path,
    *,
    entities: int = 1000,
    sample_rate: float = 1.0,
    logging: dict[str, Any] | None = None,
    monitoring: dict[str, Any] | None = None,
    seed: int = 0,
) -> FeatureStore:
    """A repo whose service ``svc`` logs to ``data/logs``; each entity has an old row (ten
    days ago) and a current one (an hour ago), both drawn from one distribution; applied and
    materialized."""
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "project": "logs",
        "registry": "data/registry.db",
        "online_store": {"type": "sqlite", "path": "data/online.db"},
        "monitoring": {**(monitoring or {}), "logging": logging or {}},
    }
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config))
    (root / "data").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = np.arange(entities)
    old, new = draw(rng, entities), draw(rng, entities)
    table = pa.table({
        "user_id": np.concatenate([ids, ids]),
        **{k: np.concatenate([old[k], new[k]]) for k in old},
        "ts": pa.array([NOW - timedelta(days=10)] * entities + [NOW - timedelta(hours=1)]
                       * entities, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    pq.write_table(table, root / "data" / "users.parquet")
    service = FeatureService(
        name="svc",
        features=[users, boosted],
        logging_config=LoggingConfig(
            destination=FileLoggingDestination(path="data/logs"), sample_rate=sample_rate
        ),
    )
    store = FeatureStore(repo_path=root)
    store.apply([user, source, users, req, boosted, service])
    store.materialize(NOW - timedelta(days=20), NOW)
    return store


def logged(root: Path) -> pa.Table:
    """Every logged row of ``svc`` under ``root``."""
    files = sorted((root / "data" / "logs" / "service=svc").glob("date=*/*.parquet"))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def serve_requests(store: FeatureStore, ids: list[int], **kw: Any) -> None:
    service = store.get_feature_service("svc")
    for i in ids:
        store.get_online_features(service, [{"user_id": i, "bonus": 1.0}], **kw)


def test_the_sampled_fraction_is_logged(tmp_path: Path) -> None:
    store = make_repo(tmp_path, sample_rate=0.1, logging={"seed": 42})
    serve_requests(store, [i % 1000 for i in range(2000)])
    store.close()
    rows = logged(tmp_path)
    # Binomial(2000, 0.1): mean 200, standard deviation 13.4
    assert 150 <= rows.num_rows <= 250, rows.num_rows
    assert len(set(rows.column("__request_id").to_pylist())) == rows.num_rows
    # the logged values are the served ones: the current row of each entity
    source_rows = pq.read_table(tmp_path / "data" / "users.parquet").to_pylist()[1000:]
    current = {r["user_id"]: r for r in source_rows}
    for row in rows.to_pylist():
        assert row["users__amount"] == pytest.approx(current[row["user_id"]]["amount"])
        assert row["users__amount__status"] == "PRESENT"


def test_log_files_hold_keys_request_data_values_statuses_and_times(tmp_path: Path) -> None:
    store = make_repo(tmp_path, entities=10)
    service = store.get_feature_service("svc")
    before = datetime.now(UTC)
    store.get_online_features(service, {"user_id": [1, 2, 999], "bonus": [0.5, 1.5, 2.5]})
    store.get_online_features(service, [{"user_id": 3, "bonus": 1.0}], full_feature_names=True)
    store.close()
    folder = tmp_path / "data" / "logs" / "service=svc" / f"date={before:%Y-%m-%d}"
    files = list(folder.iterdir())
    assert len(files) == 1 and files[0].name.startswith("part-") and files[0].suffix == ".parquet"
    table = pq.read_table(files[0])
    assert table.schema.field("__log_timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("user_id").type == pa.int64()
    assert table.schema.field("users__visits").type == pa.int64()
    assert table.schema.field("boosted__boosted").type == pa.float64()
    rows = table.to_pylist()
    assert [r["user_id"] for r in rows] == [1, 2, 999, 3]
    assert [r["bonus"] for r in rows] == [0.5, 1.5, 2.5, 1.0]
    assert [r["users__amount__status"] for r in rows] == ["PRESENT", "PRESENT", "NOT_FOUND",
                                                          "PRESENT"]  # fmt: skip
    assert rows[2]["users__amount"] is None and rows[2]["boosted__boosted__status"] == "NOT_FOUND"
    assert rows[0]["boosted__boosted"] == pytest.approx(rows[0]["users__amount"] + 0.5)
    assert rows[0]["users__amount__timestamp"] == NOW - timedelta(hours=1)
    assert rows[0]["boosted__boosted__timestamp"] is None
    assert rows[0]["__request_id"] == rows[2]["__request_id"] != rows[3]["__request_id"]
    assert all(before <= r["__log_timestamp"] <= datetime.now(UTC) for r in rows)


def test_two_stores_of_one_process_never_write_over_each_others_files(tmp_path: Path) -> None:
    first = make_repo(tmp_path, entities=10)
    second = FeatureStore(repo_path=tmp_path)
    serve_requests(first, [1, 2, 3])
    serve_requests(second, [4, 5])
    first.close()
    second.close()  # within the same second, each writer's first file
    assert sorted(logged(tmp_path).column("user_id").to_pylist()) == [1, 2, 3, 4, 5]


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    store = make_repo(tmp_path, entities=10, logging={"queue_size": 1, "flush_rows": 1})
    serve_requests(store, [i % 10 for i in range(2000)])
    store.flush_feature_logs()
    stats = store.feature_logs.stats
    assert stats.dropped.get("svc", 0) > 0
    assert stats.requests["svc"] + stats.dropped["svc"] == 2000
    store.close()
    assert logged(tmp_path).num_rows == stats.rows["svc"] == stats.requests["svc"]


def test_rows_are_written_after_flush_seconds_without_a_flush(tmp_path: Path) -> None:
    store = make_repo(tmp_path, entities=10, logging={"flush_seconds": 0.2})
    serve_requests(store, [1, 2, 3])
    deadline = time.monotonic() + 10
    while logged(tmp_path).num_rows < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged(tmp_path).num_rows == 3
    store.close()


def test_what_is_queued_is_written_when_the_process_exits(tmp_path: Path) -> None:
    make_repo(tmp_path, entities=10, logging={"flush_seconds": 600}).close()
    script = textwrap.dedent(f"""
        from pitstop import FeatureStore
        store = FeatureStore(repo_path={str(tmp_path)!r})
        service = store.get_feature_service("svc")
        for i in range(7):
            store.get_online_features(service, [{{"user_id": i, "bonus": 0.0}}])
        # no close(): the interpreter's exit writes the queue
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert logged(tmp_path).num_rows == 7


def test_services_without_logging_config_and_feature_lists_are_not_logged(tmp_path: Path) -> None:
    store = make_repo(tmp_path, entities=10)
    store.get_online_features(["users:amount"], [{"user_id": 1}])
    plain = FeatureService(name="plain", features=[users])
    store.apply([plain])
    store.get_online_features(store.get_feature_service("plain"), [{"user_id": 1}])
    assert store._feature_logs is None  # no writer was even made
    store.close()
    assert not (tmp_path / "data" / "logs").exists()


def test_the_feature_server_logs_and_flushes_at_shutdown(tmp_path: Path) -> None:
    from test_server import start_cli, stop

    make_repo(tmp_path, entities=50, logging={"flush_seconds": 600}).close()
    proc, url = start_cli(tmp_path)
    try:
        for i in range(25):
            answer = httpx.post(f"{url}/get-online-features", json={
                "feature_service": "svc", "entities": {"user_id": [i], "bonus": [1.0]},
            })  # fmt: skip
            assert answer.status_code == 200, answer.text
        httpx.post(f"{url}/get-online-features",
                   json={"features": ["users:amount"], "entities": {"user_id": [1]}})  # fmt: skip
        assert logged(tmp_path).num_rows == 0  # still queued: flush_seconds is long
    finally:
        stop(proc)
    rows = logged(tmp_path)
    assert rows.num_rows == 25
    assert sorted(rows.column("user_id").to_pylist()) == list(range(25))
