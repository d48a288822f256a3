"""The same guarantees from every stream source: delivery, exact redelivery after a crash,
dead letters, a clean stop on SIGTERM, and a consumer lag.

Each test runs once per source through its harness (``harnesses.py``): Redis Streams, NATS
JetStream, RabbitMQ and Mosquitto on this machine, and Kafka through the fake client over an
in-file log (no Kafka broker runs here). A source that cannot do something is declared on the
test with ``notimpl`` (a strict xfail), so that a gap that closes fails loudly.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harnesses import HARNESSES, Harness

from pitstop import FeatureStore
from pitstop.engine.ingest import StreamIngestor
from pitstop.streams.base import Batch
from pitstop.streams.decode import json_lines

SERVICES = {"redis": "redis_url", "nats": "nats_url", "rabbitmq": "rabbitmq_url",
            "mqtt": "mqtt_url", "kafka-fake": None}  # fmt: skip
MARKS = {"redis": pytest.mark.redis, "nats": pytest.mark.nats,
         "rabbitmq": pytest.mark.rabbitmq, "mqtt": pytest.mark.mqtt}  # fmt: skip

REPO = """
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
FEATURES = ("count_amount", "sum_amount", "max_amount", "kinds")


def notimpl(*names: str, reason: str) -> pytest.MarkDecorator:
    """Declare that the sources ``names`` cannot pass the test (a strict xfail)."""
    return pytest.mark.notimpl(names, reason=reason)


@pytest.fixture(params=[pytest.param(n, marks=[MARKS[n]] if n in MARKS else []) for n in HARNESSES])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    name = request.param
    mark = request.node.get_closest_marker("notimpl")
    if mark is not None and name in mark.args[0]:
        request.applymarker(pytest.mark.xfail(reason=mark.kwargs["reason"], strict=True))
    service = SERVICES[name]
    base = request.getfixturevalue(service) if service else "kafka://fake"
    made = HARNESSES[name](base, tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
def repo(tmp_path: Path, redis_url: str, redis_key_prefix: str) -> Path:
    """A feature repo with a windowed view, online in Redis, offline in Parquet, applied."""
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "features.py").write_text(REPO)
    prefix = f"{redis_key_prefix}c{uuid.uuid4().hex[:6]}:"
    (root / "feature_store.yaml").write_text(
        f"project: c{uuid.uuid4().hex[:8]}\nregistry: data/registry.db\nprovider: local\n"
        f"online_store:\n  type: redis\n  connection_string: {redis_url}\n"
        f"  key_prefix: '{prefix}'\noffline_store:\n  type: file\n"
    )
    pitstop = str(Path(sys.executable).with_name("pitstop"))
    subprocess.run([pitstop, "apply"], cwd=root, check=True, capture_output=True)
    return root


