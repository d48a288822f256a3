"""One harness per stream source: how to reach it, publish to it, read its dead letters and
start a worker process on it. The conformance tests use only this interface; what a source
cannot do is declared on the tests (``notimpl``), never by asking a harness its name.

Every harness works on names of its own (``uuid``), so parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pitstop.streams import SourceOptions, open_source
from pitstop.streams.base import Source

HERE = Path(__file__).resolve().parent
PITSTOP = str(Path(sys.executable).with_name("pitstop"))


class Harness:
    """A source under test. ``backlog``: most messages a test may leave waiting for a
    consumer (Mosquitto drops more by default)."""

    name = ""
    backlog = 100_000
    group = "conformance"

    def __init__(self, url: str, tmp: Path) -> None:
        self.base = url
        self.tmp = tmp
        self.stream = f"pitstop-test-{uuid.uuid4().hex[:10]}"

    @property
    def url(self) -> str:
        return f"{self.base}/{self.stream}"

    def consumer(self, name: str) -> str:
        """A consumer name (an MQTT client id: global to the broker) of this test's own."""
        return f"{name}-{self.stream}"

    def open(self, consumer: str = "a", batch: int = 1000) -> Source:
        options = SourceOptions(group=self.group, consumer=consumer, batch=batch)
        return open_source(self.url, None, options)

    def prepare(self, consumer: str = "a") -> None:
        """Make the consumer's group, queue or session exist before anything is published."""
        source = self.open(consumer)
        batch = source.read(1, 50)
        assert not batch.messages
        source.close()

    def publish(self, payloads: list[bytes]) -> None:
        raise NotImplementedError

    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead-lettered documents (each with a ``reason``)."""
        raise NotImplementedError

    def worker(self, push_source: str, consumer: str, batch: int) -> list[str]:
        """The command line of a worker process (run in the feature repo)."""
        return [PITSTOP, "ingest", "--push-source", push_source, "--source", self.url,
                "--group", self.group, "--consumer", consumer, "--batch", str(batch)]  # fmt: skip

    def cleanup(self) -> None:
        pass


class RedisHarness(Harness):
    name = "redis"

    def __init__(self, url: str, tmp: Path) -> None:
        import redis

        super().__init__(url, tmp)
        self.client = redis.Redis.from_url(url)

    @property
    def url(self) -> str:
        return f"{self.base}?stream={self.stream}"

    def publish(self, payloads: list[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(self.stream, {"json": payload})
        pipe.execute()

    def dead_letters(self) -> list[dict[str, Any]]:
        return [
            {k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in self.client.xrange(f"{self.stream}:dead-letter")
        ]

    def cleanup(self) -> None:
        self.client.delete(self.stream, f"{self.stream}:dead-letter")
        self.client.close()


class NatsHarness(Harness):
    name = "nats"

    def __init__(self, url: str, tmp: Path) -> None:
        super().__init__(url, tmp)
        self.stream = self.stream.replace("-", "_")
        self._call(lambda js: js.add_stream(name=self.stream, subjects=[f"{self.stream}.>"]))

    @property
    def url(self) -> str:
        return f"{self.base}/{self.stream}?ack_wait=2"

    def _call(self, action: Any) -> Any:
        import nats

        async def run() -> Any:
            nc = await nats.connect(self.base)
            try:
                return await action(nc.jetstream())
            finally:
                await nc.close()

        return asyncio.run(run())

    def publish(self, payloads: list[bytes]) -> None:
        async def send(js: Any) -> None:
            acks = [await js.publish_async(f"{self.stream}.events", p) for p in payloads]
            await asyncio.gather(*acks)

        self._call(send)

    def dead_letters(self) -> list[dict[str, Any]]:
        name = f"{self.stream}-dead-letter"

        async def read(js: Any) -> list[dict[str, Any]]:
            try:
                info = await js.stream_info(name)
            except Exception:
                return []
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                out.append(json.loads((await js.get_msg(name, seq)).data))
            return out

        return self._call(read)  # type: ignore[no-any-return]

    def cleanup(self) -> None:
        async def drop(js: Any) -> None:
            for name in (self.stream, f"{self.stream}-dead-letter"):
                with contextlib.suppress(Exception):
                    await js.delete_stream(name)

        self._call(drop)


class RabbitMQHarness(Harness):
    name = "rabbitmq"

    def _channel(self) -> tuple[Any, Any]:
        import pika

        conn = pika.BlockingConnection(pika.URLParameters(self.base + "/%2F"))
        channel = conn.channel()
        channel.confirm_delivery()
        return conn, channel

    def prepare(self, consumer: str = "a") -> None:
        conn, channel = self._channel()
        channel.queue_declare(self.stream, durable=True, arguments={"x-queue-type": "quorum"})
        conn.close()
        super().prepare(consumer)

    def publish(self, payloads: list[bytes]) -> None:
        import pika

        conn, channel = self._channel()
        for payload in payloads:
            props = pika.BasicProperties(message_id=uuid.uuid4().hex, delivery_mode=2)
            channel.basic_publish("", self.stream, payload, props, mandatory=True)
        conn.close()

    def dead_letters(self) -> list[dict[str, Any]]:
        conn, channel = self._channel()
        out = []
        try:
            while True:
                method, _, body = channel.basic_get(f"{self.stream}.dead-letter", auto_ack=True)
                if method is None:
                    break
                out.append(json.loads(body))
        except Exception:
            pass
        conn.close()
        return out

    def cleanup(self) -> None:
        conn, channel = self._channel()
        for queue in (self.stream, f"{self.stream}.dead-letter"):
            channel.queue_delete(queue)
        conn.close()


class MqttHarness(Harness):
    name = "mqtt"
    backlog = 900  # Mosquitto's default max_queued_messages is 1000

    def _client(self, client_id: str, clean: bool, on_message: Any = None) -> Any:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=clean)  # fmt: skip
        client.on_message = on_message  # before connecting: a kept session delivers at once
        client.connect("127.0.0.1", int(self.base.rpartition(":")[2]))
        client.loop_start()
        return client

    def prepare(self, consumer: str = "a") -> None:
        from pitstop.streams.mqtt import DEAD_PREFIX

        collector = self._client(f"dl-{self.stream}", clean=False)
        collector.subscribe(DEAD_PREFIX + self.stream, qos=1)
        time.sleep(0.3)
        collector.loop_stop()
        collector.disconnect()
        super().prepare(consumer)

    def publish(self, payloads: list[bytes]) -> None:
        client = self._client(f"pub-{uuid.uuid4().hex[:8]}", clean=True)
        infos = [client.publish(self.stream, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)
        client.loop_stop()
        client.disconnect()

    def dead_letters(self) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []

        def keep(client: Any, userdata: Any, message: Any) -> None:
            got.append(json.loads(message.payload))

        client = self._client(f"dl-{self.stream}", clean=False, on_message=keep)
        deadline, seen = time.monotonic() + 15, -1
        while len(got) != seen and time.monotonic() < deadline:  # until a second brings none
            seen = len(got)
            time.sleep(1.0)
        client.loop_stop()
        client.disconnect()
        return got

    def cleanup(self) -> None:  # end the sessions
        for client_id in (f"dl-{self.stream}", *(self.consumer(n) for n in ("a", "b"))):
            self._client(client_id, clean=True).disconnect()


class KafkaFakeHarness(Harness):
    name = "kafka-fake"

    def __init__(self, url: str, tmp: Path) -> None:
        super().__init__(url, tmp)
        self.log = str(tmp / f"{self.stream}.kafka.db")

    @property
    def url(self) -> str:
        return f"kafka://fake/{self.stream}?fake.log={self.log}"

    def open(self, consumer: str = "a", batch: int = 1000) -> Source:
        import fake_kafka

        from pitstop.streams.kafka import KafkaSource

        return KafkaSource("fake", self.stream, self.group, config={"fake.log": self.log},
                           client=fake_kafka, client_id=consumer)  # fmt: skip

    def publish(self, payloads: list[bytes]) -> None:
        import fake_kafka

        producer = fake_kafka.Producer({"fake.log": self.log})
        for payload in payloads:  # no key: an entity's events spread over the partitions
            producer.produce(self.stream, payload)
        producer.flush()

    def dead_letters(self) -> list[dict[str, Any]]:
        import fake_kafka

        consumer = fake_kafka.Consumer({"fake.log": self.log, "group.id": "dead-reader",
                                        "enable.auto.commit": False,
                                        "auto.offset.reset": "earliest"})  # fmt: skip
        consumer.subscribe([f"{self.stream}.dead-letter"])
        out = [json.loads(m.value()) for m in consumer.consume(100_000, 0.2)]
        consumer.close()
        return out

    def worker(self, push_source: str, consumer: str, batch: int) -> list[str]:
        return [sys.executable, str(HERE / "kafka_worker.py"), self.log, self.stream,
                push_source, self.group, consumer, str(batch)]  # fmt: skip


HARNESSES = {
    h.name: h for h in (RedisHarness, NatsHarness, RabbitMQHarness, MqttHarness, KafkaFakeHarness)
}
