"""Materialization: the latest offline row per entity, written to the online store.

For each view the offline engine computes, per entity key, the newest row with
``start <= event_ts <= end`` (ties: greater created timestamp) and streams it in record
batches; rows are encoded and written in store-sized batches, each acknowledged by the store.
The view's watermark (``end``) is recorded in the registry only when the whole view is written,
so an interrupted run loses nothing already written and a re-run repeats no harm: writes are
event-time ordered, so re-writing the same rows is idempotent.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.sources import PushSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.engine.historical import check_capabilities, view_join
from pitstop.engine.write import chunks, encode_rows
from pitstop.errors import RetrievalError

if TYPE_CHECKING:
    from pitstop.offline.base import OfflineEngine
    from pitstop.offline.pit import ViewJoin
    from pitstop.online.base import OnlineStore
    from pitstop.registry.store import RegistryStore

WATERMARK = "materialized_until:"


@dataclass(frozen=True)
class MaterializeResult:
    """What one view's materialization did."""

    view: str
    start: datetime | None
    end: datetime
    rows: int
    seconds: float


def utc(value: datetime | str, what: str) -> datetime:
    """``value`` (a datetime or ISO 8601 text) in UTC; naive values are taken as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RetrievalError(
                f"{what}: {value!r} is not an ISO 8601 timestamp such as '2026-11-26T10:00:00'"
            ) from None
    if not isinstance(value, datetime):
        raise RetrievalError(
            f"{what}: expected a datetime or ISO 8601 text, got {type(value).__name__} {value!r}"
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def watermark(meta: RegistryStore, view: str) -> datetime | None:
    text = meta.get_meta(WATERMARK + view)
    return datetime.fromisoformat(text) if text else None


def incremental_start(meta: RegistryStore, view: FeatureView, end: datetime) -> datetime | None:
    """Where an incremental run starts: the watermark, else one TTL before ``end``."""
    mark = watermark(meta, view.name)
    if mark is not None:
        return mark
    return end - view.ttl if view.ttl else None


def materialize_view(
    view: FeatureView,
    start: datetime | None,
    end: datetime,
    *,
    offline: OfflineEngine,
    online: OnlineStore,
    meta: RegistryStore,
    repo_path: Path,
    progress: Progress | None = None,
) -> MaterializeResult:
    """Write ``view``'s latest rows in ``[start, end]`` online and move its watermark."""
    if start is not None and start > end:
        raise RetrievalError(f"materialize: start {start} is after end {end} for {view.name!r}")
    began = time.perf_counter()
    join = view_join(view, repo_path)
    source = join.source
    check_capabilities(offline, [source])
    if isinstance(view.source, PushSource) and not offline.has_rows(source):
        meta.set_meta(WATERMARK + view.name, end.isoformat())  # nothing pushed offline yet
        return MaterializeResult(view.name, start, end, 0, time.perf_counter() - began)
    if isinstance(view, StreamFeatureView) and view.aggregations:
        keys = _backfill_tiles(view, join, end, offline, online)
        meta.set_meta(WATERMARK + view.name, end.isoformat())
        return MaterializeResult(view.name, start, end, keys, time.perf_counter() - began)
    latest = offline.latest(join, start, end, key_order=online.capabilities.key_ordered_writes)
    task = progress.start(view.name, latest.rows) if progress else None
    writer = _Writer(online, view.name, progress, task)
    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of live row tuples make collections slow and useless
    size = online.capabilities.max_write_batch
    try:
        for batch in latest.batches:  # encode the next part while the writer stores the last
            for at in range(0, batch.num_rows, size):  # store-sized: bounds the rows held
                writer.put(encode_rows(
                    view, batch.slice(at, size), source.timestamp_field,
                    source.created_timestamp_column, unique_keys=True,
                ))  # fmt: skip
            del batch
    finally:
        written = writer.finish()
        if collecting:
            gc.enable()
    meta.set_meta(WATERMARK + view.name, end.isoformat())
    return MaterializeResult(view.name, start, end, written, time.perf_counter() - began)


class _Writer:
    """Writes encoded rows on a background thread (one batch queued at most), so encoding
    and the store's own work overlap; the first failure is raised by :meth:`finish`."""

    def __init__(self, online: OnlineStore, table: str, progress: Progress | None,
                 task: Any) -> None:  # fmt: skip
        import queue
        import threading

        self.online, self.table, self.progress, self.task = online, table, progress, task
        self.written = 0
        self.error: BaseException | None = None
        self.queue: queue.Queue[list[Any] | None] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="pitstop-materialize", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        size = self.online.capabilities.max_write_batch
        while (rows := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain after a failure; finish() reports it
            try:
                for part in chunks(rows, size):
                    self.online.write(self.table, part)
                    self.written += len(part)
                    if self.progress is not None:
                        self.progress.advance(self.task, len(part))
            except BaseException as exc:
                self.error = exc

    def put(self, rows: list[Any]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(rows)

    def finish(self) -> int:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.written


def _backfill_tiles(
    view: StreamFeatureView,
    join: ViewJoin,
    end: datetime,
    offline: OfflineEngine,
    online: OnlineStore,
) -> int:
    """Rebuild a windowed view's tiles from the events up to ``end`` that a read now or later
    can still see (``end`` may lie before or after now)."""
    from dataclasses import replace

    from pitstop.engine.streams import backfill, backfill_since, input_columns, layout_of

    now_us = time.time_ns() // 1000
    since_us = backfill_since(layout_of(view), now_us)
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=since_us)
    if start > end:  # every event up to end is out of every window now: empty tiles
        start = end
    cols = [c for c in input_columns(view) if c not in (*view.join_keys, view.timestamp_field)]
    events = offline.range(replace(join, columns=tuple((c, c) for c in cols)), start, end)
    end_us = int(end.timestamp() * 1_000_000)
    return backfill(online, view, events.to_arrow(), end_us, now_us)


class Progress:
    """A rich progress display per view: a bar, rows written of the total, rows per second,
    elapsed time and the time left."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not enabled,
            transient=False,
        )
        self._started: dict[Any, float] = {}
        self._done: dict[Any, int] = {}

    def __enter__(self) -> Progress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, name: str, total: int | None = None) -> Any:
        task = self._bar.add_task(name, total=total, rate="")
        self._started[task] = time.perf_counter()
        self._done[task] = 0
        return task

    def advance(self, task: Any, rows: int) -> None:
        self._bar.advance(task, rows)
        done = self._done[task] = self._done[task] + rows
        seconds = max(time.perf_counter() - self._started[task], 1e-9)
        self._bar.update(task, rate=f"{done / seconds:,.0f} rows/s")


def online_views(views: Sequence[FeatureView], names: Sequence[str] | None) -> list[FeatureView]:
    """The views to materialize: ``names`` (checked), else every view with ``online=True``."""
    from pitstop.errors import NotFoundError, suggest

    by_name = {v.name: v for v in views}
    if names:
        for n in names:
            if n not in by_name:
                raise NotFoundError(
                    f"feature view {n!r} is not in the registry.{suggest(n, by_name)}"
                )
        chosen = [by_name[n] for n in names]
        offline_only = [v.name for v in chosen if not v.online]
        if offline_only:
            raise RetrievalError(
                f"feature view(s) {offline_only} have online=False; set online=True to serve them"
            )
        return chosen
    return [v for v in views if v.online]
