"""Broker ingestion throughput: events/s from each broker into Redis online tiles.

For each broker, N JSON events (10,000 users, the seed's 1 h count/sum view) are published
first, then one in-process worker (:class:`StreamIngestor`, offline appends off, as in
``streams.py``) consumes them into the Redis online store; the rate is events over the time
from the first read to the last acknowledgement, the median of ``--repeat`` runs.

Brokers: Redis Streams, NATS JetStream and RabbitMQ (quorum queue) on this machine's default
ports; MQTT on a Mosquitto started here for the run with ``max_queued_messages 0`` and
``max_inflight_messages 0`` (the defaults, 1000 and 20, drop or throttle a backlog; see the
README); Kafka through the fake client (no broker: it measures the pipeline, not Kafka).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "conformance" / "streams"))

import pandas  # noqa: E402, F401  (a long-running worker imports it once, not in the timing)
import pyarrow  # noqa: E402, F401
from streams import make_store  # noqa: E402

from pitstop import FeatureStore  # noqa: E402
from pitstop.engine.ingest import StreamIngestor  # noqa: E402
from pitstop.streams import SourceOptions, open_source  # noqa: E402
from pitstop.streams.base import Source  # noqa: E402
from pitstop.streams.decode import json_lines, json_object  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"
MQTT_PROTOCOL = "3.1.1"  # the broker here has max_inflight_messages 0; see the docstring
TARGETS = {"nats": 50_000, "rabbitmq": 20_000, "mqtt": 20_000}


def make_events(n: int, entities: int) -> list[bytes]:
    rng = random.Random(1)
    now = datetime.now(UTC)
    return [
        json.dumps({"user_id": rng.randint(1, entities),
                    "transaction_amount": round(rng.uniform(1, 100), 2),
                    "transaction_timestamp": (now - timedelta(seconds=rng.randint(0, 3000)))
                    .isoformat()}).encode()
        for _ in range(n)
    ]  # fmt: skip


# -- publishers: each returns a function opening the source on what it published ----------


def redis_publish(events: list[bytes], name: str) -> Callable[[], Source]:
    import redis

    client = redis.Redis.from_url(REDIS)
    for start in range(0, len(events), 10_000):
        pipe = client.pipeline(transaction=False)
        for e in events[start : start + 10_000]:
            pipe.xadd(name, {"json": e})
        pipe.execute()
    client.close()
    return lambda: open_source(f"{REDIS}?stream={name}", None, SourceOptions(group="bench"))


def nats_publish(events: list[bytes], name: str) -> Callable[[], Source]:
    import nats

    async def send() -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        js = nc.jetstream()
        await js.add_stream(name=name, subjects=[f"{name}.>"])
        for start in range(0, len(events), 5_000):
            acks = [await js.publish_async(f"{name}.e", e) for e in events[start : start + 5_000]]
            await asyncio.gather(*acks)
        await nc.close()

    asyncio.run(send())
    return lambda: open_source(f"nats://127.0.0.1:4222/{name}", None, SourceOptions(group="b"))


def rabbitmq_publish(events: list[bytes], name: str) -> Callable[[], Source]:
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    channel = conn.channel()
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    for i, e in enumerate(events):  # no confirm per message (slow); the count is checked below
        channel.basic_publish("", name, e, pika.BasicProperties(message_id=str(i)))
    deadline = time.monotonic() + 120
    while channel.queue_declare(name, passive=True).method.message_count < len(events):
        assert time.monotonic() < deadline, "RabbitMQ did not take every message"
        time.sleep(0.2)
    conn.close()
    url = f"amqp://guest:guest@127.0.0.1:5672/{name}"
    return lambda: open_source(url, None, SourceOptions(group="bench"))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_publish(port: int, topic: str, payloads: list[bytes]) -> None:
    """QoS 1 publishing, pipelined (paho's publisher manages a few thousand a second)."""

    def text(b: bytes) -> bytes:
        return struct.pack("!H", len(b)) + b

    with socket.create_connection(("127.0.0.1", port)) as sock:
        body = text(b"MQTT") + bytes([4, 2]) + struct.pack("!H", 60) + text(b"bench-publisher")
        sock.sendall(b"\x10" + _varint(len(body)) + body)
        assert sock.recv(4)[:2] == b"\x20\x02"
        head = text(topic.encode())
        for start in range(0, len(payloads), 30_000):  # packet ids stay unique in flight
            chunk, out = payloads[start : start + 30_000], bytearray()
            for mid, p in enumerate(chunk, 1):
                body = head + struct.pack("!H", mid) + p
                out += b"\x32" + _varint(len(body)) + body
            sock.sendall(out)
            need = 4 * len(chunk)
            while need > 0:
                got = sock.recv(1 << 16)
                assert got, "the broker closed the connection"
                need -= len(got)
        sock.sendall(b"\xe0\x00")


class Mosquitto:
    """A Mosquitto of the benchmark's own that keeps (and sends) any backlog."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = folder / "mosquitto.conf"
        settings = ["allow_anonymous true", "max_queued_messages 0", "max_inflight_messages 0",
                    "persistence false"]  # fmt: skip
        conf.write_text("\n".join([f"listener {self.port} 127.0.0.1", *settings, ""]))
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def mqtt_publish(events: list[bytes], name: str, port: int) -> Callable[[], Source]:
    url = f"mqtt://127.0.0.1:{port}/{name}?protocol={MQTT_PROTOCOL}"
    options = SourceOptions(group="bench", consumer=f"bench-{name}")
    session = open_source(url, None, options)
    session.read(1, 10)  # the session and its subscription exist
    session.close()
    _mqtt_publish(port, name, events)
    return lambda: open_source(url, None, options)


def kafka_publish(events: list[bytes], name: str, folder: Path) -> Callable[[], Source]:
    import fake_kafka

    from pitstop.streams.kafka import KafkaSource

    log = str(folder / f"{name}.db")
    producer = fake_kafka.Producer({"fake.log": log})
    for e in events:
        producer.produce(name, e)
    producer.flush()
    return lambda: KafkaSource("fake", name, "bench", config={"fake.log": log},
                               client=fake_kafka)  # fmt: skip


# -- the measurement -----------------------------------------------------------------------


def consume(store: FeatureStore, source: Source, n: int, batch: int, per: int = 1) -> float:
    decode = json_lines if per > 1 else json_object
    worker = StreamIngestor(store, "transaction_push_source", source, batch=batch, block_ms=200,
                            offline=False, decoder=decode)  # fmt: skip
    start = time.perf_counter()
    while worker.stats.events < n:
        if not worker.step() and time.perf_counter() - start > 120:
            break
    seconds = time.perf_counter() - start
    assert worker.stats.events == n, f"{worker.stats.events} of {n} events arrived"
    return n / seconds


def run_once(
    broker: str, events: list[bytes], batch: int, folder: Path, port: int, per: int = 1
) -> float:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    total = len(events)
    if per > 1:  # JSON lines: ``per`` events in each message
        events = [b"\n".join(events[i : i + per]) for i in range(0, len(events), per)]
    store = make_store(folder, f"pitstop_bench_{uuid.uuid4().hex[:8]}:")
    publishers: dict[str, Callable[[], Callable[[], Source]]] = {
        "redis": lambda: redis_publish(events, name),
        "nats": lambda: nats_publish(events, name),
        "rabbitmq": lambda: rabbitmq_publish(events, name),
        "mqtt": lambda: mqtt_publish(events, name, port),
        "kafka-fake": lambda: kafka_publish(events, name, folder),
    }
    opener = publishers[broker]()
    source = opener()
    try:
        return consume(store, source, total, max(batch // per, 1), per)
    finally:
        source.close()
        store.teardown()
        store.close()
        _cleanup(broker, name)


def _cleanup(broker: str, name: str) -> None:
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(REDIS)
        client.delete(name)
        client.close()
    elif broker == "nats":
        import nats

        async def drop() -> None:
            nc = await nats.connect("nats://127.0.0.1:4222")
            await nc.jetstream().delete_stream(name)
            await nc.close()

        asyncio.run(drop())
    elif broker == "rabbitmq":
        import pika

        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        channel = conn.channel()
        for queue in (name, f"{name}.dead-letter"):
            channel.queue_delete(queue)
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--brokers", default="redis,nats,rabbitmq,mqtt,kafka-fake")
    parser.add_argument("--per-message", type=int, default=1,
                        help="events per message (JSON lines) when more than 1")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeat = 5000, 1
    events = make_events(args.events, args.entities)
    brokers = args.brokers.split(",")
    per = f", {args.per_message} events per message" if args.per_message > 1 else ""
    print(f"{args.events:,} events{per}")
    print(f"{'broker → Redis tiles':<28} {'events/s (median)':>18} {'runs':>30} {'target':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        mosquitto = Mosquitto(Path(tmp)) if "mqtt" in brokers else None
        try:
            for broker in brokers:
                rates = []
                for i in range(args.repeat):
                    folder = Path(tmp) / f"{broker}-{i}"
                    folder.mkdir()
                    port = mosquitto.port if mosquitto else 0
                    rates.append(
                        run_once(broker, events, args.batch, folder, port, args.per_message)
                    )
                runs = ", ".join(f"{r / 1000:.1f}k" for r in rates)
                target = TARGETS.get(broker)
                print(f"{broker:<28} {statistics.median(rates):>18,.0f} {runs:>30} "
                      f"{f'≥ {target:,}' if target else '':>10}", flush=True)  # fmt: skip
        finally:
            if mosquitto:
                mosquitto.stop()


if __name__ == "__main__":
    main()
