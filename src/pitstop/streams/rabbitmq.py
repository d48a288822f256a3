"""RabbitMQ: a quorum queue consumed with manual acknowledgements (``pika``).

``amqp://user:password@host:5672/QUEUE?vhost=/&delivery_limit=N`` consumes ``QUEUE`` (declared
as a durable quorum queue if missing). Why a quorum queue rather than a stream queue: the
broker itself keeps what is unacknowledged and hands it out again, exactly those messages,
flagged ``redelivered`` and counted (``x-delivery-count``), to this worker after a restart
or to any other consumer of the queue; poison messages can be bounded with a delivery
limit. A stream queue has offsets, but over AMQP 0-9-1 a consumer must store its own offset
somewhere, and several workers cannot share one.

* **Positions.** A queue has no order a consumer can rely on after redeliveries, so messages
  are known by a stable id (the source is not ``ordered``): the producer's ``message_id``
  property if it sets one, else a hash of the body. Set ``message_id`` (a UUID) when two
  messages may carry the same body: without it they count once.
* **Batches.** The channel's prefetch is the batch size; a batch is acknowledged with one
  ``basic.ack`` (multiple) after its writes; ``release`` sends ``basic.nack`` with requeue.
* **Dead letters** go to the quorum queue ``QUEUE.dead-letter`` (declared if missing; the
  source queue dead-letters into it too when it declares the queue, e.g. past
  ``delivery_limit``), published with confirms: a JSON document with the reason, the id
  and the payload, and the header ``pitstop-reason``.
* **Lag**: the messages ready in the queue (``queue.declare`` passive), plus those delivered
  to this consumer and not yet handled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from pitstop.errors import BackendUnavailableError, ConfigError, require
from pitstop.streams.base import (
    Batch,
    DeadLetter,
    Message,
    Position,
    SourceOptions,
    dead_letter_body,
    id_position,
    stable_id,
)

LINGER_S = 0.005  # a batch keeps filling while messages arrive at least this often


class RabbitMQSource:
    """A RabbitMQ queue read by one consumer with manual acknowledgements."""

    ordered = False

    def __init__(
        self, url: str, queue: str, *, vhost: str = "/", delivery_limit: int | None = None
    ) -> None:
        pika = require("pika", "rabbitmq")
        self._pika = pika
        parts = urlsplit(url)
        self.name = queue
        self.dead_queue = f"{queue}.dead-letter"
        self._where = f"{parts.hostname}:{parts.port or 5672}"
        credentials = pika.PlainCredentials(  # type: ignore[attr-defined]
            unquote(parts.username or "guest"), unquote(parts.password or "guest")
        )
        params = pika.ConnectionParameters(  # type: ignore[attr-defined]
            host=parts.hostname or "127.0.0.1", port=parts.port or 5672, virtual_host=vhost,
            credentials=credentials, ssl_options=_ssl(pika, parts), heartbeat=60,
            blocked_connection_timeout=60,
        )  # fmt: skip
        try:
            self._conn = pika.BlockingConnection(params)  # type: ignore[attr-defined]
        except pika.exceptions.AMQPError as exc:  # type: ignore[attr-defined]
            raise BackendUnavailableError(
                f"RabbitMQ at {self._where} is not available ({exc!r}); check --source"
            ) from None
        self._channel = self._conn.channel()
        self._side = self._conn.channel()  # declarations, dead letters, lag
        self._side.confirm_delivery()
        self._declare(delivery_limit)
        self._buffer: list[Message] = []
        self._prefetch = 0
        self._tag: str | None = None

    def _declare(self, delivery_limit: int | None) -> None:
        quorum = {"x-queue-type": "quorum"}
        self._ensure(self.dead_queue, quorum)
        args: dict[str, Any] = {**quorum, "x-dead-letter-exchange": "",
                                "x-dead-letter-routing-key": self.dead_queue}  # fmt: skip
        if delivery_limit is not None:
            args["x-delivery-limit"] = delivery_limit
        self._ensure(self.name, args)

    def _ensure(self, queue: str, args: dict[str, Any]) -> None:
        """Declare ``queue`` unless it exists (with whatever arguments it has)."""
        closed = self._pika.exceptions.ChannelClosedByBroker  # type: ignore[attr-defined]
        try:
            self._side.queue_declare(queue, passive=True)
        except closed:
            self._side = self._conn.channel()
            self._side.confirm_delivery()
            self._side.queue_declare(queue, durable=True, arguments=args)

    def _on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        mid = props.message_id
        position = id_position(mid) if mid else stable_id(body)
        self._buffer.append(Message(0, position, body, (method.delivery_tag, method.redelivered)))

    def read(self, count: int, block_ms: int) -> Batch:
        errors = self._pika.exceptions.AMQPError  # type: ignore[attr-defined]
        try:
            if count != self._prefetch:
                self._channel.basic_qos(prefetch_count=min(count, 65_535))
                self._prefetch = count
            if self._tag is None:
                self._tag = self._channel.basic_consume(self.name, self._on_message)
            self._fill(count, block_ms)
        except errors as exc:
            raise BackendUnavailableError(
                f"RabbitMQ at {self._where} went away ({exc!r})"
            ) from None
        messages, self._buffer = self._buffer[:count], self._buffer[count:]
        redelivered = any(m.token[1] for m in messages)
        return Batch(messages, redelivered=redelivered)

    def _fill(self, count: int, block_ms: int) -> None:
        deadline = time.monotonic() + block_ms / 1000
        process = self._conn.process_data_events
        while len(self._buffer) < count:
            before = len(self._buffer)
            left = deadline - time.monotonic()
            if before:
                process(time_limit=LINGER_S)
                if len(self._buffer) == before:
                    return
            elif left <= 0:
                return
            else:
                process(time_limit=left)

    def ack(self, messages: Sequence[Message]) -> None:
        if messages:
            last = max(m.token[0] for m in messages)
            self._channel.basic_ack(delivery_tag=last, multiple=True)

    def release(self, messages: Sequence[Message]) -> None:
        if messages and self._channel.is_open:
            last = max(m.token[0] for m in messages)
            self._channel.basic_nack(delivery_tag=last, multiple=True, requeue=True)

    def dead_letter(self, bad: Sequence[DeadLetter]) -> None:
        props = self._pika.BasicProperties  # type: ignore[attr-defined]
        for dead in bad:
            body = dead_letter_body(dead.message, dead.reason, dead.event)
            headers = {"pitstop-reason": dead.reason[:1000]}
            self._side.basic_publish("", self.dead_queue, body,
                                     props(delivery_mode=2, headers=headers,
                                           content_type="application/json"))  # fmt: skip

    def settled(self) -> dict[int, Position]:
        return {}

    def lag(self) -> int | None:
        """Ready messages, plus those delivered to this consumer and not yet handled."""
        ready = int(self._side.queue_declare(self.name, passive=True).method.message_count)
        self._conn.process_data_events(time_limit=0)  # deliveries sent before the answer
        return ready + len(self._buffer)

    def close(self) -> None:
        if self._conn.is_open:
            self._conn.close()


def _ssl(pika: Any, parts: Any) -> Any:
    if parts.scheme != "amqps":
        return None
    import ssl

    return pika.SSLOptions(ssl.create_default_context(), parts.hostname)


def open_url(url: str, stream: str, options: SourceOptions) -> RabbitMQSource:
    """``amqp://user:password@host:port/QUEUE?vhost=V&delivery_limit=N``."""
    limit = options.extra.get("delivery_limit")
    if limit is not None and not limit.isdigit():
        raise ConfigError(f"delivery_limit must be a count, got {limit!r} in --source")
    return RabbitMQSource(url, stream, vhost=options.extra.get("vhost", "/"),
                          delivery_limit=int(limit) if limit else None)  # fmt: skip
