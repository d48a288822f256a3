"""Feature logging: the feature vectors a service serves, sampled, written to Parquet files.

A :class:`~pitstop.FeatureService` with a ``logging_config`` has its served vectors logged,
whichever way they are served: ``store.get_online_features(features=service, ...)`` in
process or ``POST /get-online-features`` with ``feature_service`` on ``pitstop serve``.

**Sampling** is per request: a request is logged, all its rows, with probability
``sample_rate`` (``monitoring.logging.seed`` in ``feature_store.yaml`` fixes the draws).

**Off the request path.** A logged request costs the caller appending its values to the
columns of a bounded queue (``monitoring.logging.queue_size`` requests): no object outlives
the request but the values, so the garbage collector is not made to work. A background thread
takes the queue every 50 ms, turns it into Arrow columns, and writes one Parquet part file per
service when ``flush_rows`` rows are waiting or the oldest has waited ``flush_seconds``. When
the queue is full (the thread is held up, by a slow disk say) the request is **dropped and
counted**, never waited for: serving does not slow down because the disk does. What is queued
is written at ``store.close()``, at interpreter exit and when the feature server shuts down;
``store.flush_feature_logs()`` writes it now. A killed process loses what it had not written.

**Layout.** Under the destination's ``path`` (relative paths: to the repo root)::

    service=<service>/date=<YYYY-MM-DD>/part-<UTC time>-<pid>-<writer>-<n>.parquet

A file appears complete or not at all (written under a temporary name, then renamed). Its
columns: ``__log_timestamp`` (timestamp[us, UTC], when the request was served),
``__request_id`` (one per request, unique across processes), the join keys and request data
the request sent (by their declared types), then per feature ``<view>__<feature>`` (the
value, its declared type),
``<view>__<feature>__status`` (``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND``,
``OUTSIDE_MAX_AGE``) and ``<view>__<feature>__timestamp`` (the value's event time). Names are
always the full ``view__feature`` names, whatever ``full_feature_names`` the request used.
``partition_by`` of ``FileLoggingDestination`` is kept with the service but not used.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.config import FeatureLoggingSettings, resolve_path
from pitstop.definitions.service import FeatureService
from pitstop.engine.online import _columns as entity_columns

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.engine.online import OnlineResponse
    from pitstop.registry.snapshot import Snapshot

logger = logging.getLogger("pitstop.quality")

LOG_TIMESTAMP = "__log_timestamp"
REQUEST_ID = "__request_id"
STATUS = "__status"
TIMESTAMP = "__timestamp"
DAY_US = 86_400_000_000
_CONTROL_TIMEOUT_S = 60.0


def log_root(service: FeatureService, repo_path: Path) -> Path:
    """The folder holding ``service``'s logs: ``<destination path>/service=<name>``."""
    config = service.logging_config
    if config is None:
        from pitstop.errors import DefinitionError

        raise DefinitionError(
            f"feature service {service.name!r} has no logging_config, so its served features "
            "are not logged; add logging_config=LoggingConfig(destination="
            "FileLoggingDestination(path='data/feature_logs'), sample_rate=0.1) and apply"
        )
    return resolve_path(config.destination.path, repo_path) / f"service={service.name}"


def log_files(root: Path) -> str:
    """The glob of the Parquet part files under a :func:`log_root`."""
    return str(root / "date=*" / "*.parquet")


@dataclass
class LogStats:
    """Counters of one writer, per service: requests and rows written, requests dropped
    because the queue was full, requests lost to a failed write."""

    requests: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    files: int = 0


@dataclass(frozen=True)
class _Layout:
    """The columns of one service's log files (for one response shape)."""

    root: Path
    keys: tuple[tuple[str, Any], ...]  # entity-row columns kept: (name, Arrow type or None)
    features: tuple[tuple[str, str, Any], ...]  # (response name, full name, Arrow type)

    @cached_property
    def columns(self) -> tuple[str, ...]:
        names = [LOG_TIMESTAMP, REQUEST_ID, *self.key_names]
        for _, full, status, stamp in self.targets:
            names += [full, status, stamp]
        return tuple(names)

    @cached_property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keys)

    @cached_property
    def targets(self) -> tuple[tuple[str, str, str, str], ...]:
        """Per feature: the response's name, then the value, status and time columns."""
        return tuple((s, f, f + STATUS, f + TIMESTAMP) for s, f, _ in self.features)

    @cached_property
    def key_set(self) -> frozenset[str]:
        return frozenset(self.key_names)


