"""Stream ingestion: a Redis Streams consumer that keeps a push source's views fresh.

``pitstop ingest --push-source NAME --redis-stream KEY [--group G]`` reads the stream with a
consumer group — at-least-once: an entry is acknowledged (``XACK``) only after its rows are
written online — and batches the writes. On start it first re-reads the entries it had received
but not acknowledged (after a crash). Redelivery is harmless: windowed views remember, per
entity, the last stream id they applied and skip older ones; plain views are event-time
ordered, so rewriting a row changes nothing. Offline copies are appended as one Parquet part
file per batch (a crash between that append and the acknowledgement can duplicate a batch
offline).

**Entry format.** Either one field ``json`` holding a JSON object of the event, or one field
per column (strings; cast to the declared types). Timestamps are ISO 8601 strings or numbers
of seconds since the epoch (UTC).

**Bad events** (missing fields, wrong types, unparseable timestamps) are copied to the stream
``<KEY>:dead-letter`` with the fields ``id``, ``reason`` and ``event`` and acknowledged; the
worker keeps going. SIGINT/SIGTERM stop it after the batch in flight.

**Other brokers.** :class:`StreamIngestor` reads through a small ``Source`` (``read``/``ack``/
``dead_letter``); a Kafka source (confluent-kafka) would implement the same three methods.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pitstop.definitions.sources import PushSource
from pitstop.engine.push import append_offline, conformed, push_views, write_views
from pitstop.errors import BackendUnavailableError, PitstopError, require

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore

Entry = tuple[str, dict[str, Any]]  # (id, fields)


class Source(Protocol):
    """Where events come from: read a batch, acknowledge it, park bad events."""

    name: str

    def read(self, count: int, block_ms: int) -> list[Entry]: ...

    def ack(self, ids: Sequence[str]) -> None: ...

    def dead_letter(self, bad: Sequence[tuple[str, str, dict[str, Any]]]) -> None: ...


class RedisStreamSource:
    """A Redis stream read through a consumer group (created if missing)."""

    def __init__(self, url: str, stream: str, group: str, consumer: str | None = None) -> None:
        redis = require("redis", "redis")
        self.name = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._where = url.rpartition("@")[2]
        self._client = redis.Redis.from_url(url, decode_responses=True)  # type: ignore[attr-defined]
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)  # type: ignore[attr-defined]
        self._pending = True  # first deliver what this consumer received but never acked
        try:
            self._client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:  # type: ignore[attr-defined]
            if "BUSYGROUP" not in str(exc):
                raise
        except self._errors as exc:
            raise BackendUnavailableError(
                f"Redis at {self._where} is not available ({exc}); check --redis-url"
            ) from None

    def read(self, count: int, block_ms: int) -> list[Entry]:
        start = "0" if self._pending else ">"
        try:
            reply = self._client.xreadgroup(
                self.group, self.consumer, {self.name: start}, count=count,
                block=None if self._pending else block_ms,
            )  # fmt: skip
        except self._errors as exc:
            raise BackendUnavailableError(f"Redis at {self._where} went away ({exc})") from None
        entries = [(i, fields) for _, items in reply or [] for i, fields in items if fields]
        if self._pending and not entries:  # nothing left from before: read new entries
            self._pending = False
            return self.read(count, block_ms)
        return entries

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


def _stream_id(entry_id: str) -> list[int]:
    ms, _, seq = entry_id.partition("-")
    return [int(ms), int(seq or 0)]


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
        entries = self.source.read(self.batch, self.block_ms)
        if not entries:
            return 0
        collecting = gc.isenabled()
        gc.disable()  # a batch allocates many short-lived objects; collect once afterwards
        try:
            return self._handle(entries)
        finally:
            if collecting:
                gc.enable()

    def _handle(self, entries: list[Entry]) -> int:
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
            ids = [_stream_id(i) for i, _ in good]
            write_views(self.store.online, views, tables, stream=self.source.name, ids=ids)
            if self.offline:
                source = snap.data_sources[self.push_source]
                assert isinstance(source, PushSource)
                append_offline(source.batch_source, self.store.repo_path, tables[0])
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
