"""The online store protocol: the latest encoded row per (feature view, entity key).

An online store is a small, dumb key-value backend. Everything that gives values meaning —
entity key and value encoding (:mod:`pitstop.online.encoding`), request assembly, TTL, statuses,
naming — lives once in :mod:`pitstop.engine`. A store only has to:

- keep one row per ``(view, entity_key)``: ``(event_ts, created_ts, value)``;
- apply writes **in event-time order**: a row replaces the stored one only if
  ``(event_ts, created_ts) >= (stored.event_ts, stored.created_ts)`` (equal: last write wins),
  atomically, also for several rows of one key in one ``write`` call;
- answer a read of several views and many keys in **one round trip**.

The read and write paths use plain ``bytes`` and ``int`` rather than Arrow: a single-entity read
must take microseconds, and building Arrow arrays for one row costs more than the whole read.

**Configuration.** A store comes with a config model, a subclass of
:class:`pitstop.config.OnlineStoreConfig` with ``type`` narrowed to the store's name, its own
keys and ``open(project, repo_path)``, which returns the store (importing the store's module and
driver only then). :mod:`pitstop.backends` maps each ``type`` to its config model: the built-in
table, or the entry point group ``pitstop.online_stores`` for other packages. The built-in
stores are constructed as ``Store(config, project, repo_path)``. Example:
``MemoryOnlineConfig().open("demo", Path("."))``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

from pitstop.errors import PitstopError


class StoredRow(NamedTuple):
    """One encoded row: timestamps are microseconds since the Unix epoch (UTC)."""

    entity_key: bytes
    event_ts: int
    created_ts: int
    value: bytes


class ReadRow(NamedTuple):
    """What a read returns for a key that is present."""

    event_ts: int
    value: bytes


#: The function :meth:`OnlineStore.modify` applies: current rows in, rows to write out.
Change = Callable[[list["ReadRow | None"]], list["StoredRow | None"]]


@dataclass(frozen=True)
class Capabilities:
    """What a store can do; the engine checks these, never the store's name."""

    max_write_batch: int = 10_000  # rows per write call the engine should send
    # bulk writes are faster in entity-key order (a B-tree keyed by the key): materialization
    # then asks the offline engine for its rows in key order
    key_ordered_writes: bool = False


class OnlineStore(Protocol):
    """A backend holding the latest row per view and entity key, for one project."""

    capabilities: Capabilities

    def update(self, keep: Sequence[str], drop: Sequence[str]) -> None:
        """Make sure tables for views ``keep`` exist and remove those of ``drop``."""
        ...

    def write(self, view: str, rows: Sequence[StoredRow]) -> None:
        """Upsert ``rows`` into ``view``'s table in event-time order (see module docs)."""
        ...

    def read(self, requests: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[ReadRow | None]]:
        """For each ``(view, keys)``, the stored row of every key (``None`` if absent)."""
        ...

    def modify(self, view: str, keys: Sequence[bytes], change: Change) -> None:
        """Atomically replace the rows of ``keys`` in ``view`` with ``change(current)``.

        ``change`` receives the current row of every key (``None`` if absent), in ``keys``
        order, and returns one ``StoredRow`` (to write) or ``None`` (to leave the key as it is)
        per key. No other write to these keys may interleave between the read and the write; a
        store that detects a conflict calls ``change`` again with the fresh rows. Used for
        read-modify-write state such as aggregation tiles; event-time ordering does not apply.
        """
        ...

    def teardown(self, views: Sequence[str]) -> None:
        """Remove the tables of ``views`` and anything else this project keeps."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class EventTimes(Protocol):
    """An optional ability (freshness: ``pitstop status``, ``/metrics``): the newest event
    time each view's table holds. The memory, SQLite and PostgreSQL stores have it; the Redis
    store has not (it would have to read every key)."""

    def newest_event_ts(self, views: Sequence[str]) -> dict[str, int | None]:
        """Per view, the greatest ``event_ts`` stored (``None``: no rows, or no table)."""
        ...


def supersedes(row: StoredRow, old: StoredRow | None) -> bool:
    """Whether ``row`` replaces ``old`` under event-time ordering: a greater
    ``(event_ts, created_ts)``, or an equal one written later."""
    return old is None or (row.event_ts, row.created_ts) >= (old.event_ts, old.created_ts)


def newest_per_key(rows: list[StoredRow]) -> list[StoredRow]:
    """``rows`` with one row per key, the one that :func:`supersedes` the others; in the order
    keys first appear."""
    if len({row.entity_key for row in rows}) == len(rows):
        return rows
    newest: dict[bytes, StoredRow] = {}
    for row in rows:
        if supersedes(row, newest.get(row.entity_key)):
            newest[row.entity_key] = row
    return list(newest.values())


def rows_to_write(keys: Sequence[bytes], changed: Sequence[StoredRow | None]) -> list[StoredRow]:
    """The rows a ``modify`` must write, in key order (the ``None`` items dropped).

    Raises :class:`~pitstop.errors.PitstopError` unless ``changed`` has one item per key and
    every row is for its key (a row for another key would bypass that key's lock or watch).
    A key listed twice is written twice, in order: the later row wins.
    """
    if len(changed) != len(keys):
        raise PitstopError(
            f"modify: change returned {len(changed)} items for {len(keys)} keys; it must "
            "return one StoredRow or None per key, in key order"
        )
    rows: list[StoredRow] = []
    for key, row in zip(keys, changed, strict=True):
        if row is None:
            continue
        if row.entity_key != key:
            raise PitstopError(
                f"modify: change returned a row for entity key {row.entity_key!r} in the place "
                f"of key {key!r}; a row must keep the entity key it replaces"
            )
        rows.append(row)
    return rows


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ConnectionPool(Generic[C]):
    """Connections for a store's callers: a call takes one (made on demand), uses it alone and
    gives it back, so threads never share one at the same time; the pool grows to the number
    of threads that call at once. ``alive`` tells an idle connection that broke meanwhile
    (it is skipped); ``close`` closes every connection made, once."""

    def __init__(
        self, connect: Callable[[], C], what: str, alive: Callable[[C], bool] | None = None
    ):
        self._connect = connect
        self._what = what
        self._alive = alive
        self._idle: list[C] = []
        self._all: list[C] = []
        self._lock = threading.Lock()
        self._closed = False

    def release(self, conn: C) -> None:
        """Give ``conn`` back (a connection that broke is closed by its user, not released)."""
        self._idle.append(conn)

    def acquire(self) -> C:
        while self._idle:
            try:
                conn = self._idle.pop()
            except IndexError:  # another thread took the last one
                break
            if self._alive is None or self._alive(conn):
                return conn
        with self._lock:
            if self._closed:
                raise PitstopError(f"{self._what} is closed")
            conn = self._connect()
            self._all.append(conn)
            return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()
            self._idle.clear()
