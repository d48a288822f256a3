"""Stream features: push-to-readable latency and Redis Streams ingestion throughput.

- latency: one event pushed with ``store.push`` (Redis online store, the seed's 1 h count/sum
  view), then read back with ``get_online_features``; p50/p99 of push + read until the new
  count is visible (target p99 ≤ 5 ms);
- throughput: N events written to a Redis stream beforehand, then consumed by the ingestion
  worker into Redis online tiles (target ≥ 50,000 events/s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pitstop import FeatureStore
from pitstop.config import parse_config
from pitstop.engine.ingest import StreamIngestor
from pitstop.streams.redis import RedisStreamSource

REDIS = "redis://127.0.0.1:6379/0"


def make_store(root: Path, prefix: str) -> FeatureStore:
    from test_streams import push_source, seed_view, user

    cfg = parse_config(
        {"project": "bench", "online_store": {"type": "redis", "connection_string": REDIS,
                                              "key_prefix": prefix}},
        repo_path=root,
    )  # fmt: skip
    store = FeatureStore(config=cfg)
    store.apply([user, push_source, seed_view])
    return store


def latency(store: FeatureStore, n: int) -> list[float]:
    refs = ["transaction_streaming_features:transaction_count_1h"]
    samples = []
    for i in range(n + 200):
        uid = 10_000_000 + i
        event = {"user_id": [uid], "transaction_amount": [1.0],
                 "transaction_timestamp": [datetime.now(UTC)]}  # fmt: skip
        start = time.perf_counter_ns()
        store.push("transaction_push_source", event)
        got = store.get_online_features(refs, [{"user_id": uid}]).values
        took = (time.perf_counter_ns() - start) / 1000
        assert got["transaction_count_1h"] == [1]
        if i >= 200:
            samples.append(took)
    return samples


def throughput(store: FeatureStore, prefix: str, events: int, entities: int) -> tuple[float, int]:
    import redis

    client = redis.Redis.from_url(REDIS)
    stream = f"{prefix}stream"
    now = datetime.now(UTC)
    rng = random.Random(1)
    pipe = client.pipeline(transaction=False)
    for i in range(events):
        ts = (now - timedelta(seconds=rng.randint(0, 3000))).isoformat()
        pipe.xadd(stream, {"user_id": str(rng.randint(1, entities)),
                           "transaction_amount": f"{rng.uniform(1, 100):.2f}",
                           "transaction_timestamp": ts})  # fmt: skip
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    source = RedisStreamSource(REDIS, stream, "bench")
    worker = StreamIngestor(store, "transaction_push_source", source, batch=50_000, block_ms=10,
                            offline=False)  # fmt: skip
    start = time.perf_counter()
    while worker.stats.events < events and worker.step():
        pass
    seconds = time.perf_counter() - start
    source.close()
    client.delete(stream)
    keys = list(client.scan_iter(match=f"{prefix}*", count=10_000))
    for i in range(0, len(keys), 10_000):
        client.unlink(*keys[i : i + 10_000])
    client.close()
    return worker.stats.events / seconds, worker.stats.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.events, args.samples, args.repeat = 5000, 200, 1
    rates, p50s, p99s = [], [], []
    for _ in range(args.repeat):
        prefix = f"pitstop_bench_{uuid.uuid4().hex[:8]}:"
        with tempfile.TemporaryDirectory() as tmp:
            store = make_store(Path(tmp), prefix)
            samples = sorted(latency(store, args.samples))
            p50s.append(samples[len(samples) // 2])
            p99s.append(samples[int(len(samples) * 0.99)])
            rate, _ = throughput(store, prefix, args.events, args.entities)
            rates.append(rate)
            store.teardown()
            store.close()
    print(f"{'workload':<58} {'median':>12} {'target':>14}")
    print(
        f"{'push 1 event + read it back, Redis, p50 (µs)':<58} "
        f"{statistics.median(p50s):>12,.0f} {'':>14}"
    )
    print(
        f"{'push 1 event + read it back, Redis, p99 (µs)':<58} "
        f"{statistics.median(p99s):>12,.0f} {'≤ 5,000':>14}"
    )
    print(
        f"{f'ingest {args.events:,} stream events → Redis tiles (events/s)':<58} "
        f"{statistics.median(rates):>12,.0f} {'≥ 50,000':>14}"
    )


if __name__ == "__main__":
    main()
