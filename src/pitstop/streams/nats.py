"""NATS JetStream: a durable pull consumer with explicit acknowledgements (``nats-py``).

``nats://host:4222/STREAM?subject=S&ack_wait=30&max_deliver=N`` reads the JetStream stream
``STREAM`` (which must exist) through the durable consumer named by ``--group`` (created if
missing, with ``subject`` as its filter, default: every subject of the stream).

* **Positions** are stream sequences: each message's ``(sequence, 0)`` in one partition.
  A batch of first deliveries with consecutive sequences is contiguous; anything else (gaps
  that other workers of the same consumer received, redeliveries) is marked id by id.
* **Settled**: the consumer's acknowledgement floor (every sequence at or below it is
  acknowledged), read once per batch.
* **Redelivery** is the server's: a message not acknowledged within ``ack_wait`` seconds
  (default 30; keep it well above a batch's duration) is delivered again, to this worker
  after a restart or to another one. ``release`` sends a negative acknowledgement
  (``NAK``) so that it comes back at once, and so does ``close`` for messages that arrived
  for a fetch but were not read (a worker stopped by SIGTERM leaves nothing waiting).
* **Dead letters** are published, with JetStream acknowledgements, to the subject
  ``pitstop.dead-letter.STREAM``, kept by the stream ``STREAM-dead-letter`` (created if
  missing): a JSON document with the reason, the position and the payload, and the header
  ``Pitstop-Reason``.
* **Lag**: the consumer's pending plus unacknowledged messages.

``nats-py`` is asynchronous: the source runs its own event loop, one call at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pitstop.errors import BackendUnavailableError, ConfigError, require
from pitstop.streams.base import (
    Batch,
    DeadLetter,
    Message,
    Position,
    SourceOptions,
    dead_letter_body,
)

ACK_WAIT_S = 30.0
LINGER_S = 0.05  # a batch keeps filling while messages arrive at least this often...
FILL_S = 5.0  # ...for at most this long
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def durable_name(group: str) -> str:
    """A consumer group as a JetStream durable name (no ``.``, ``*``, ``>`` or spaces)."""
    return _NAME.sub("_", group)


class NatsSource:
    """A JetStream stream read by a durable pull consumer."""

    ordered = True

    def __init__(
        self, url: str, stream: str, group: str = "pitstop", *, subject: str | None = None,
        ack_wait: float = ACK_WAIT_S, max_deliver: int | None = None,
    ) -> None:  # fmt: skip
        nats = require("nats", "nats")
        self._api = require("nats.js.api", "nats")
        self._errors = require("nats.errors", "nats")
        self._js_errors = require("nats.js.errors", "nats")
        self.name = stream
        self.durable = durable_name(group)
        self._where = url.rpartition("@")[2]
        self._loop = asyncio.new_event_loop()
        self._dead_subject = f"pitstop.dead-letter.{stream}"
        try:
            self._nc = self._run(
                nats.connect(url, connect_timeout=3, max_reconnect_attempts=3, allow_reconnect=True)  # type: ignore[attr-defined]
            )
        except (TimeoutError, OSError, self._errors.NoServersError) as exc:  # type: ignore[attr-defined]
            self._loop.close()
            raise BackendUnavailableError(
                f"NATS at {self._where} is not available ({exc or type(exc).__name__}); "
                "check --source"
            ) from None
        self._js = self._nc.jetstream()
        self._dead_ready = False
        try:
            self._run(self._prepare(subject, ack_wait, max_deliver))
        except BaseException:
            self.close()
            raise

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    async def _prepare(self, subject: str | None, ack_wait: float, max_deliver: int | None) -> None:
        api, errors = self._api, self._js_errors
        try:
            await self._js.stream_info(self.name)
        except errors.NotFoundError:  # type: ignore[attr-defined]
            raise ConfigError(
                f"JetStream stream {self.name!r} does not exist on {self._where}; create it "
                f"(nats stream add {self.name} --subjects ...) or fix the URL's path"
            ) from None
        try:
            await self._js.consumer_info(self.name, self.durable)
        except errors.NotFoundError:  # type: ignore[attr-defined]
            config = api.ConsumerConfig(  # type: ignore[attr-defined]
                durable_name=self.durable, ack_policy=api.AckPolicy.EXPLICIT,  # type: ignore[attr-defined]
                deliver_policy=api.DeliverPolicy.ALL, ack_wait=ack_wait,  # type: ignore[attr-defined]
                max_deliver=max_deliver, filter_subject=subject, max_ack_pending=-1,
                max_waiting=512,
            )  # fmt: skip
            await self._js.add_consumer(self.name, config)
        self._sub = await self._js.pull_subscribe_bind(durable=self.durable, stream=self.name)

    def read(self, count: int, block_ms: int) -> Batch:
        try:
            msgs = self._run(self._fetch(count, block_ms))
        except (OSError, self._errors.ConnectionClosedError) as exc:  # type: ignore[attr-defined]
            raise BackendUnavailableError(f"NATS at {self._where} went away ({exc})") from None
        messages = []
        fresh = True
        for msg in msgs:
            delivered, sequence = _delivery(msg.reply)
            fresh = fresh and delivered == 1
            messages.append(Message(0, (sequence, 0), msg.data, msg))
        seqs = [m.position[0] for m in messages]
        contiguous = fresh and all(b == a + 1 for a, b in itertools.pairwise(seqs))
        return Batch(messages, redelivered=not fresh, contiguous=contiguous)

    async def _fetch(self, count: int, block_ms: int) -> list[Any]:
        """Up to ``count`` messages: wait ``block_ms`` for the first ones, then go on while
        more keep coming (a fetch ends at its timeout, often before a large batch is in)."""
        timeout = max(block_ms, 1) / 1000
        got: list[Any] = []
        deadline = time.monotonic() + FILL_S
        while len(got) < count and time.monotonic() < deadline:
            try:
                more = await self._sub.fetch(count - len(got), timeout=timeout)
            except (TimeoutError, self._errors.TimeoutError):  # type: ignore[attr-defined]
                break
            got += more
            timeout = LINGER_S
        return got

    def ack(self, messages: Sequence[Message]) -> None:
        async def ack() -> None:
            send = getattr(self._nc, "_send_command", None)
            if send is not None:  # one buffer of PUB commands rather than a call per message
                await send(b"".join(b"PUB %s 4\r\n+ACK\r\n" % m.token.reply.encode()
                                    for m in messages))  # fmt: skip
            else:
                for m in messages:
                    await self._nc.publish(m.token.reply, b"+ACK")
            await self._nc.flush()

        if messages:
            self._run(ack())

    def release(self, messages: Sequence[Message]) -> None:
        async def nak() -> None:
            for m in messages:
                await self._nc.publish(m.token.reply, b"-NAK")
            await self._nc.flush()

        if messages and self._nc.is_connected:
            self._run(nak())

    def dead_letter(self, bad: Sequence[DeadLetter]) -> None:
        async def publish() -> None:
            if not self._dead_ready:
                await self._dead_stream()
            for dead in bad:
                body = dead_letter_body(dead.message, dead.reason, dead.event)
                headers = {"Pitstop-Reason": dead.reason.replace("\n", " ")[:1000]}
                await self._js.publish(self._dead_subject, body, headers=headers)

        self._run(publish())

    async def _dead_stream(self) -> None:
        name = f"{self.name}-dead-letter"
        try:
            await self._js.stream_info(name)
        except self._js_errors.NotFoundError:  # type: ignore[attr-defined]
            await self._js.add_stream(name=name, subjects=[self._dead_subject])
        self._dead_ready = True

    def settled(self) -> dict[int, Position]:
        info = self._run(self._js.consumer_info(self.name, self.durable))
        return {0: (info.ack_floor.stream_seq + 1, 0)}

    def lag(self) -> int | None:
        info = self._run(self._js.consumer_info(self.name, self.durable))
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    def close(self) -> None:
        """Give back (``NAK``) what arrived for a fetch and was not read, then disconnect."""

        async def give_back() -> None:
            queue = getattr(getattr(self._sub, "_sub", None), "_pending_queue", None)
            while queue is not None and not queue.empty():
                msg = queue.get_nowait()
                if msg.reply and msg.reply.startswith("$JS.ACK."):
                    await self._nc.publish(msg.reply, b"-NAK")
            await self._nc.flush()

        try:
            if self._nc.is_connected and hasattr(self, "_sub"):
                self._run(give_back())
            self._run(self._nc.close())
        finally:
            self._loop.close()


def _delivery(reply: str) -> tuple[int, int]:
    """(times delivered, stream sequence) from a JetStream reply subject:
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>``,
    or with ``<domain>.<account hash>.`` after ``$JS.ACK.`` (and a token at the end)."""
    tokens = reply.split(".")
    at = 4 if len(tokens) == 9 else 6
    return int(tokens[at]), int(tokens[at + 1])


def open_url(url: str, stream: str, options: SourceOptions) -> NatsSource:
    """``nats://[user:password@]host:port/STREAM?subject=S&ack_wait=SECONDS&max_deliver=N``."""
    extra = options.extra
    try:
        ack_wait = float(extra.get("ack_wait", ACK_WAIT_S))
        max_deliver = int(extra["max_deliver"]) if "max_deliver" in extra else None
    except ValueError as exc:
        raise ConfigError(f"--source {stream!r}: {exc}; ack_wait is seconds, max_deliver a "
                          "count") from None  # fmt: skip
    plain = urlunsplit(urlsplit(url)._replace(path="", query="", fragment=""))
    return NatsSource(plain, stream, options.group, subject=extra.get("subject"),
                      ack_wait=ack_wait, max_deliver=max_deliver)  # fmt: skip
