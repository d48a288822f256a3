"""Stream ingestion: a Redis Streams consumer that keeps a push source's views fresh.

``pitstop ingest --push-source NAME --redis-stream KEY [--group G] [--consumer C]`` reads the
stream with a consumer group -- at-least-once: an entry is acknowledged (``XACK``) only after
its rows are written online and offline -- and batches the writes. A killed worker loses
nothing and counts nothing twice:

* **Stable consumer names.** The default name comes from the host and the push source, not
  the process, so a restarted worker finds its own unacknowledged entries and handles them
  first (``XREADGROUP`` from id 0).
* **Reclaim.** Entries another consumer received and left unacknowledged for ``claim_idle_ms``
  (a dead worker's) are taken over with ``XAUTOCLAIM``, at start-up and then every half of
  that time.
* **Online, exactly once.** Windowed views keep, per entity, the stream ids they applied
  (:class:`~pitstop.engine.streams.Delivery`), so a redelivered event is skipped whatever the
  order of delivery; plain views are event-time ordered, so rewriting a row changes nothing.
* **Offline, exactly once.** Each batch is appended as one Parquet part named after the stream
  and its first and last ids, recording in its metadata (``pitstop.ids``) the ids it holds; a
  batch of redelivered entries leaves out those an earlier part already holds.

A worker that takes longer than ``claim_idle_ms`` over a batch may see it taken over while it
still writes; keep that time well above a batch's duration.

**Entry format.** Either one field ``json`` holding a JSON object of the event, or one field
per column (strings; cast to the declared types). Timestamps are ISO 8601 strings or numbers
of seconds since the epoch (UTC).

**Bad events** (missing fields, wrong types, unparseable timestamps) are copied to the stream
``<KEY>:dead-letter`` with the fields ``id``, ``reason`` and ``event`` and acknowledged; the
worker keeps going. SIGINT/SIGTERM stop it after the batch in flight.

**Other brokers.** :class:`StreamIngestor` reads through a small ``Source`` (``read``/``ack``/
``settled``/``dead_letter``); a Kafka source (confluent-kafka) would implement the same.
"""

from __future__ import annotations

import gc
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pitstop.definitions.sources import PushSource
from pitstop.engine.historical import source_ref
from pitstop.engine.push import conformed, push_views, write_views
from pitstop.engine.stream_parts import StreamParts
from pitstop.engine.streams import Delivery
from pitstop.engine.streams import stream_id as _stream_id
from pitstop.errors import BackendUnavailableError, ConfigError, PitstopError, require

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore

Entry = tuple[str, dict[str, Any]]  # (id, fields)
CLAIM_IDLE_MS = 30_000


@dataclass(frozen=True)
class Batch:
    """Entries read at once; ``redelivered``: delivered before (after a crash), so they need
    not be every entry between the first and the last id."""

    entries: list[Entry]
    redelivered: bool = False


class Source(Protocol):
    """Where events come from: read a batch, acknowledge it, park bad events."""

    name: str

    def read(self, count: int, block_ms: int) -> Batch: ...

    def ack(self, ids: Sequence[str]) -> None: ...

    def settled(self) -> str | None:
        """An id such that every entry below it is acknowledged (``None``: unknown)."""
        ...

    def dead_letter(self, bad: Sequence[tuple[str, str, dict[str, Any]]]) -> None: ...


def default_consumer(push_source: str) -> str:
    """The consumer name of a worker: the same after a restart on the same host."""
    return f"{socket.gethostname()}:{push_source}"