@dataclass
class _Buffer:
    """Rows of one service (and layout) waiting to be written. Keys by column; values,
    statuses and event times each in one list, request after request, and within a request
    feature after feature (the order of the response, which is the layout's)."""

    service: str
    layout: _Layout
    requests: list[tuple[int, int]] = field(default_factory=list)  # (served at, rows)
    keys: list[list[Any]] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    stamps: list[int | None] = field(default_factory=list)

    @classmethod
    def of(cls, service: str, layout: _Layout) -> _Buffer:
        return cls(service, layout, [], [[] for _ in layout.keys])

    def by_feature(self, flat: list[Any]) -> list[list[Any]]:
        """One of the flat lists as one column per feature."""
        width = len(self.layout.features)
        if all(n == 1 for _, n in self.requests):  # the common case: one row per request
            return [flat[i::width] for i in range(width)]
        columns: list[list[Any]] = [[] for _ in range(width)]
        at = 0
        for _, n in self.requests:
            for i, column in enumerate(columns):
                column.extend(flat[at + i * n : at + (i + 1) * n])
            at += width * n
        return columns


class FeatureLogWriter:
    """Samples served vectors and writes them in the background (see the module docs)."""

    POLL_SECONDS = 0.05  # how often the background thread takes the queued rows

    def __init__(
        self,
        repo_path: Path,
        settings: FeatureLoggingSettings,
        snapshot: Callable[[], Snapshot],
    ) -> None:
        self.repo_path = Path(repo_path)
        self.settings = settings
        self._snapshot = snapshot
        self._draw = random.Random(settings.seed).random
        self._queued: dict[int, _Buffer] = {}  # by queue id; taken by the thread every poll
        self._queued_requests = 0
        self._limit = settings.queue_size
        self._wake = threading.Event()
        self._asked: list[tuple[threading.Event, bool]] = []  # flushes waited for: (done, stop)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._layouts: dict[tuple[Any, ...], tuple[_Layout, int]] = {}
        self._queue_ids: dict[tuple[Any, ...], int] = {}  # (service, folder, columns) -> id
        self._seq = itertools.count()
        self._ids = itertools.count()
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # this writer's, in names and ids
        self.stats = LogStats()

    # --- the request path ----------------------------------------------------------------

    def log(
        self,
        service: FeatureService,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        response: OnlineResponse,
        full_feature_names: bool,
    ) -> bool:
        """Queue one served response of ``service`` if it is sampled; whether it was queued.

        Its values are appended to the columns of the service's queue: nothing outlives the
        request but the values themselves (a long-lived object per request would make the
        garbage collector's full passes frequent)."""
        config = service.logging_config
        if config is None or self._draw() >= config.sample_rate:
            return False
        if self._thread is None:
            self.start()
        at_us = time.time_ns() // 1000
        values, statuses, stamps = response.values, response.statuses, response.timestamps
        names = tuple(values)
        found = self._layouts.get((service.name, config.destination.path, full_feature_names,
                                   names))  # fmt: skip
        if found is None:
            try:
                found = self._layout(service, config.destination.path, full_feature_names,
                                     names)  # fmt: skip
            except Exception as exc:  # never fails the request: counted and logged
                self._failed(service.name, 1, exc)
                return False
        layout, key = found
        n = len(values[names[0]]) if names else 0
        sent = response.entities  # the join keys; request data is only in what was sent
        if not layout.key_set <= sent.keys():
            sent = entity_columns(entity_rows)[0]
        with self._lock:
            if self._queued_requests >= self._limit:
                self.stats.dropped[service.name] = self.stats.dropped.get(service.name, 0) + 1
                return False
            self._queued_requests += 1
            buffer = self._queued.get(key)
            if buffer is None:
                buffer = self._queued[key] = _Buffer.of(service.name, layout)
            buffer.requests.append((at_us, n))
            for k, column in zip(layout.key_names, buffer.keys, strict=True):
                column.extend(sent.get(k) or [None] * n)
            buffer.values.extend(chain.from_iterable(values.values()))
            buffer.statuses.extend(chain.from_iterable(statuses.values()))
            buffer.stamps.extend(chain.from_iterable(stamps.values()))
        return True

    def _layout(
        self, service: FeatureService, where: str, full: bool, names: tuple[str, ...]
    ) -> tuple[_Layout, int]:
        """The layout of a response of ``service`` with ``names`` and the id of its queue
        (short and full names of one service share a queue, and a file)."""
        shape = (service.name, where, full, names)
        found = self._layouts.get(shape)
        if found is not None:
            return found
        layout = log_layout(self._snapshot(), service, self.repo_path)
        if len(layout.features) != len(names):
            raise ValueError(f"the response has {len(names)} features, the service "
                             f"{len(layout.features)}")  # fmt: skip
        # the response's names (short or full) in the plan's order
        layout = _Layout(layout.root, layout.keys, tuple(
            (served, full, t) for served, (_, full, t) in zip(names, layout.features, strict=True)
        ))  # fmt: skip
        if len(self._layouts) > 256:
            self._layouts.clear()
        queue = self._queue_ids.setdefault((service.name, layout.root, layout.columns),
                                           len(self._queue_ids))  # fmt: skip
        found = self._layouts[shape] = (layout, queue)
        return found

    # --- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (the first logged request does it otherwise)."""
        if self._thread is not None:
            return
        # what writing needs is loaded now, on the caller's thread: once the interpreter
        # begins to exit (when the last rows are written) an import that registers an exit
        # handler fails, and Arrow loads pandas on its first conversion
        import pyarrow as pa
        import pyarrow.fs
        import pyarrow.parquet

        pa.array([0])
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="pitstop-feature-log", daemon=True
            )
            self._thread.start()
            atexit.register(self.close)

    def flush(self) -> None:
        """Write everything queued so far, and wait until it is written."""
        self._ask(stop=False)

    def close(self) -> None:
        """Write everything queued and stop the background thread (a later log starts it
        again)."""
        thread = self._thread
        if thread is None:
            return
        self._ask(stop=True)
        thread.join(_CONTROL_TIMEOUT_S)
        with self._lock:
            self._thread = None
        atexit.unregister(self.close)

    def _ask(self, stop: bool) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        done = threading.Event()
        with self._lock:
            self._asked.append((done, stop))
        self._wake.set()
        done.wait(_CONTROL_TIMEOUT_S)

    # --- the background thread -----------------------------------------------------------

    def _run(self) -> None:
        """Every poll, take the queued columns as Arrow tables; write them (a file per
        service and day) once ``flush_rows`` rows wait or the oldest waited
        ``flush_seconds``, or when asked."""
        waiting: dict[int, list[tuple[_Buffer, pa.Table]]] = {}
        rows = 0
        oldest = 0.0
        settings = self.settings
        while True:
            self._wake.wait(self.POLL_SECONDS)
            self._wake.clear()
            with self._lock:
                asked, self._asked = self._asked, []
                taken, self._queued, self._queued_requests = self._queued, {}, 0
            for key, buffer in taken.items():
                try:
                    table = self._table(buffer)
                except Exception as exc:
                    self._failed(buffer.service, len(buffer.requests), exc)
                    continue
                if not rows:
                    oldest = time.monotonic()
                waiting.setdefault(key, []).append((buffer, table))
                rows += table.num_rows
            due = rows >= settings.flush_rows or (
                rows and time.monotonic() - oldest >= settings.flush_seconds
            )
            if waiting and (due or asked):
                for parts in waiting.values():
                    self._write(parts)
                waiting, rows = {}, 0
            for done, _ in asked:
                done.set()
            if any(stop for _, stop in asked):
                return

    def _write(self, parts: list[tuple[_Buffer, pa.Table]]) -> None:
        import pyarrow as pa

        service, layout = parts[0][0].service, parts[0][0].layout
        requests = sum(len(buffer.requests) for buffer, _ in parts)
        try:
            table = pa.concat_tables([t for _, t in parts])
            for day, part in _days(table):
                folder = layout.root / f"date={day}"
                folder.mkdir(parents=True, exist_ok=True)
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
                name = f"part-{stamp}-{self._token}-{next(self._seq):06d}.parquet"
                _write_atomically(part, folder / name)
                self.stats.files += 1
        except Exception as exc:
            self._failed(service, requests, exc)
            return
        with self._lock:
            stats = self.stats
            stats.requests[service] = stats.requests.get(service, 0) + requests
            stats.rows[service] = stats.rows.get(service, 0) + table.num_rows

    def _table(self, buffer: _Buffer) -> pa.Table:
        """A buffer's rows as one Arrow table, by the declared types."""
        import pyarrow as pa

        stamp = pa.timestamp("us", tz="UTC")
        requests = buffer.requests
        ids = [f"{self._token}-{next(self._ids):x}" for _ in requests]  # one per request
        arrays: dict[str, pa.Array] = {
            LOG_TIMESTAMP: pa.array([at for at, n in requests for _ in range(n)], stamp),
            REQUEST_ID: pa.array([i for i, (_, n) in zip(ids, requests, strict=True)
                                  for _ in range(n)], pa.string()),
        }  # fmt: skip
        for (key, arrow_type), column in zip(buffer.layout.keys, buffer.keys, strict=True):
            arrays[key] = _array(column, arrow_type)
        values, statuses = buffer.by_feature(buffer.values), buffer.by_feature(buffer.statuses)
        stamps = buffer.by_feature(buffer.stamps)
        for i, (_, full, arrow_type) in enumerate(buffer.layout.features):
            arrays[full] = _array(values[i], arrow_type)
            arrays[full + STATUS] = pa.array(statuses[i], pa.string())
            arrays[full + TIMESTAMP] = pa.array(stamps[i], stamp)
        return pa.table(arrays)

    def _failed(self, service: str, requests: int, exc: BaseException) -> None:
        with self._lock:
            self.stats.failed[service] = self.stats.failed.get(service, 0) + requests
        logger.warning("feature service %r: %d logged request(s) could not be written: %s",
                       service, requests, exc)  # fmt: skip


