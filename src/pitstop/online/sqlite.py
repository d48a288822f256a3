"""The SQLite online store, the default: one file, no server.

**Layout.** One table per feature view, named ``"<project>:<view>"`` (always quoted, so a view
name may contain ``-``, ``.`` or spaces; a project is letters, digits and ``_``, so the first
``:`` separates the two; SQLite reserves names starting with ``sqlite_``, so such a project's
tables get a leading ``_``)::

    entity_key BLOB PRIMARY KEY, event_ts INTEGER, created_ts INTEGER, value BLOB  -- WITHOUT ROWID

**Writes** are one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE (excluded.event_ts,
excluded.created_ts) >= (event_ts, created_ts)`` run with ``executemany`` inside one
``BEGIN IMMEDIATE`` transaction, so rows of one call apply in order and atomically. A table is
created on first write if ``update`` did not create it.

**Modify** (read-modify-write) is one ``BEGIN IMMEDIATE`` transaction: it takes the database's
write lock first, so its read sees the latest commit and no other writer (thread or process) can
commit before it does; it reads the keys' rows, calls ``change`` and upserts the returned rows
unconditionally (no event-time condition). ``change`` runs while the write lock is held: it must
be quick and must not call the store.

**Reads** are one statement for all views and keys of a request: a ``UNION ALL`` of per-view
selects with ``entity_key IN (?, ...)``. The SQL text depends only on the views and key counts,
so it is built once and SQLite's prepared statement is reused from the connection's cache. A view
whose table does not exist reads as absent keys. A read larger than SQLite's variable limit is
split into several statements inside one read transaction (one snapshot).

**Threads.** The store keeps a small pool of connections (``check_same_thread=False``); each call
takes one connection, uses it alone and gives it back, so threads never share a connection at the
same time and readers run in parallel (WAL; the driver releases the GIL while SQLite works).
The pool grows to the number of threads that call at once. ``journal_mode=WAL`` and
``synchronous=NORMAL``: a crash of the machine may lose the last commits, never corrupt the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Literal

from pitstop.config import OnlineStoreConfig, resolve_path
from pitstop.errors import BackendUnavailableError
from pitstop.online.base import (
    Capabilities,
    Change,
    ConnectionPool,
    ReadRow,
    StoredRow,
    rows_to_write,
)

_COMPOUND_LIMIT = 500  # SQLite's default SQLITE_MAX_COMPOUND_SELECT
_SQL_CACHE_SIZE = 1024
_Row = tuple[int, bytes, int, bytes]  # (request position, entity_key, event_ts, value)


def table_name(project: str, view: str) -> str:
    """The (unquoted) table of ``view`` in ``project``."""
    name = f"{project}:{view}"
    return "_" + name if name[:7].lower() == "sqlite_" else name


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteOnlineConfig(OnlineStoreConfig):
    """A SQLite file (the default online store); ``path`` is relative to the repo root."""

    type: Literal["sqlite"] = "sqlite"
    path: str = "data/online_store.db"

    def resolved_path(self, repo_path: Path) -> Path:
        """The absolute database file; a relative path resolves against ``repo_path``."""
        return resolve_path(self.path, repo_path)

    def open(self, project: str, repo_path: Path) -> SqliteOnlineStore:
        return SqliteOnlineStore(self, project, Path(repo_path))


class SqliteOnlineStore:
    """Latest rows in a SQLite file (``online_store: {type: sqlite, path: ...}``)."""

    capabilities = Capabilities(max_write_batch=200_000, key_ordered_writes=True)

    def __init__(self, config: SqliteOnlineConfig, project: str, repo_path: Path) -> None:
        self.config = config
        self.project = project
        self.path = config.resolved_path(repo_path)
        self._pool = ConnectionPool(self._connect, f"the SQLite online store {self.path}")
        self._acquire, self._release = self._pool.acquire, self._pool.release
        self._max_vars = 32766
        self._created: set[str] = set()
        self._sql: dict[tuple[tuple[str, int], ...], str] = {}

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=30.0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
            _set_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            raise BackendUnavailableError(
                f"cannot open the SQLite online store {self.path}: {exc}; check "
                "online_store.path in feature_store.yaml and the directory's permissions"
            ) from None
        self._max_vars = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return conn

    def close(self) -> None:
        self._pool.close()

    # -- schema ------------------------------------------------------------------------------

    def _create(self, conn: sqlite3.Connection, table: str) -> None:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(table)} (entity_key BLOB PRIMARY KEY, "
            "event_ts INTEGER NOT NULL, created_ts INTEGER NOT NULL, value BLOB NOT NULL) "
            "WITHOUT ROWID"
        )
        self._created.add(table)

    def update(self, keep: Sequence[str], drop: Sequence[str]) -> None:
        tables = [table_name(self.project, view) for view in drop]
        self._change(tables, [table_name(self.project, view) for view in keep])

    def teardown(self, views: Sequence[str]) -> None:
        prefix = table_name(self.project, "")
        conn = self._acquire()
        try:
            names = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",
                (len(prefix), prefix),
            ).fetchall()
        finally:
            self._release(conn)
        owned = {table_name(self.project, view) for view in views} | {n for (n,) in names}
        self._change(sorted(owned), [])

    def _change(self, drop: Iterable[str], create: Iterable[str]) -> None:
        conn = self._acquire()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table in drop:
                    conn.execute(f"DROP TABLE IF EXISTS {quote(table)}")
                    self._created.discard(table)
                for table in create:
                    self._create(conn, table)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            self._release(conn)

    # -- data --------------------------------------------------------------------------------

    def write(self, view: str, rows: Sequence[StoredRow]) -> None:
        if not rows:
            return
        table = table_name(self.project, view)
        q = quote(table)
        sql = (
            f"{_upsert(q)} "
            f"WHERE (excluded.event_ts, excluded.created_ts) >= ({q}.event_ts, {q}.created_ts)"
        )
        conn = self._acquire()
        try:
            for attempt in (1, 2):
                if table not in self._created:
                    self._create(conn, table)
                try:
                    self._write(conn, sql, rows)
                    return
                except sqlite3.OperationalError as exc:  # dropped by another process?
                    if attempt == 2 or "no such table" not in str(exc):
                        raise
                    self._created.discard(table)
        finally:
            self._release(conn)

    @staticmethod
    def _write(conn: sqlite3.Connection, sql: str, rows: Sequence[StoredRow]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # in key order: B-tree inserts then touch neighbouring pages (3x faster for bulk
            # loads); the sort is stable, so rows of one key keep their order
            conn.executemany(sql, sorted(rows, key=_by_key) if len(rows) > 64 else rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def newest_event_ts(self, views: Sequence[str]) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        conn = self._acquire()
        try:
            for view in views:
                q = quote(table_name(self.project, view))
                try:
                    (found[view],) = conn.execute(f"SELECT MAX(event_ts) FROM {q}").fetchone()
                except sqlite3.OperationalError as exc:
                    if "no such table" not in str(exc):
                        raise
                    found[view] = None
        finally:
            self._release(conn)
        return found

    def modify(self, view: str, keys: Sequence[bytes], change: Change) -> None:
        if not keys:
            return
        table = table_name(self.project, view)
        q = quote(table)
        upsert = _upsert(q)
        distinct = list(dict.fromkeys(keys))
        conn = self._acquire()
        try:
            for attempt in (1, 2):
                if table not in self._created:
                    self._create(conn, table)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    try:
                        found = self._found(conn, q, distinct)
                    except sqlite3.OperationalError as exc:  # dropped by another process?
                        if attempt == 2 or "no such table" not in str(exc):
                            raise
                        conn.execute("ROLLBACK")
                        self._created.discard(table)
                        continue
                    rows = rows_to_write(keys, change([found.get(key) for key in keys]))
                    conn.executemany(upsert, rows)
                    conn.execute("COMMIT")
                    return
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        finally:
            self._release(conn)

    def _found(self, conn: sqlite3.Connection, q: str, keys: list[bytes]) -> dict[bytes, ReadRow]:
        """The stored rows of ``keys`` (distinct) in table ``q``, by key."""
        found: dict[bytes, ReadRow] = {}
        for start in range(0, len(keys), self._max_vars):
            chunk = keys[start : start + self._max_vars]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT entity_key, event_ts, value FROM {q} WHERE entity_key IN ({marks})"
            for key, event_ts, value in conn.execute(sql, chunk):
                found[key] = ReadRow(event_ts, value)
        return found

    def read(self, requests: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[ReadRow | None]]:
        if not requests:
            return []
        counts = [len(keys) for _, keys in requests]
        conn = self._acquire()
        try:
            if len(requests) <= _COMPOUND_LIMIT and sum(counts) <= self._max_vars:
                rows = self._rows(conn, requests, counts)
            else:
                rows = self._rows_chunked(conn, requests)
        finally:
            self._release(conn)
        if counts.count(1) == len(counts):  # one key per view, the hot path: no dicts
            single: list[list[ReadRow | None]] = [[None] for _ in requests]
            for pos, _, event_ts, value in rows:
                single[pos][0] = ReadRow(event_ts, value)
            return single
        found: list[dict[bytes, ReadRow]] = [{} for _ in requests]
        for pos, key, event_ts, value in rows:
            found[pos][key] = ReadRow(event_ts, value)
        return [[f.get(key) for key in keys] for f, (_, keys) in zip(found, requests, strict=True)]

    def _rows(
        self,
        conn: sqlite3.Connection,
        requests: Sequence[tuple[str, Sequence[bytes]]],
        counts: Sequence[int],
    ) -> list[_Row]:
        """The stored rows of ``requests``, tagged with the request's position."""
        shape = tuple(zip([view for view, _ in requests], counts, strict=True))
        sql = self._sql.get(shape) or self._select(shape)
        try:
            return conn.execute(sql, [key for _, keys in requests for key in keys]).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
        names = [table_name(self.project, view) for view, _ in requests]
        marks = ", ".join("?" * len(names))
        existing = {
            name
            for (name,) in conn.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({marks})", names
            )
        }
        present = [i for i, name in enumerate(names) if name in existing]
        if not present or len(present) == len(requests):  # nothing to read, or created just now
            return [] if not present else self._rows(conn, requests, counts)
        rows = self._rows(conn, [requests[i] for i in present], [counts[i] for i in present])
        return [(present[pos], key, ts, value) for pos, key, ts, value in rows]

    def _select(self, shape: tuple[tuple[str, int], ...]) -> str:
        parts = []
        for pos, (view, n) in enumerate(shape):
            where = "entity_key = ?" if n == 1 else f"entity_key IN ({', '.join('?' * n)})"
            table = quote(table_name(self.project, view))
            parts.append(f"SELECT {pos}, entity_key, event_ts, value FROM {table} WHERE {where}")
        if len(self._sql) >= _SQL_CACHE_SIZE:
            self._sql.clear()
        sql = self._sql[shape] = " UNION ALL ".join(parts)
        return sql

    def _rows_chunked(
        self, conn: sqlite3.Connection, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[_Row]:
        """Like :meth:`_rows` for reads beyond SQLite's limits: several statements, one
        snapshot."""
        step = self._max_vars
        pieces = [
            (pos, view, keys[start : start + step])
            for pos, (view, keys) in enumerate(requests)
            for start in range(0, len(keys), step)
        ]
        groups: list[list[tuple[int, str, Sequence[bytes]]]] = [[]]
        size = 0
        for piece in pieces:
            if size + len(piece[2]) > step or len(groups[-1]) >= _COMPOUND_LIMIT:
                groups.append([])
                size = 0
            groups[-1].append(piece)
            size += len(piece[2])
        rows: list[_Row] = []
        conn.execute("BEGIN")
        try:
            for group in groups:
                sub = [(view, keys) for _, view, keys in group]
                found = self._rows(conn, sub, [len(keys) for _, keys in sub])
                rows += [(group[p][0], k, ts, v) for p, k, ts, v in found]
        finally:
            conn.execute("COMMIT")
        return rows


def _upsert(q: str) -> str:
    """Insert a row of table ``q``, or replace the stored row of its key."""
    return (
        f"INSERT INTO {q} (entity_key, event_ts, created_ts, value) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (entity_key) DO UPDATE SET event_ts = excluded.event_ts, "
        "created_ts = excluded.created_ts, value = excluded.value"
    )


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL; processes opening a new file at once may briefly see it locked."""
    import time

    for attempt in range(50):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.01 * (attempt + 1))


_by_key = itemgetter(0)
