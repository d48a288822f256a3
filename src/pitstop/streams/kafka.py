"""Kafka: a consumer group, offsets committed after the writes (``confluent-kafka``).

``kafka://host:9092[,host2:9092]/TOPIC?KEY=VALUE`` subscribes to ``TOPIC`` in the consumer
group ``--group``, auto-commit off, from the earliest offset when the group has none; other
query keys are passed to the client as configuration (``security.protocol=SSL`` ...).

* **Positions** are offsets, ``(offset, 0)`` in the message's partition: one mark per
  partition. A partition belongs to one consumer of the group at a time, so a batch holds,
  per partition, every message between its first and last offset.
* **Acknowledging** commits, per partition, the offset after the batch's last message,
  synchronously. ``settled``: the committed offsets.
* **Redelivery.** A restarted worker (or the next owner of a partition) starts from the
  committed offsets. Which of those messages a dead worker may already have written is known
  exactly: before writing a batch, the source commits the unchanged offset with the metadata
  ``pitstop:upto=N`` (N: the offset after the batch), so messages below N are flagged as
  possibly handled. ``release`` seeks back to the batch's first offsets.
* **Dead letters** are produced to ``TOPIC.dead-letter`` (flushed before the acknowledgement):
  a JSON document with the reason, the position and the payload, and the header
  ``pitstop-reason``.
* **Lag**: per assigned partition, the high watermark minus the committed offset, summed.

The client module is a parameter (``client``): anything with confluent-kafka's ``Consumer``,
``Producer`` and ``TopicPartition`` works the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from pitstop.errors import BackendUnavailableError, require
from pitstop.streams.base import (
    Batch,
    DeadLetter,
    Message,
    Position,
    SourceOptions,
    dead_letter_body,
)

UPTO = "pitstop:upto="


class KafkaSource:
    """A Kafka topic read by a member of a consumer group."""

    ordered = True

    def __init__(
        self, servers: str, topic: str, group: str, *, config: dict[str, str] | None = None,
        client: Any = None, client_id: str | None = None,
    ) -> None:  # fmt: skip
        module: Any = client or require("confluent_kafka", "kafka")
        self._k = module
        self.name = topic
        self.dead_topic = f"{topic}.dead-letter"
        self._where = servers
        base = {"bootstrap.servers": servers, **(config or {})}
        if client_id:
            base["client.id"] = client_id
        consumer = {**base, "group.id": group, "enable.auto.commit": False,
                    "auto.offset.reset": "earliest", "enable.partition.eof": False}  # fmt: skip
        self._consumer = self._k.Consumer(consumer)
        self._producer: Any = None
        self._producer_config = base
        self._committed: dict[int, int] = {}  # partition -> committed offset
        self._upto: dict[int, int] = {}  # partition -> a dead worker may have written below it
        self._consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked)

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in consumer.committed(partitions, timeout=30):
            if tp.offset >= 0:
                self._committed[tp.partition] = tp.offset
            meta = tp.metadata or ""
            if meta.startswith(UPTO):
                self._upto[tp.partition] = int(meta[len(UPTO) :])

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self._committed.pop(tp.partition, None)
            self._upto.pop(tp.partition, None)

    def read(self, count: int, block_ms: int) -> Batch:
        raw = self._consumer.consume(count, block_ms / 1000)
        messages = []
        for m in raw:
            error = m.error()
            if error is not None:
                if error.fatal():
                    raise BackendUnavailableError(f"Kafka at {self._where}: {error}")
                continue
            p = m.partition()
            messages.append(Message(p, (m.offset(), 0), m.value() or b"", m))
        redelivered = any(m.position[0] < self._upto.get(m.partition, -1) for m in messages)
        if messages:
            self._intend(messages)
        return Batch(messages, redelivered=redelivered, contiguous=True)

    def _ends(self, messages: Sequence[Message]) -> dict[int, int]:
        ends: dict[int, int] = {}
        for m in messages:
            ends[m.partition] = max(ends.get(m.partition, -1), m.position[0] + 1)
        return ends

    def _intend(self, messages: Sequence[Message]) -> None:
        """Record in the group, before any write, how far this batch reaches."""
        firsts: dict[int, int] = {}
        for m in messages:
            firsts.setdefault(m.partition, m.position[0])
        tp, ends = self._k.TopicPartition, self._ends(messages)
        tps = [
            tp(self.name, p, self._committed.get(p, first), metadata=f"{UPTO}{ends[p]}")
            for p, first in firsts.items()
        ]
        self._consumer.commit(offsets=tps, asynchronous=False)

    def ack(self, messages: Sequence[Message]) -> None:
        ends = self._ends(messages)
        if not ends:
            return
        tps = [self._k.TopicPartition(self.name, p, end) for p, end in ends.items()]
        self._consumer.commit(offsets=tps, asynchronous=False)
        self._committed.update(ends)

    def release(self, messages: Sequence[Message]) -> None:
        firsts: dict[int, int] = {}
        for m in messages:
            firsts.setdefault(m.partition, m.position[0])
        for p, offset in firsts.items():
            self._consumer.seek(self._k.TopicPartition(self.name, p, offset))

    def dead_letter(self, bad: Sequence[DeadLetter]) -> None:
        if self._producer is None:
            self._producer = self._k.Producer(self._producer_config)
        for dead in bad:
            body = dead_letter_body(dead.message, dead.reason, dead.event)
            self._producer.produce(self.dead_topic, body,
                                   headers=[("pitstop-reason", dead.reason.encode())])  # fmt: skip
        left = self._producer.flush(30)
        if left:
            raise BackendUnavailableError(
                f"Kafka at {self._where} did not take {left} dead letters for "
                f"{self.dead_topic!r} within 30 s"
            )

    def settled(self) -> dict[int, Position]:
        return {p: (offset, 0) for p, offset in self._committed.items()}

    def lag(self) -> int | None:
        total = 0
        for tp in self._consumer.assignment():
            _, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            total += max(high - self._committed.get(tp.partition, 0), 0)
        return total

    def close(self) -> None:
        self._consumer.close()
        if self._producer is not None:
            self._producer.flush(10)


def open_url(url: str, stream: str, options: SourceOptions) -> KafkaSource:
    """``kafka://host:port[,host:port]/TOPIC?client.config=value``."""
    parts = urlsplit(url)
    servers = unquote(parts.netloc.rpartition("@")[2])
    config = {k: v for k, v in options.extra.items() if "." in k}
    return KafkaSource(servers, stream, options.group, config=config,
                       client_id=options.consumer)  # fmt: skip