class RedisStreamSource:
    """A Redis stream read through a consumer group (created if missing)."""

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
                    return Batch(entries, redelivered=True)
                self._pending = False
            if time.monotonic() >= self._claim_at:
                entries = self._claim(count)
                if entries:
                    return Batch(entries, redelivered=True)
            reply = self._client.xreadgroup(
                self.group, self.consumer, {self.name: ">"}, count=count, block=block_ms
            )
        except self._errors as exc:
            raise BackendUnavailableError(f"Redis at {self._where} went away ({exc})") from None
        return Batch([(i, fields) for _, items in reply or [] for i, fields in items])

    def _own_pending(self, count: int) -> list[Entry]:
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

    def _claim(self, count: int) -> list[Entry]:
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

    def settled(self) -> str | None:
        summary = self._client.xpending(self.name, self.group)
        return str(summary["min"]) if summary["pending"] else None

    def ack(self, ids: Sequence[str]) -> None:
        if ids:
            self._client.xack(self.name, self.group, *ids)

    def dead_letter(self, bad: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for entry_id, reason, fields in bad:
            pipe.xadd(f"{self.name}:dead-letter",
                      {"id": entry_id, "reason": reason, "event": json.dumps(fields)})  # fmt: skip
        pipe.execute()

    def close(self) -> None:
        self._client.close()


@dataclass
class IngestStats:
    events: int = 0
    dead: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _parse(fields: dict[str, Any], ts_fields: set[str]) -> dict[str, Any]:
    event = json.loads(fields["json"]) if "json" in fields else dict(fields)
    if not isinstance(event, dict):
        raise ValueError("the json field must hold an object")
    for name, value in event.items():  # one type per column in a batch: text, cast later
        if name in ts_fields:
            event[name] = _timestamp(value, name)
        elif isinstance(value, bool):
            event[name] = "true" if value else "false"
        elif value is not None and not isinstance(value, str):
            event[name] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return event


def _timestamp(value: Any, name: str) -> datetime:
    try:
        if isinstance(value, int | float) or (
            isinstance(value, str) and value.replace(".", "", 1).isdigit()
        ):
            return datetime.fromtimestamp(float(value), UTC)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"field {name!r}: {value!r} is not a timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _columns(events: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, list[Any]]:
    """Events as columns (a missing field is null): cheaper to convert than row dicts."""
    names = dict.fromkeys(name for _, event in events for name in event)
    return {name: [event.get(name) for _, event in events] for name in names}


class StreamIngestor:
    """Consume a stream into the views fed by one push source."""

    def __init__(
        self, store: FeatureStore, push_source: str, source: Source, *, batch: int = 50_000,
        block_ms: int = 500, offline: bool = True,
    ) -> None:  # fmt: skip
        self.store = store
        self.push_source = push_source
        self.source = source
        self.batch = batch
        self.block_ms = block_ms
        self.offline = offline
        self.stop = threading.Event()
        self.stats = IngestStats()

    def step(self) -> int:
        """Read, write and acknowledge one batch; returns the entries handled."""
        batch = self.source.read(self.batch, self.block_ms)
        if not batch.entries:
            return 0
        collecting = gc.isenabled()
        gc.disable()  # a batch allocates many short-lived objects; collect once afterwards
        try:
            return self._handle(batch)
        finally:
            if collecting:
                gc.enable()

    def _handle(self, batch: Batch) -> int:
        entries = batch.entries
        snap = self.store.registry.snapshot()
        views = push_views(snap, self.push_source)
        ts_fields = {v.timestamp_field for v in views}
        good: list[tuple[str, dict[str, Any]]] = []
        bad: list[tuple[str, str, dict[str, Any]]] = []
        for entry_id, fields in entries:
            try:
                good.append((entry_id, _parse(fields, ts_fields)))
            except (ValueError, KeyError) as exc:
                bad.append((entry_id, str(exc), fields))
        good, tables = self._check(snap, views, good, bad)
        if good:
            settled = self.source.settled()
            span = None if batch.redelivered else (entries[0][0], entries[-1][0])
            delivery = Delivery(
                self.source.name, [_stream_id(i) for i, _ in good],
                (_stream_id(span[0]), _stream_id(span[1])) if span else None,
                _stream_id(settled) if settled else None,
            )  # fmt: skip
            write_views(self.store.online, views, tables, delivery=delivery)
            if self.offline:
                source = snap.data_sources[self.push_source]
                assert isinstance(source, PushSource)
                ref = source_ref(source.batch_source, self.store.repo_path)
                parts = StreamParts(self.store.offline, ref, self.source.name)
                parts.append(tables[0], [i for i, _ in good], span)
        if bad:
            self.source.dead_letter(bad)
        self.source.ack([i for i, _ in good] + [b[0] for b in bad])
        self.stats.events += len(good)
        self.stats.dead += len(bad)
        self.stats.batches += 1
        return len(entries)

    def _check(
        self, snap: Any, views: Any, good: list[tuple[str, dict[str, Any]]],
        bad: list[tuple[str, str, dict[str, Any]]],
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[Any]]:  # fmt: skip
        """Cast the batch for every view; a failing batch is split to find the bad events."""
        what = f"stream {self.source.name!r}"
        try:
            return good, conformed(snap, views, _columns(good), what) if good else []
        except (PitstopError, ValueError, TypeError):
            kept = []
            for entry_id, event in good:
                try:
                    conformed(snap, views, [event], what)
                    kept.append((entry_id, event))
                except (PitstopError, ValueError, TypeError) as exc:
                    bad.append((entry_id, str(exc), {k: str(v) for k, v in event.items()}))
            return kept, conformed(snap, views, _columns(kept), what) if kept else []

    def run(self, report: Callable[[IngestStats], None] | None = None) -> IngestStats:
        """Consume until :attr:`stop` is set (or SIGINT/SIGTERM in the main thread)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stop.set())
        began = last = time.perf_counter()
        while not self.stop.is_set():
            self.step()
            now = time.perf_counter()
            self.stats.seconds = now - began
            if report and now - last >= 1.0:
                report(self.stats)
                last = now
        return self.stats
