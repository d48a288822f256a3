"""Redis Streams: a consumer group, entries acknowledged with ``XACK``.

* **Stable consumer names.** The default name comes from the host and the push source, not
  the process, so a restarted worker finds its own unacknowledged entries and handles them
  first (``XREADGROUP`` from id 0).
* **Reclaim.** Entries another consumer received and left unacknowledged for ``claim_idle_ms``
  (a dead worker's) are taken over with ``XAUTOCLAIM``, at start-up and then every half of
  that time. A worker that takes longer than ``claim_idle_ms`` over a batch may see it taken
  over while it still writes; keep that time well above a batch's duration.
* **Positions** are the entry ids ``(ms, seq)``; a fresh read (``>``) holds every entry between
  its first and last id. ``settled``: the smallest pending id (``XPENDING``).
* **Dead letters** go to the stream ``<KEY>:dead-letter`` with the fields ``id``, ``reason``
  and ``event``.
* **Lag**: the group's ``lag`` (entries not yet delivered) plus its pending entries.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from typing import Any

from pitstop.errors import BackendUnavailableError, ConfigError, require
from pitstop.streams.base import Batch, DeadLetter, Message, Position, SourceOptions

CLAIM_IDLE_MS = 30_000


def default_consumer(push_source: str) -> str:
    """The consumer name of a worker: the same after a restart on the same host."""
    return f"{socket.gethostname()}:{push_source}"


def entry_id(text: str) -> Position:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``, which compare in stream order."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamSource:
    """A Redis stream read through a consumer group (created if missing)."""

    ordered = True

    def __init__(
        self, url: str, stream: str, group: str, consumer: str | None = None, *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:  # fmt: skip
        redis = require("redis", "redis")
        if claim_idle_ms <= 0:
            raise ConfigError(f"claim_idle_ms must be positive, got {claim_idle_ms}")
        self.name = stream
        self.group = group
        self.consumer = consumer or socket.gethostname()
        self.claim_idle_ms = claim_idle_ms
        self._where = url.rpartition("@")[2]
        self._client = redis.Redis.from_url(url, decode_responses=True)  # type: ignore[attr-defined]
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)  # type: ignore[attr-defined]
        self._pending = True  # first deliver what this consumer received but never acked
        self._claim_at = 0.0  # then take over what dead consumers left (and again later)
        self._cursor = "0-0"
        try:
            self._client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:  # type: ignore[attr-defined]
            if "BUSYGROUP" not in str(exc):
                raise
        except self._errors as exc:
            raise BackendUnavailableError(
                f"Redis at {self._where} is not available ({exc}); check --redis-url"
            ) from None

    def read(self, count: int, block_ms: int) -> Batch:
        try:
            if self._pending:
                entries = self._own_pending(count)
                if entries:
                    return Batch(_messages(entries), redelivered=True)
                self._pending = False
            if time.monotonic() >= self._claim_at:
                entries = self._claim(count)
                if entries:
                    return Batch(_messages(entries), redelivered=True)
            reply = self._client.xreadgroup(
                self.group, self.consumer, {self.name: ">"}, count=count, block=block_ms
            )
        except self._errors as exc:
            raise BackendUnavailableError(f"Redis at {self._where} went away ({exc})") from None
        entries = [(i, fields) for _, items in reply or [] for i, fields in items]
        return Batch(_messages(entries), contiguous=True)

    def _own_pending(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        """Entries this consumer received and never acknowledged (in id order)."""
        reply = self._client.xreadgroup(self.group, self.consumer, {self.name: "0"}, count=count)
        items = [item for _, part in reply or [] for item in part]
        gone = [i for i, fields in items if not fields]  # deleted from the stream meanwhile
        if gone:
            self._client.xack(self.name, self.group, *gone)
        entries = [(i, fields) for i, fields in items if fields]
        if gone and not entries and len(items) == count:
            return self._own_pending(count)
        return entries

    def _claim(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        """Take over entries idle for ``claim_idle_ms`` in other consumers' hands."""
        reply = self._client.xautoclaim(
            self.name, self.group, self.consumer, self.claim_idle_ms, self._cursor, count=count
        )
        self._cursor = reply[0]
        if self._cursor == "0-0":  # went through every pending entry: rest a while
            self._claim_at = time.monotonic() + self.claim_idle_ms / 2000
        gone = [i for i, fields in reply[1] if not fields]  # deleted (Redis before 7.0)
        if gone:
            self._client.xack(self.name, self.group, *gone)
        return [(i, fields) for i, fields in reply[1] if fields]

    def settled(self) -> dict[int, Position]:
        summary = self._client.xpending(self.name, self.group)
        return {0: entry_id(str(summary["min"]))} if summary["pending"] else {}

    def ack(self, messages: Sequence[Message]) -> None:
        if messages:
            self._client.xack(self.name, self.group, *(m.token for m in messages))

    def release(self, messages: Sequence[Message]) -> None:
        """Nothing to do: this consumer's pending entries come back first when it restarts."""
        self._pending = True

    def dead_letter(self, bad: Sequence[DeadLetter]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for dead in bad:
            event = dead.event if dead.event is not None else dead.message.payload
            assert not isinstance(event, bytes)  # entries are fields
            fields = {k: str(v) for k, v in event.items()}
            pipe.xadd(f"{self.name}:dead-letter",
                      {"id": dead.message.token, "reason": dead.reason,
                       "event": json.dumps(fields)})  # fmt: skip
        pipe.execute()

    def lag(self) -> int | None:
        for group in self._client.xinfo_groups(self.name):
            if group["name"] == self.group:
                waiting = group.get("lag")
                return None if waiting is None else int(waiting) + int(group["pending"])
        return None

    def close(self) -> None:
        self._client.close()


def _messages(entries: list[tuple[str, dict[str, Any]]]) -> list[Message]:
    return [Message(0, entry_id(i), fields, i) for i, fields in entries]


def open_url(url: str, stream: str, options: SourceOptions) -> RedisStreamSource:
    """``redis://[:password@]host:port/db?stream=KEY&claim_idle_ms=MS``."""
    from urllib.parse import urlsplit, urlunsplit

    idle = options.extra.get("claim_idle_ms", str(CLAIM_IDLE_MS))
    if not idle.isdigit():
        raise ConfigError(f"claim_idle_ms must be a number of milliseconds, got {idle!r}")
    plain = urlunsplit(urlsplit(url)._replace(query="", fragment=""))
    return RedisStreamSource(plain, stream, options.group, options.consumer,
                             claim_idle_ms=int(idle))  # fmt: skip
