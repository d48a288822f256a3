"""The PostgreSQL online store (psycopg 3), for teams that already run PostgreSQL.

**Layout.** Schema ``db_schema`` (created if missing); one table per feature view, named
``"<project>:<view>"`` (always quoted; a project is letters, digits and ``_``, so the first ``:``
separates the two; a name over PostgreSQL's 63 bytes is cut and ends in ``~`` + 10 hex digits of
its SHA-1)::

    entity_key BYTEA PRIMARY KEY, event_ts BIGINT, created_ts BIGINT, value BYTEA

**Writes.** The rows of a call are first reduced to the newest per key (``ON CONFLICT`` cannot
touch one row twice in a statement), then sent as four arrays in one statement per
``_ROWS_PER_STATEMENT`` rows, all in one transaction::

    INSERT INTO t SELECT * FROM unnest(keys, event_ts, created_ts, values)
    ON CONFLICT (entity_key) DO UPDATE SET ... WHERE (excluded.event_ts, excluded.created_ts)
                                                     >= (t.event_ts, t.created_ts)

A table is created on first write if ``update`` did not create it.

**Modify** is one transaction:

1. advisory locks: the table's lock in shared mode, then one transaction-level advisory lock
   (``pg_advisory_xact_lock``) per key, named by a 64-bit hash of (schema, table, key) and taken
   in sorted order, so that modifies of the same keys run one after the other, also for keys
   that have no row yet. A transaction can hold only so many locks
   (``max_locks_per_transaction``): a call of more than ``_KEY_LOCKS`` distinct keys takes the
   table's lock in exclusive mode instead;
2. ``SELECT ... FOR UPDATE`` reads the keys' rows and locks them against plain writes too;
3. ``change`` runs (holding the locks: it must be quick and must not call the store);
4. one ``INSERT ... ON CONFLICT DO UPDATE`` per ``_ROWS_PER_STATEMENT`` rows writes the returned
   rows regardless of event time, but updates only rows locked in step 2: if a plain write
   inserted a key that was absent in step 2, the row count comes up short, and modify rolls
   back and starts again, calling ``change`` with the fresh rows.

**Lock order.** Writes and modify's upsert send their rows sorted by key, and modify's
``SELECT`` sorts before it locks, so writers of overlapping keys mostly just wait for each
other. One cycle remains: a modify that creates a key inserts it after locking its existing
keys, while a write may already hold that new key and wait for one of them. PostgreSQL detects
such a deadlock (after ``deadlock_timeout``, 1 s by default) and aborts one transaction; an
aborted transaction (deadlock or serialization failure) runs again, up to ``_MODIFY_ATTEMPTS``
times. A write applies event-time-ordered rows, so running it twice is harmless.

**Reads** are one statement: a ``UNION ALL`` of per-view ``SELECT ... WHERE entity_key =
ANY(%s)``; its text depends only on the views, so psycopg prepares it on the server after a few
uses. Parameters and results travel in binary. A view whose table does not exist reads as
absent keys.

**Threads.** A small pool of autocommit connections: each call takes one, uses it alone and
gives it back; the pool grows to the number of threads that call at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

from pydantic import Field, field_validator

from pitstop.config import OnlineStoreConfig, postgres_url, url_scheme
from pitstop.errors import BackendUnavailableError, PitstopError, require
from pitstop.online.base import (
    Capabilities,
    Change,
    ConnectionPool,
    ReadRow,
    StoredRow,
    newest_per_key,
    rows_to_write,
)

_MAX_NAME = 63  # PostgreSQL's NAMEDATALEN - 1
_ROWS_PER_STATEMENT = 10_000
_SQL_CACHE_SIZE = 1024
_KEY_LOCKS = 32  # at most this many advisory key locks per modify, else one table lock
_MODIFY_ATTEMPTS = 10  # transactions per modify (or aborted write) before giving up


class _Conflict(Exception):
    """A modify's upsert met a row it had not locked: roll back and try again."""


def _upsert(t: str) -> str:
    """Insert the rows of four arrays into table ``t`` (as ``t``), or replace stored rows."""
    return (
        f"INSERT INTO {t} AS t (entity_key, event_ts, created_ts, value) "
        "SELECT * FROM unnest(%b::bytea[], %b::int8[], %b::int8[], %b::bytea[]) "
        "ON CONFLICT (entity_key) DO UPDATE SET event_ts = excluded.event_ts, "
        "created_ts = excluded.created_ts, value = excluded.value"
    )


