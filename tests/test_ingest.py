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
from pitstop.engine.ingest import StreamIngestor
from pitstop.streams.redis import RedisStreamSource
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

    def ack(self, messages: Any) -> None:
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


def test_a_crash_between_the_offline_append_and_the_ack_duplicates_no_row(
    fs: FeatureStore, stream: tuple[str, Any], redis_url: str
) -> None:
    import pyarrow.parquet as pq

    name, client = stream
    for amount in (1.0, 2.0, 3.0):
        client.xadd(name, event(9, amount))
    crashing = CrashAfterWrite(redis_url, name, "g4", consumer="c1")
    with pytest.raises(KeyboardInterrupt):
        StreamIngestor(fs, "transaction_push_source", crashing).step()  # fresh: one range
    again = CrashAfterWrite(redis_url, name, "g4", consumer="c1")
    with pytest.raises(KeyboardInterrupt):  # its own entries again, then dies again
        StreamIngestor(fs, "transaction_push_source", again).step()
    client.xadd(name, event(9, 4.0))
    third = CrashAfterWrite(redis_url, name, "g4", consumer="c3")
    with pytest.raises(KeyboardInterrupt):  # another worker: the new entry, then dies
        StreamIngestor(fs, "transaction_push_source", third).step()
    time.sleep(0.05)
    other = RedisStreamSource(redis_url, name, "g4", consumer="c2", claim_idle_ms=20)
    drain(StreamIngestor(fs, "transaction_push_source", other, block_ms=10))  # takes all over
    assert other.consumer == "c2" and client.xpending(name, "g4")["pending"] == 0
    folder = fs.repo_path / "data" / "transactions.parquet.pushed"
    parts = sorted(folder.glob("*.parquet"))
    rows = pq.ParquetDataset(parts).read()
    assert sorted(rows.column("transaction_amount").to_pylist()) == [1.0, 2.0, 3.0, 4.0]
    assert len(parts) == 2 and all(p.name.startswith("stream-") for p in parts)
    out = fs.get_online_features([COUNT, TOTAL], {"user_id": [9]}).to_dict()
    assert out["transaction_count_1h"] == [4] and out["total_amount_1h"] == [10.0]
    for source in (crashing, again, third, other):
        source.close()


def test_a_consumer_name_is_stable_and_claim_idle_must_be_positive(redis_url: str) -> None:
    from pitstop.errors import ConfigError
    from pitstop.streams.redis import default_consumer

    assert default_consumer("clicks") == default_consumer("clicks") != default_consumer("views")
    assert str(os.getpid()) not in default_consumer("clicks").split(":")
    with pytest.raises(ConfigError, match="claim_idle_ms must be positive, got 0"):
        RedisStreamSource(redis_url, "unused", "g", claim_idle_ms=0)


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


KILL_REPO = """
from datetime import timedelta
from pitstop import Entity, FileSource, PushSource, StreamFeatureView, ValueType
from pitstop.aggregation import Aggregation

user = Entity(name="user_id", value_type=ValueType.INT64)
events = FileSource(path="data/events.parquet", timestamp_field="ts")
push = PushSource(name="events_push", batch_source=events)
hour, minute = timedelta(hours=1), timedelta(minutes=1)
activity = StreamFeatureView(
    name="activity", entities=[user], ttl=hour, source=push,
    aggregations=[
        Aggregation(column="amount", function=f, time_window=hour, slide_interval=minute,
                    name=f"{f}_amount")
        for f in ("count", "sum", "max")
    ] + [Aggregation(column="kind", function="count_distinct", time_window=hour,
                     slide_interval=minute, name="kinds")],
)
"""


def _kill_repo(root: Path, redis_url: str, prefix: str) -> Path:
    repo = root / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "features.py").write_text(KILL_REPO)
    (repo / "feature_store.yaml").write_text(
        f"project: k{uuid.uuid4().hex[:8]}\nregistry: data/registry.db\nprovider: local\n"
        f"online_store:\n  type: redis\n  connection_string: {redis_url}\n"
        f"  key_prefix: '{prefix}'\noffline_store:\n  type: file\n"
    )
    return repo


def _feed(client: Any, name: str, events: list[dict[str, str]], pause: float) -> None:
    for start in range(0, len(events), 250):
        pipe = client.pipeline(transaction=False)
        for fields in events[start : start + 250]:
            pipe.xadd(name, fields)
        pipe.execute()
        time.sleep(pause)


def _mine(client: Any, name: str) -> dict[str, int]:
    """Unacknowledged entries per consumer of the group ``g``."""
    return {c["name"].decode(): c["pending"] for c in client.xpending(name, "g")["consumers"]}


