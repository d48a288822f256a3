"""Stream ingestion: a worker that keeps a push source's views fresh from a broker.

:class:`StreamIngestor` reads batches from any :class:`~pitstop.streams.base.Source` (Redis
Streams, NATS JetStream, RabbitMQ, MQTT, Kafka: the drivers live in :mod:`pitstop.streams`),
decodes them, writes the events online and offline, and only then acknowledges them
(at-least-once). A killed worker loses nothing and counts nothing twice:

* **Online, exactly once.** Windowed views keep, per entity, the positions they applied
  (:class:`~pitstop.engine.streams.Delivery`, one mark per source partition), so a
  redelivered event is skipped whatever the order of delivery; plain views are event-time
  ordered, so rewriting a row changes nothing.
* **Offline, exactly once.** Each batch is appended, per partition, as one labelled append of
  the offline engine named after the stream and its first and last positions, recording the
  positions it holds; a batch that may hold redelivered messages leaves out those an earlier
  append already holds.
* **Within a batch, once.** A batch may hold one message twice (a delivery and its
  redelivery: a JetStream fetch hands over messages that reached the client for an earlier
  pull request, which the server may have redelivered since); the marks only know earlier
  batches, so each (partition, position) is handled once per batch, and every copy is
  acknowledged.

**Events.** A decoder (:mod:`pitstop.streams.decode`) turns a message into events: JSON
objects; timestamps are ISO 8601 strings or seconds since the epoch (UTC).

**Bad events** (undecodable messages, missing fields, wrong types, unparseable timestamps)
go to the source's dead letters with the reason and are acknowledged; the worker keeps going.
SIGINT/SIGTERM stop it after the batch in flight. A failed write gives the batch back to the
source (``release``) and stops the worker with the error.
"""

from __future__ import annotations

import gc
import json
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitstop.definitions.sources import PushSource
from pitstop.engine.historical import source_ref
from pitstop.engine.push import conformed, push_views, write_views
from pitstop.engine.stream_parts import StreamParts
from pitstop.engine.streams import Delivery
from pitstop.errors import PitstopError
from pitstop.streams.base import Batch, DeadLetter, Decoder, Message, Position, Source
from pitstop.streams.decode import json_object

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.feature_store import FeatureStore

Event = tuple[int, dict[str, Any]]  # (index of its message in the batch, event)


@dataclass
class IngestStats:
    events: int = 0
    dead: int = 0
    batches: int = 0
    seconds: float = 0.0
    lag: int | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        lag = "unknown" if self.lag is None else f"{self.lag:,}"
        return (f"{self.events:,} events, {self.dead:,} dead-lettered, {self.rate:,.0f} events/s, "
                f"lag {lag}")  # fmt: skip


_PLAIN = (str, int, float, type(None))


def _parse(event: dict[str, Any], ts_fields: set[str]) -> dict[str, Any]:
    """Timestamps parsed; booleans, lists and objects as text (cast later to the declared
    types); text, numbers and nulls as they are (:func:`_columns` unifies a column)."""
    for name in ts_fields:
        if name in event:
            event[name] = _timestamp(event[name], name)
    for name, value in event.items():
        if type(value) not in _PLAIN and name not in ts_fields:
            if isinstance(value, bool):
                event[name] = "true" if value else "false"
            elif isinstance(value, list | dict):
                event[name] = json.dumps(value)
            else:
                event[name] = str(value)
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


def _columns(events: Sequence[Event]) -> dict[str, list[Any]]:
    """Events as columns (a missing field is null): cheaper to convert than row dicts."""
    names = dict.fromkeys(name for _, event in events for name in event)
    columns = {name: [event.get(name) for _, event in events] for name in names}
    for name, values in columns.items():  # text and numbers mixed: all text, cast later
        kinds = set(map(type, values))
        if str in kinds and kinds & {int, float}:
            columns[name] = [v if v is None or type(v) is str else str(v) for v in values]
    return columns


def distinct(messages: list[Message]) -> list[Message]:
    """``messages`` without repeats: the first of the messages at one (partition, position)."""
    first: dict[tuple[int, Position], Message] = {}
    for m in messages:
        first.setdefault((m.partition, m.position), m)
    return messages if len(first) == len(messages) else list(first.values())


def position_text(position: Position) -> str:
    """A position as offline part names and metadata write it: ``"a-b"``."""
    return f"{position[0]}-{position[1]}"


def part_stream(source: Source, partition: int) -> str:
    """The stream name of one partition in marks and offline parts."""
    return source.name if partition == 0 else f"{source.name}#{partition}"