def log_layout(snapshot: Snapshot, service: FeatureService, repo_path: Path) -> _Layout:
    """The columns ``service``'s log files have, from the registry's definitions."""
    from pitstop.engine.online import key_dtypes
    from pitstop.engine.request import build_plan
    from pitstop.types import to_arrow

    plan = build_plan(snapshot, service, True)
    keys: dict[str, Any] = {}
    for v in plan.views:
        dtypes = key_dtypes(snapshot, v.view)
        for key, column in zip(v.view.join_keys, v.entity_keys, strict=True):
            dtype = dtypes.get(key)
            keys.setdefault(column, None if dtype is None else to_arrow(dtype))
    for f in plan.request_fields:
        keys.setdefault(f.name, to_arrow(f.dtype))
    dtypes = {c.name: c.feature.dtype for v in plan.views for c in v.columns if c.visible}
    dtypes.update({c.name: c.feature.dtype for od in plan.on_demand for c in od.columns})
    features = tuple((n, n, to_arrow(dtypes[n])) for n in plan.output_names)
    return _Layout(log_root(service, repo_path), tuple(keys.items()), features)


def _array(values: list[Any], arrow_type: Any) -> pa.Array:
    """``values`` as their declared type; what does not convert is kept as text."""
    import pyarrow as pa

    try:
        return pa.array(values, arrow_type)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _days(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """``table`` split by the UTC date of its log timestamps."""
    import numpy as np

    us = table.column(LOG_TIMESTAMP).cast("int64").to_numpy()
    days = us // DAY_US
    first, last = int(days.min()), int(days.max())

    def name(day: int) -> str:
        return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")

    if first == last:
        return [(name(first), table)]
    return [(name(int(d)), table.filter(days == d)) for d in np.unique(days)]


def _write_atomically(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    temporary = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