def test_sigkilled_workers_lose_no_event_and_count_none_twice(
    tmp_path: Path, stream: tuple[str, Any], redis_url: str, redis_key_prefix: str
) -> None:
    """20,000 out-of-order events reach the stream while ``pitstop ingest`` processes run and
    are killed (SIGKILL) with a batch in flight; a consumer that never returns ("ghost") and
    one that does not come back at the end ("a") leave entries that must be taken over. Once
    drained: online aggregates equal a recomputation, offline holds each event once, and
    ``pitstop verify`` agrees."""
    import random

    import pyarrow.parquet as pq

    name, client = stream
    rng = random.Random(20261203)
    pitstop = str(Path(sys.executable).with_name("pitstop"))
    repo = _kill_repo(tmp_path, redis_url, f"{redis_key_prefix}kill{uuid.uuid4().hex[:6]}:")
    subprocess.run([pitstop, "apply"], cwd=repo, check=True, capture_output=True)
    now = time.time()
    events = [
        {"user_id": str(rng.randint(1, 40)), "amount": f"{n}.5", "kind": str(rng.randint(0, 9)),
         "ts": f"{now - rng.uniform(1, 3000):.6f}"}  # out of order, within the last 50 min
        for n in range(20_000)
    ]  # fmt: skip
    client.xgroup_create(name, "g", id="0", mkstream=True)
    _feed(client, name, events[:1000], 0)
    client.xreadgroup("g", "ghost", {name: ">"}, count=300)  # a worker that died at once
    feeder = threading.Thread(target=_feed, args=(client, name, events[1000:], 0.2))
    feeder.start()

    def worker(consumer: str, claim_idle_ms: int = 3000) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [pitstop, "ingest", "--push-source", "events_push", "--redis-stream", name,
             "--redis-url", redis_url, "--group", "g", "--consumer", consumer, "--batch", "700",
             "--claim-idle-ms", str(claim_idle_ms)],
            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    left = []  # entries the killed worker held unacknowledged
    # "b" handles newer entries before "a" returns to its older ones: out of order
    for consumer, claim_idle_ms in (("a", 3000), ("a", 3000), ("b", 60_000), ("a", 3000)):
        proc = worker(consumer, claim_idle_ms)
        time.sleep(rng.uniform(1.0, 3.0))
        deadline = time.time() + 5
        while not _mine(client, name).get(consumer) and time.time() < deadline:
            time.sleep(0.002)  # until a batch is in flight: between its read and its ack
        proc.kill()
        proc.communicate()
        left.append(_mine(client, name).get(consumer, 0))
    feeder.join()
    proc = worker("b")  # "a" never returns: its last entries must be reclaimed
    assert proc.stdout is not None and "Consuming" in proc.stdout.readline()
    deadline = time.time() + 40
    last = client.xrevrange(name, count=1)[0][0].decode()
    while time.time() < deadline:
        group = next(g for g in client.xinfo_groups(name) if g["name"] == b"g")
        if group["last-delivered-id"].decode() == last and not group["pending"]:
            break
        time.sleep(0.2)
    time.sleep(0.3)  # past start-up: stops on SIGTERM
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert not group["pending"] and group["last-delivered-id"].decode() == last, _mine(client, name)
    assert sum(left) > 0, left  # kills hit batches in flight
    assert client.xlen(f"{name}:dead-letter") == 0

    folder = repo / "data" / "events.parquet.pushed"
    offline = pq.ParquetDataset(sorted(folder.glob("*.parquet"))).read()
    amounts = offline.column("amount").to_pylist()
    assert len(amounts) == len(events) and len(set(amounts)) == len(events)  # each once

    want: dict[int, dict[str, Any]] = {}
    for e in events:
        w = want.setdefault(int(e["user_id"]), {"n": 0, "sum": 0.0, "max": None, "kinds": set()})
        amount = float(e["amount"])
        w["n"] += 1
        w["sum"] += amount
        w["max"] = amount if w["max"] is None else max(w["max"], amount)
        w["kinds"].add(int(e["kind"]))
    users = sorted(want)
    store = FeatureStore(repo_path=repo)
    refs = [f"activity:{f}" for f in ("count_amount", "sum_amount", "max_amount", "kinds")]
    got = store.get_online_features(refs, {"user_id": users}).to_dict()
    store.close()
    assert got["count_amount"] == [want[u]["n"] for u in users]
    assert got["sum_amount"] == [want[u]["sum"] for u in users]  # halves: sums are exact
    assert got["max_amount"] == [want[u]["max"] for u in users]
    assert got["kinds"] == [len(want[u]["kinds"]) for u in users]
    check = subprocess.run([pitstop, "verify", "--view", "activity", "--sample", "100"],
                           cwd=repo, capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