class StreamIngestor:
    """Consume a stream into the views fed by one push source."""

    def __init__(
        self, store: FeatureStore, push_source: str, source: Source, *, batch: int = 50_000,
        block_ms: int = 500, offline: bool = True, decoder: Decoder = json_object,
    ) -> None:  # fmt: skip
        self.store = store
        self.push_source = push_source
        self.source = source
        self.batch = batch
        self.block_ms = block_ms
        self.offline = offline
        self.decoder = decoder
        self.stop = threading.Event()
        self.stats = IngestStats()

    def step(self) -> int:
        """Read, write and acknowledge one batch; returns the messages handled."""
        batch = self.source.read(self.batch, self.block_ms)
        if not batch.messages:
            return 0
        collecting = gc.isenabled()
        gc.disable()  # a batch allocates many short-lived objects; collect once afterwards
        try:
            self._handle(batch)
        except BaseException:
            self.source.release(batch.messages)
            raise
        finally:
            if collecting:
                gc.enable()
        return len(batch.messages)

    def _handle(self, batch: Batch) -> None:
        messages = distinct(batch.messages)
        snap = self.store.registry.snapshot()
        views = push_views(snap, self.push_source)
        ts_fields = {v.timestamp_field for v in views}
        good: list[Event] = []
        bad: list[DeadLetter] = []
        decode = self.decoder
        for index, message in enumerate(messages):
            try:
                events = decode(message.payload)
            except (ValueError, KeyError, UnicodeError) as exc:
                bad.append(DeadLetter(message, str(exc)))
                continue
            for event in events:
                try:
                    good.append((index, _parse(event, ts_fields)))
                except (ValueError, KeyError) as exc:
                    bad.append(DeadLetter(message, str(exc), event))
        good, tables = self._check(snap, views, messages, good, bad)
        if good:
            self._write(snap, views, batch, messages, good, tables)
        if bad:
            self.source.dead_letter(bad)
        self.source.ack(batch.messages)
        self.stats.events += len(good)
        self.stats.dead += len(bad)
        self.stats.batches += 1

    def _write(
        self, snap: Any, views: Any, batch: Batch, messages: list[Message], good: list[Event],
        tables: list[pa.Table],
    ) -> None:  # fmt: skip
        """Write the events online, then offline, one partition after the other."""
        parts: dict[int, list[int]] = {}
        for row, (index, _) in enumerate(good):
            parts.setdefault(messages[index].partition, []).append(row)
        settled = self.source.settled() if self.source.ordered else {}
        source = snap.data_sources[self.push_source]
        assert isinstance(source, PushSource)
        for partition, rows in parts.items():
            chosen = tables if len(parts) == 1 else [t.take(rows) for t in tables]
            positions = [messages[good[r][0]].position for r in rows]
            span = None
            if batch.contiguous:
                mine = [m.position for m in messages if m.partition == partition]
                span = (mine[0], mine[-1])
            stream = part_stream(self.source, partition)
            delivery = Delivery(stream, positions, span, settled.get(partition),
                                ordered=self.source.ordered)  # fmt: skip
            write_views(self.store.online, views, chosen, delivery=delivery)
            if self.offline:
                texts = [position_text(p) for p in positions]
                whole = None
                if span and not batch.redelivered:
                    whole = (position_text(span[0]), position_text(span[1]))
                ref = source_ref(source.batch_source, self.store.repo_path)
                StreamParts(self.store.offline, ref, stream).append(
                    chosen[0], texts, whole, check=batch.redelivered
                )

    def _check(
        self, snap: Any, views: Any, messages: list[Message], good: list[Event],
        bad: list[DeadLetter],
    ) -> tuple[list[Event], list[pa.Table]]:  # fmt: skip
        """Cast the batch for every view; a failing batch is split to find the bad events."""
        what = f"stream {self.source.name!r}"
        try:
            return good, conformed(snap, views, _columns(good), what) if good else []
        except (PitstopError, ValueError, TypeError):
            kept = []
            for index, event in good:
                try:
                    conformed(snap, views, [event], what)
                    kept.append((index, event))
                except (PitstopError, ValueError, TypeError) as exc:
                    bad.append(DeadLetter(messages[index], str(exc), event))
            return kept, conformed(snap, views, _columns(kept), what) if kept else []

    def stop_on_signals(self) -> None:
        """Make SIGINT and SIGTERM set :attr:`stop` (from the main thread only): the batch in
        flight is finished and acknowledged first."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stop.set())

    def run(self, report: Callable[[IngestStats], None] | None = None) -> IngestStats:
        """Consume until :attr:`stop` is set (or SIGINT/SIGTERM in the main thread); every
        second, refresh the lag and call ``report``."""
        self.stop_on_signals()
        began = last = time.perf_counter()
        while not self.stop.is_set():
            self.step()
            now = time.perf_counter()
            self.stats.seconds = now - began
            if now - last >= 1.0:
                self.stats.lag = self.source.lag()
                if report:
                    report(self.stats)
                last = now
        return self.stats