def _entity_key(row: StoredRow) -> bytes:
    return row.entity_key


def _lock_id(*parts: bytes) -> int:
    """A signed 64-bit advisory lock id for ``parts``."""
    digest = hashlib.blake2b(b"\0".join(parts), digest_size=8, person=b"pitstop-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


def table_name(project: str, view: str) -> str:
    """The (unquoted) table of ``view`` in ``project``."""
    name = f"{project}:{view}"
    raw = name.encode()
    if len(raw) <= _MAX_NAME:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:10]
    return raw[: _MAX_NAME - 11].decode(errors="ignore") + "~" + digest


def quote(name: str) -> str:
    """A quoted identifier, ready for a query with parameters (``%`` doubled)."""
    return '"' + name.replace('"', '""').replace("%", "%%") + '"'


_SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresOnlineConfig(OnlineStoreConfig):
    """PostgreSQL; ``conninfo`` (a postgresql:// URL or libpq ``key=value`` string) overrides
    host/port/database/user/password/sslmode. Tables live in ``db_schema``."""

    type: Literal["postgres"] = "postgres"
    host: str = "localhost"
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = "postgres"
    db_schema: str = "public"
    user: str = "postgres"
    password: str | None = Field(default=None, repr=False)
    sslmode: _SslMode | None = None
    conninfo: str | None = Field(default=None, repr=False)

    @field_validator("conninfo")
    @classmethod
    def _check_conninfo(cls, v: str | None) -> str | None:
        if v and "://" in v and url_scheme(v) not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL or a libpq 'key=value' string")
        return postgres_url(v) if v and "://" in v else v

    def dsn(self) -> str:
        """A libpq connection string (``conninfo`` if given, else a postgresql:// URL)."""
        if self.conninfo:
            return self.conninfo
        host = f"[{self.host}]" if ":" in self.host else url_quote(self.host, safe="")
        auth = url_quote(self.user, safe="")
        auth += "" if self.password is None else ":" + url_quote(self.password, safe="")
        url = f"postgresql://{auth}@{host}:{self.port}/{url_quote(self.database, safe='')}"
        return f"{url}?{urlencode({'sslmode': self.sslmode})}" if self.sslmode else url

    def open(self, project: str, repo_path: Path) -> PostgresOnlineStore:
        return PostgresOnlineStore(self, project, Path(repo_path))


