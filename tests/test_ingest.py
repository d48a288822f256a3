"""The Redis Streams ingestion worker: at-least-once, idempotent, dead letters, clean stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitstop import FeatureStore
from pitstop.config import parse_config
from pitstop.engine.ingest import RedisStreamSource, StreamIngestor
from test_streams import push_source, seed_view, user

pytestmark = pytest.mark.redis
COUNT = "transaction_streaming_features:transaction_count_1h"
TOTAL = "transaction_streaming_features:total_amount_1h"


@pytest.fixture
def stream(redis_url: str, redis_key_prefix: str) -> Iterator[tuple[str, Any]]:
    import redis

    client = redis.Redis.from_url(redis_url)
    name = f"{redis_key_prefix}events:{uuid.uuid4().hex[:8]}"
    yield name, client
    client.delete(name, f"{name}:dead-letter")
    client.close()


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[FeatureStore]:
    cfg = parse_config({"project": f"i{uuid.uuid4().hex[:8]}"}, repo_path=tmp_path)
    store = FeatureStore(config=cfg)
    store.apply([user, push_source, seed_view])
    yield store
    store.close()


def event(user_id: Any, amount: Any, minutes_ago: float = 1) -> dict[str, str]:
    ts = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    return {"user_id": str(user_id), "transaction_amount": str(amount),
            "transaction_timestamp": ts}  # fmt: skip


def drain(worker: StreamIngestor) -> None:
    while worker.step():
        pass


def test_events_reach_the_online_tiles_and_bad_ones_are_dead_lettered(
    fs: FeatureStore, stream: tuple[str, Any], redis_url: str
) -> None:
    name, client = stream
    client.xadd(name, event(1, 2.5))
    client.xadd(
        name,
        {
            "json": json.dumps(
                {"user_id": 1, "transaction_amount": 4.0, "transaction_timestamp": time.time() - 30}
            )
        },
    )
    client.xadd(name, event(2, 1.0))
    client.xadd(name, {"user_id": "3", "transaction_amount": "1.0"})  # no timestamp
    client.xadd(name, event("abc", 1.0))  # wrong key type
    client.xadd(name, {**event(4, 1.0), "transaction_timestamp": "yesterday-ish"})
    source = RedisStreamSource(redis_url, name, "g1")
    worker = StreamIngestor(fs, "transaction_push_source", source, block_ms=10)
    drain(worker)
    out = fs.get_online_features([COUNT, TOTAL], {"user_id": [1, 2, 3]}).to_dict()
    assert out["transaction_count_1h"] == [2, 1, 0]  # an unknown entity has empty windows
    assert out["total_amount_1h"] == [6.5, 1.0, None]
    dead = client.xrange(f"{name}:dead-letter")
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(dead) == 3
    assert any("transaction_timestamp" in r for r in reasons)
    assert any("user_id" in r for r in reasons)
    assert any("not a timestamp" in r for r in reasons)
    assert client.xpending(name, "g1")["pending"] == 0
    assert worker.stats.events == 3 and worker.stats.dead == 3
    offline = fs.get_historical_features(
        {"user_id": [1], "event_timestamp": [datetime.now(UTC)]}, [COUNT]).to_df()  # fmt: skip
    assert offline["transaction_count_1h"].tolist() == [2]
    source.close()


class CrashAfterWrite(RedisStreamSource):
    """A consumer that dies after writing, before acknowledging."""

    def ack(self, ids: Any) -> None:
        raise KeyboardInterrupt


def test_redelivery_after_a_crash_is_idempotent(
    fs: FeatureStore, stream: tuple[str, Any], redis_url: str
) -> None:
    name, client = stream
    for amount in (1.0, 2.0, 3.0):
        client.xadd(name, event(9, amount))
    crashing = CrashAfterWrite(redis_url, name, "g2", consumer="c1")
    with pytest.raises(KeyboardInterrupt):
        StreamIngestor(fs, "transaction_push_source", crashing, offline=False).step()
    assert client.xpending(name, "g2")["pending"] == 3
    again = RedisStreamSource(redis_url, name, "g2", consumer="c1")  # restarts, same name
    drain(StreamIngestor(fs, "transaction_push_source", again, block_ms=10, offline=False))
    out = fs.get_online_features([COUNT, TOTAL], {"user_id": [9]}).to_dict()
    assert out["transaction_count_1h"] == [3] and out["total_amount_1h"] == [6.0]
    assert client.xpending(name, "g2")["pending"] == 0
    crashing.close()
    again.close()


def test_run_stops_when_asked(fs: FeatureStore, stream: tuple[str, Any], redis_url: str) -> None:
    name, client = stream
    source = RedisStreamSource(redis_url, name, "g3")
    worker = StreamIngestor(fs, "transaction_push_source", source, block_ms=20)
    thread = threading.Thread(target=worker.run)
    thread.start()
    client.xadd(name, event(5, 1.0))
    deadline = time.time() + 10
    while worker.stats.events < 1 and time.time() < deadline:
        time.sleep(0.02)
    worker.stop.set()
    thread.join(5)
    assert not thread.is_alive() and worker.stats.events == 1
    source.close()


def test_cli_worker_stops_cleanly_on_sigterm(
    tmp_path: Path, stream: tuple[str, Any], redis_url: str
) -> None:
    name, client = stream
    repo = tmp_path / "repo"
    pitstop = str(Path(sys.executable).with_name("pitstop"))
    subprocess.run([pitstop, "init", str(repo), "--users", "5"], check=True, capture_output=True)
    subprocess.run([pitstop, "apply"], cwd=repo, check=True, capture_output=True)
    entry = client.xadd(name, event(1001, 3.0))
    proc = subprocess.Popen(
        [pitstop, "ingest", "--push-source", "transaction_push_source", "--redis-stream", name,
         "--redis-url", redis_url],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    deadline = time.time() + 20
    while time.time() < deadline:  # until the entry is delivered and acknowledged
        groups = client.xinfo_groups(name)
        if groups and groups[0]["last-delivered-id"] == entry and not groups[0]["pending"]:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Stopped: 1 events" in out
