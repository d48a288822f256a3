"""The protocol every stream source implements, and the values it hands over.

A source reads :class:`Message` batches from a broker and settles them: ``ack`` once their
events are written online and offline, ``dead_letter`` for the ones that cannot be used (with
the reason), ``release`` to give unhandled ones back for redelivery. What a worker needs to
resume exactly is part of each message: its ``partition`` and its ``position`` there, a pair
of integers that grows with the partition's order (a Redis stream id ``(ms, seq)``, a
JetStream stream sequence, a Kafka offset), or, for brokers without such an order, a stable id
of the message (``Source.ordered`` false). :meth:`Source.settled` says, per partition, the
position below which every message is acknowledged for good: the exactly-once marks of the
online tiles (:mod:`pitstop.engine.streams`) forget what lies below it.

Reclaiming what a dead worker left unacknowledged is the source's business, done inside
``read``: Redis claims idle entries, JetStream and RabbitMQ redeliver on their own, an MQTT
session resends on reconnect, a Kafka consumer restarts from the committed offsets. A batch
that may hold such messages says so (``redelivered``), so that the offline side leaves out what
an earlier part already holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Position = tuple[int, int]
Payload = bytes | Mapping[str, Any]  # a message body, or a Redis entry's fields


@dataclass(frozen=True, slots=True)
class Message:
    """One message: where it is (``partition``, ``position``), what it holds (``payload``)
    and what the source needs to settle it (``token``)."""

    partition: int
    position: Position
    payload: Payload
    token: Any = None


@dataclass(frozen=True)
class Batch:
    """Messages read at once. ``redelivered``: some may have been handled before (after a
    crash), or appear twice in the batch (a delivery and its redelivery; the worker handles
    one position once per batch). ``contiguous``: per partition, the batch holds every
    message between its first and last position, once each, so one range describes it."""

    messages: list[Message]
    redelivered: bool = False
    contiguous: bool = False


@dataclass(frozen=True)
class DeadLetter:
    """A message that cannot be used, why, and the event or text it held."""

    message: Message
    reason: str
    event: Mapping[str, Any] | None = None


class Source(Protocol):
    """Where events come from. ``name`` names the stream in marks and offline part names;
    ``ordered``: positions grow within a partition (else they are stable message ids)."""

    name: str
    ordered: bool

    def read(self, count: int, block_ms: int) -> Batch: ...

    def ack(self, messages: Sequence[Message]) -> None: ...

    def release(self, messages: Sequence[Message]) -> None:
        """Give messages back unacknowledged, to be delivered again soon."""
        ...

    def dead_letter(self, bad: Sequence[DeadLetter]) -> None: ...

    def settled(self) -> dict[int, Position]:
        """Per partition, a position below which every message is acknowledged for good."""
        ...

    def lag(self) -> int | None:
        """Messages not yet acknowledged by the consumer (``None``: the broker cannot say)."""
        ...

    def close(self) -> None: ...


@dataclass
class SourceOptions:
    """What every source accepts besides its URL: the consumer group (a durable consumer,
    a queue, a session) and the name of this consumer in it, the batch size the worker
    reads (brokers that push size their windows by it), and broker settings from the URL's
    query (``extra``)."""

    group: str = "pitstop"
    consumer: str | None = None
    batch: int = 50_000
    extra: dict[str, str] = field(default_factory=dict)


def stable_id(data: bytes) -> Position:
    """A 64-bit content hash as a position, for messages without an id of their own."""
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1, 0


def id_position(text: str | bytes) -> Position:
    """A producer's message id as a position (the hash of its text)."""
    return stable_id(text.encode() if isinstance(text, str) else text)


def dead_letter_body(message: Message, reason: str, event: Mapping[str, Any] | None) -> bytes:
    """The JSON document a dead-lettered message becomes on every broker but Redis."""
    import json

    payload = message.payload
    if isinstance(payload, bytes):
        text: Any = payload.decode("utf-8", "replace")
    else:
        text = dict(payload)
    body = {"partition": message.partition, "position": list(message.position),
            "reason": reason, "payload": text}  # fmt: skip
    if event is not None:
        body["event"] = {k: str(v) for k, v in event.items()}
    return json.dumps(body).encode()


Decoder = Callable[[Payload], list[dict[str, Any]]]