class PostgresOnlineStore:
    """Latest rows in PostgreSQL tables (``online_store: {type: postgres, ...}``)."""

    capabilities = Capabilities(key_ordered_writes=True)

    def __init__(self, config: PostgresOnlineConfig, project: str, repo_path: Path) -> None:
        self.config = config
        self.project = project
        require("psycopg", "postgres")
        import psycopg

        self._psycopg: Any = psycopg
        e = psycopg.errors  # a transaction the server aborted; running it again may succeed
        self._aborted = (e.DeadlockDetected, e.SerializationFailure, e.TransactionRollback)
        self._dsn = config.dsn()
        info = self._psycopg.conninfo.conninfo_to_dict(self._dsn)
        self._where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
        self._schema = quote(config.db_schema)
        where = f"the PostgreSQL online store at {self._where}"
        self._pool = ConnectionPool(self._connect, where, alive=lambda conn: not conn.closed)
        self._created: set[str] = set()
        self._sql: dict[tuple[tuple[str, bool], ...], str] = {}

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        except self._psycopg.OperationalError as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: Exception) -> NoReturn:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailableError(
            f"PostgreSQL at {self._where} is not available ({detail}); check that the server "
            "runs and online_store's host, port, user, password (or conninfo) in "
            "feature_store.yaml"
        ) from None

    def _run(self, work: Any) -> Any:
        """Call ``work(conn)`` on a pooled connection; map a lost server to our error."""
        conn = self._pool.acquire()
        try:
            return work(conn)
        except self._aborted as exc:  # the server is fine
            raise PitstopError(
                f"PostgreSQL at {self._where} aborted a transaction {_MODIFY_ATTEMPTS} times "
                f"({str(exc).strip().splitlines()[0]}); too many writers contend for the same keys"
            ) from exc
        except self._psycopg.OperationalError as exc:
            conn.close()  # broken or in an unknown state: never hand it out again
            self._unavailable(exc)
        finally:
            if not conn.closed:
                self._pool.release(conn)

    def close(self) -> None:
        self._pool.close()

    # -- schema ------------------------------------------------------------------------------

    def _create(self, conn: Any, tables: Iterable[str]) -> None:
        errors = self._psycopg.errors
        for ddl in [f"CREATE SCHEMA IF NOT EXISTS {self._schema}"] + [
            f"CREATE TABLE IF NOT EXISTS {self._schema}.{quote(table)} (entity_key BYTEA "
            "PRIMARY KEY, event_ts BIGINT NOT NULL, created_ts BIGINT NOT NULL, value BYTEA "
            "NOT NULL)"
            for table in tables
        ]:
            # IF NOT EXISTS still races with a concurrent creator: that one won, fine
            with suppress(errors.UniqueViolation, errors.DuplicateObject, errors.DuplicateTable):
                conn.execute(ddl, ())

    def update(self, keep: Sequence[str], drop: Sequence[str]) -> None:
        create = [table_name(self.project, view) for view in keep]

        def work(conn: Any) -> None:
            with conn.transaction():
                self._drop(conn, [table_name(self.project, view) for view in drop])
            self._create(conn, create)
            self._created.update(create)

        self._run(work)

    def teardown(self, views: Sequence[str]) -> None:
        prefix = table_name(self.project, "")

        def work(conn: Any) -> None:
            listed = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s "
                "AND starts_with(tablename, %s)",
                (self.config.db_schema, prefix),
            ).fetchall()
            tables = {table_name(self.project, view) for view in views} | {t for (t,) in listed}
            with conn.transaction():
                self._drop(conn, sorted(tables))

        self._run(work)

    def _drop(self, conn: Any, tables: Sequence[str]) -> None:
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {self._schema}.{quote(table)}", ())
            self._created.discard(table)

    # -- data --------------------------------------------------------------------------------

    def write(self, view: str, rows: Sequence[StoredRow]) -> None:
        if not rows:
            return
        # one row per key (ON CONFLICT cannot touch a row twice), in the lock order (module docs)
        batch = sorted(newest_per_key(list(rows)), key=_entity_key)
        table = table_name(self.project, view)
        t = f"{self._schema}.{quote(table)}"
        sql = (
            f"{_upsert(t)} "
            "WHERE (excluded.event_ts, excluded.created_ts) >= (t.event_ts, t.created_ts)"
        )

        def work(conn: Any) -> None:
            if table not in self._created:
                self._create(conn, [table])
                self._created.add(table)
            for attempt in range(1, _MODIFY_ATTEMPTS + 1):
                try:
                    with conn.transaction():
                        for start in range(0, len(batch), _ROWS_PER_STATEMENT):
                            chunk = batch[start : start + _ROWS_PER_STATEMENT]
                            columns = [list(column) for column in zip(*chunk, strict=True)]
                            conn.execute(sql, columns)
                    return
                except self._aborted:
                    if attempt == _MODIFY_ATTEMPTS:
                        raise

        try:
            self._run(work)
        except self._psycopg.errors.UndefinedTable:  # dropped behind our back: once more
            self._created.discard(table)
            self._run(work)

    def modify(self, view: str, keys: Sequence[bytes], change: Change) -> None:
        if not keys:
            return
        table = table_name(self.project, view)
        t = f"{self._schema}.{quote(table)}"
        select = (
            f"SELECT entity_key, event_ts, value FROM {t} WHERE entity_key = ANY(%b::bytea[]) "
            "ORDER BY entity_key FOR UPDATE"
        )
        upsert = f"{_upsert(t)} WHERE t.entity_key = ANY(%b::bytea[])"
        distinct = list(dict.fromkeys(keys))
        names = (self.config.db_schema.encode(), table.encode())
        if len(distinct) > _KEY_LOCKS:
            locks = [("pg_advisory_xact_lock", [_lock_id(*names)])]
        else:  # sorted: two modifies never wait for each other's locks in a cycle
            key_locks = sorted(_lock_id(*names, key) for key in distinct)
            locks = [
                ("pg_advisory_xact_lock_shared", [_lock_id(*names)]),
                ("pg_advisory_xact_lock", key_locks),
            ]
        errors = self._psycopg.errors

        def attempt(conn: Any) -> None:
            if table not in self._created:
                self._create(conn, [table])
                self._created.add(table)
            with conn.transaction():
                for function, ids in locks:
                    sql = f"SELECT count({function}(id)) FROM unnest(%b::int8[]) AS id"
                    conn.execute(sql, [ids])  # unnest keeps the array's order
                found = {
                    key: ReadRow(event_ts, value)
                    for key, event_ts, value in conn.execute(select, [distinct], binary=True)
                }
                rows = rows_to_write(keys, change([found.get(key) for key in keys]))
                last = {row.entity_key: row for row in rows}  # a key's last row
                batch = sorted(last.values(), key=_entity_key)  # the lock order
                for start in range(0, len(batch), _ROWS_PER_STATEMENT):
                    chunk = batch[start : start + _ROWS_PER_STATEMENT]
                    columns = [list(column) for column in zip(*chunk, strict=True)]
                    locked = [row.entity_key for row in chunk if row.entity_key in found]
                    cursor = conn.execute(upsert, [*columns, locked])
                    if cursor.rowcount != len(chunk):  # a plain write inserted a key meanwhile
                        raise _Conflict

        def work(conn: Any) -> None:
            for _ in range(_MODIFY_ATTEMPTS):
                try:
                    attempt(conn)
                    return
                except (_Conflict, *self._aborted):
                    continue
            raise PitstopError(
                f"modify of view {view!r} in PostgreSQL: concurrent writes to its "
                f"{len(distinct)} entity key(s) conflicted {_MODIFY_ATTEMPTS} times; gave up"
            )

        try:
            self._run(work)
        except errors.UndefinedTable:  # dropped behind our back: once more
            self._created.discard(table)
            self._run(work)

    def newest_event_ts(self, views: Sequence[str]) -> dict[str, int | None]:
        names = {view: table_name(self.project, view) for view in views}

        def work(conn: Any) -> dict[str, int | None]:
            existing = {
                name
                for (name,) in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = "
                    "ANY(%s)", (self.config.db_schema, list(names.values())),
                )
            }  # fmt: skip
            found: dict[str, int | None] = dict.fromkeys(views)
            for view, name in names.items():
                if name in existing:
                    sql = f"SELECT max(event_ts) FROM {self._schema}.{quote(name)}"
                    (found[view],) = conn.execute(sql, ()).fetchone()
            return found

        result: dict[str, int | None] = self._run(work)
        return result

    def read(self, requests: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[ReadRow | None]]:
        if not requests:
            return []
        rows = self._run(lambda conn: self._rows(conn, requests))
        found: list[dict[bytes, ReadRow]] = [{} for _ in requests]
        for pos, key, event_ts, value in rows:
            found[pos][key] = ReadRow(event_ts, value)
        return [[f.get(key) for key in keys] for f, (_, keys) in zip(found, requests, strict=True)]

    def _rows(
        self, conn: Any, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[tuple[int, bytes, int, bytes]]:
        """The stored rows of ``requests``, tagged with the request's position."""
        shape = tuple((view, len(keys) == 1) for view, keys in requests)
        sql = self._sql.get(shape) or self._select(shape)
        params = [keys[0] if len(keys) == 1 else list(keys) for _, keys in requests]
        try:
            return conn.execute(sql, params, binary=True).fetchall()
        except self._psycopg.errors.UndefinedTable:
            pass
        names = [table_name(self.project, view) for view, _ in requests]
        existing = {
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
                (self.config.db_schema, names),
            )
        }
        present = [i for i, name in enumerate(names) if name in existing]
        if not present or len(present) == len(requests):  # nothing to read, or created just now
            return [] if not present else self._rows(conn, requests)
        rows = self._rows(conn, [requests[i] for i in present])
        return [(present[pos], key, ts, value) for pos, key, ts, value in rows]

    def _select(self, shape: tuple[tuple[str, bool], ...]) -> str:
        parts = [
            f"SELECT {pos}, entity_key, event_ts, value FROM {self._schema}."
            f"{quote(table_name(self.project, view))} WHERE entity_key = "
            + ("%b" if single else "ANY(%b::bytea[])")  # one key: no array to build and scan
            for pos, (view, single) in enumerate(shape)
        ]
        if len(self._sql) >= _SQL_CACHE_SIZE:
            self._sql.clear()
        sql = self._sql[shape] = " UNION ALL ".join(parts)
        return sql
