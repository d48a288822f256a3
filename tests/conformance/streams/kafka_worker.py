"""``pitstop ingest`` for the fake Kafka log: a worker process the conformance tests can kill.

Usage (in a feature repo): ``python kafka_worker.py LOG TOPIC PUSH_SOURCE GROUP CONSUMER BATCH``
"""

from __future__ import annotations

import sys
from pathlib import Path

import fake_kafka

from pitstop import FeatureStore
from pitstop.engine.ingest import StreamIngestor
from pitstop.streams.kafka import KafkaSource


def main() -> None:
    log, topic, push_source, group, consumer, batch = sys.argv[1:7]
    store = FeatureStore(repo_path=Path.cwd())
    source = KafkaSource("fake", topic, group, config={"fake.log": log}, client=fake_kafka,
                         client_id=consumer)  # fmt: skip
    worker = StreamIngestor(store, push_source, source, batch=int(batch), block_ms=100)
    worker.stop_on_signals()
    print(f"Consuming {topic!r} into {push_source!r}", flush=True)
    stats = worker.run()
    source.close()
    store.close()
    print(f"Stopped: {stats.line()}", flush=True)


if __name__ == "__main__":
    main()