def make_events(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = time.time()
    return [{"user_id": rng.randint(1, 30), "amount": n_ + 0.5, "kind": rng.randint(0, 9),
             "ts": now - rng.uniform(1, 3000)} for n_ in range(n)]  # fmt: skip


def payloads(events: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def expected(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    want: dict[int, dict[str, Any]] = {}
    for e in events:
        w = want.setdefault(e["user_id"], {"n": 0, "sum": 0.0, "max": None, "kinds": set()})
        w["n"] += 1
        w["sum"] += e["amount"]
        w["max"] = e["amount"] if w["max"] is None else max(w["max"], e["amount"])
        w["kinds"].add(e["kind"])
    return want


def online(repo: Path, users: list[int]) -> dict[str, list[Any]]:
    store = FeatureStore(repo_path=repo)
    try:
        return store.get_online_features([f"activity:{f}" for f in FEATURES],
                                         {"user_id": users}).to_dict()  # fmt: skip
    finally:
        store.close()


def assert_exact(repo: Path, events: list[dict[str, Any]]) -> None:
    """Online aggregates equal a recomputation; offline holds every event once; verify agrees."""
    import pyarrow.parquet as pq

    want = expected(events)
    users = sorted(want)
    got = online(repo, users)
    assert got["count_amount"] == [want[u]["n"] for u in users]
    assert got["sum_amount"] == [want[u]["sum"] for u in users]
    assert got["max_amount"] == [want[u]["max"] for u in users]
    assert got["kinds"] == [len(want[u]["kinds"]) for u in users]
    parts = sorted((repo / "data" / "events.parquet.pushed").glob("*.parquet"))
    amounts = pq.ParquetDataset(parts).read().column("amount").to_pylist()
    assert sorted(amounts) == sorted(e["amount"] for e in events)  # each event once
    pitstop = str(Path(sys.executable).with_name("pitstop"))
    check = subprocess.run([pitstop, "verify", "--view", "activity", "--sample", "100"],
                           cwd=repo, capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def ingestor(repo: Path, source: Any, **kw: Any) -> tuple[FeatureStore, StreamIngestor]:
    store = FeatureStore(repo_path=repo)
    return store, StreamIngestor(store, "events_push", source, block_ms=200, **kw)


def drain(worker: StreamIngestor, events: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while worker.stats.events + worker.stats.dead < events and time.monotonic() < deadline:
        worker.step()
    assert worker.stats.events + worker.stats.dead >= events, worker.stats


def test_events_are_delivered_once_online_and_offline(harness: Harness, repo: Path) -> None:
    harness.prepare(harness.consumer("a"))
    events = make_events(300)
    harness.publish(payloads(events))
    source = harness.open(harness.consumer("a"))
    store, worker = ingestor(repo, source, batch=128)
    drain(worker, len(events))
    source.close()
    store.close()
    assert worker.stats.events == len(events) and worker.stats.dead == 0
    assert_exact(repo, events)


def test_json_lines_carry_several_events_per_message(harness: Harness, repo: Path) -> None:
    harness.prepare(harness.consumer("a"))
    events = make_events(90, seed=3)
    chunks = [events[i : i + 9] for i in range(0, len(events), 9)]
    harness.publish([b"\n".join(json.dumps(e).encode() for e in c) for c in chunks])
    source = harness.open(harness.consumer("a"))
    store, worker = ingestor(repo, source, batch=4, decoder=json_lines)
    drain(worker, len(events))
    source.close()
    store.close()
    assert_exact(repo, events)


class Crash(Exception):
    """A worker dying between its writes and its acknowledgement."""


class CrashingSource:
    """A source whose worker dies after writing a batch, before acknowledging it, and gives
    nothing back (as after SIGKILL)."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def ack(self, messages: Any) -> None:
        raise Crash

    def release(self, messages: Any) -> None:
        pass


def test_redelivery_after_a_crash_counts_nothing_twice(harness: Harness, repo: Path) -> None:
    harness.prepare(harness.consumer("a"))
    events = make_events(200, seed=11)
    harness.publish(payloads(events))
    inner = harness.open(harness.consumer("a"))
    store, crashing = ingestor(repo, CrashingSource(inner), batch=64)
    with pytest.raises(Crash):
        crashing.step()
    inner.close()
    store.close()
    again = harness.open(harness.consumer("a"))  # the restarted worker
    store, worker = ingestor(repo, again, batch=64)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(
        online(repo, list(range(1, 31)))["count_amount"]
    ) < len(events):
        worker.step()
    again.close()
    store.close()
    assert_exact(repo, events)


class DuplicatingSource:
    """A source whose reads hand every third message over twice in one batch, as a JetStream
    fetch does when it returns messages queued for an abandoned pull request together with
    their redelivery. Settling collapses the copies again (they are one delivery here)."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def read(self, count: int, block_ms: int) -> Batch:
        batch = self._source.read(count, block_ms)
        again = batch.messages[::3]
        return Batch([*batch.messages, *again], redelivered=bool(again) or batch.redelivered)

    def ack(self, messages: Any) -> None:
        self._source.ack(list({id(m): m for m in messages}.values()))


def test_a_message_twice_in_one_batch_counts_once(harness: Harness, repo: Path) -> None:
    harness.prepare(harness.consumer("a"))
    events = make_events(150, seed=19)
    harness.publish(payloads(events))
    source = harness.open(harness.consumer("a"))
    store, worker = ingestor(repo, DuplicatingSource(source), batch=64)
    drain(worker, len(events))
    source.close()
    store.close()
    assert worker.stats.events == len(events) and worker.stats.dead == 0, worker.stats  # once
    assert_exact(repo, events)


def test_bad_events_go_to_the_dead_letters_with_the_reason(harness: Harness, repo: Path) -> None:
    harness.prepare(harness.consumer("a"))
    good = make_events(20, seed=5)
    bad = [b"not json", json.dumps({"user_id": 1, "amount": 1.0}).encode(),
           json.dumps({"user_id": "abc", "amount": 1.0, "ts": time.time()}).encode(),
           json.dumps({"user_id": 2, "amount": 1.0, "ts": "yesterday-ish"}).encode()]  # fmt: skip
    harness.publish(payloads(good[:10]) + bad + payloads(good[10:]))
    source = harness.open(harness.consumer("a"))
    store, worker = ingestor(repo, source, batch=50)
    drain(worker, len(good) + len(bad))
    source.close()
    store.close()
    assert worker.stats.events == len(good) and worker.stats.dead == len(bad)
    reasons = [d["reason"] for d in harness.dead_letters()]
    assert len(reasons) == len(bad), reasons
    assert any("not JSON" in r for r in reasons)
    assert any("'ts'" in r for r in reasons)
    assert any("user_id" in r for r in reasons)
    assert any("not a timestamp" in r for r in reasons)
    assert_exact(repo, good)


def _wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_a_worker_stops_cleanly_on_sigterm(harness: Harness, repo: Path) -> None:
    harness.prepare(harness.consumer("a"))
    events = make_events(40, seed=9)
    harness.publish(payloads(events))
    proc = subprocess.Popen(harness.worker("events_push", harness.consumer("a"), 500), cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and "Consuming" in proc.stdout.readline()
    users = sorted(expected(events))
    _wait_for(lambda: sum(online(repo, users)["count_amount"]) == len(events), 30, "the events")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"Stopped: {len(events)} events" in out
    assert_exact(repo, events)


@notimpl("mqtt", reason="MQTT does not tell a client how many messages its session holds")
def test_the_consumer_lag_falls_as_batches_are_acknowledged(harness: Harness, repo: Path) -> None:
    harness.prepare(harness.consumer("a"))
    events = make_events(100, seed=13)
    harness.publish(payloads(events))
    source = harness.open(harness.consumer("a"))
    store, worker = ingestor(repo, source, batch=40)
    try:
        worker.step()
        _wait_for(lambda: source.lag() == 60, 10, "a lag of 60")
        drain(worker, len(events))
        _wait_for(lambda: source.lag() == 0, 10, "a lag of 0")
    finally:
        source.close()
        store.close()


def test_sigkilled_workers_lose_nothing_and_count_nothing_twice(
    harness: Harness, repo: Path
) -> None:
    """Events arrive while worker processes run and are killed (SIGKILL) at random points;
    a last worker drains the rest: online equals a recomputation and ``pitstop verify``,
    offline holds each event once."""
    rng = random.Random(20261203)
    harness.prepare(harness.consumer("a"))
    events = make_events(min(3000, harness.backlog), seed=17)
    harness.publish(payloads(events[: len(events) // 3]))
    feeder = threading.Thread(target=_feed, args=(harness, events[len(events) // 3 :]))
    feeder.start()
    for _ in range(3):
        proc = subprocess.Popen(harness.worker("events_push", harness.consumer("a"), 97),
                                cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        assert proc.stdout is not None and "Consuming" in proc.stdout.readline()
        time.sleep(rng.uniform(0.5, 1.5))
        proc.kill()
        proc.communicate()
    feeder.join()
    proc = subprocess.Popen(harness.worker("events_push", harness.consumer("a"), 500), cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    users = sorted(expected(events))
    try:
        assert proc.stdout is not None and "Consuming" in proc.stdout.readline()
        _wait_for(lambda: sum(online(repo, users)["count_amount"]) >= len(events), 90,
                  "every event online")  # fmt: skip
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not harness.dead_letters()
    assert_exact(repo, events)


def _feed(harness: Harness, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 100):
        harness.publish(payloads(events[start : start + 100]))
        time.sleep(0.1)
