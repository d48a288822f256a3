"""The SQL databases the registry runs on, and what differs between them.

:class:`Dialect` declares, as data, everything the registry's SQL needs to know about a database:
placeholder style, column types, how a serialised write transaction is opened, how timestamps
travel, and which driver errors are worth retrying. :class:`Database` is a thin wrapper over one
DB-API connection that runs statements through its dialect, retries busy write transactions, and
turns driver errors into pitstop errors. :func:`connect` opens one from a URL:

- ``sqlite:///abs/path.db`` — stdlib :mod:`sqlite3`, WAL mode, busy timeout, ``BEGIN IMMEDIATE``;
- ``postgresql://user@host:port/db[?options=-csearch_path%3Dschema]`` — psycopg 3, imported only
  here and only when such a URL is opened; writes serialise on ``pg_advisory_xact_lock``.

Both databases accept the same ``INSERT ... ON CONFLICT ... DO UPDATE`` upsert (SQLite >= 3.24),
so upserts need no entry here.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pitstop.errors import BackendUnavailableError, ConfigError, RegistryError, require

T = TypeVar("T")

#: How long a writer keeps retrying a busy database before giving up, in seconds.
WRITE_DEADLINE_S = 60.0
_SQLITE_BUSY_TIMEOUT_S = 30.0
_PG_CONNECT_TIMEOUT_S = 10


def _sqlite_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _postgres_retryable(exc: BaseException) -> bool:
    # serialization_failure, deadlock_detected
    return getattr(exc, "sqlstate", None) in {"40001", "40P01"}


@dataclass(frozen=True)
class Dialect:
    """What the registry's SQL needs to know about one database."""

    name: str
    param: str  # placeholder; statements are written with "?" and translated
    integer: str
    timestamp: str
    boolean: str
    begin_write: tuple[str, ...]  # opens a serialised write transaction; "?" binds the lock key
    timestamps_as_text: bool  # store ISO-8601 UTC text instead of a native timestamp
    retryable: Callable[[BaseException], bool]

    def sql(self, statement: str) -> str:
        """Translate a statement written with ``?`` placeholders to this dialect."""
        return statement if self.param == "?" else statement.replace("?", self.param)

    def encode_ts(self, value: datetime) -> object:
        """A tz-aware datetime as this database stores it (always UTC)."""
        value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds") if self.timestamps_as_text else value

    @staticmethod
    def decode_ts(value: object) -> datetime:
        """A stored timestamp as a tz-aware UTC datetime."""
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(parsed, datetime):
            raise RegistryError(f"registry holds an invalid timestamp: {value!r}")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


SQLITE = Dialect(
    name="sqlite",
    param="?",
    integer="INTEGER",
    timestamp="TEXT",
    boolean="INTEGER",
    begin_write=("BEGIN IMMEDIATE",),
    timestamps_as_text=True,
    retryable=_sqlite_retryable,
)

POSTGRES = Dialect(
    name="postgresql",
    param="%s",
    integer="BIGINT",
    timestamp="TIMESTAMPTZ",
    boolean="BOOLEAN",
    begin_write=("BEGIN", "SELECT pg_advisory_xact_lock(hashtext(?))"),
    timestamps_as_text=False,
    retryable=_postgres_retryable,
)


class Database:
    """One connection, its dialect, and error translation. Not thread-safe on its own."""

    def __init__(
        self,
        raw: Any,
        dialect: Dialect,
        where: str,
        *,
        unavailable: tuple[type[BaseException], ...] = (),
        driver_error: type[BaseException] = sqlite3.Error,
    ) -> None:
        self.raw = raw  # a DB-API connection in autocommit mode
        self.dialect = dialect
        self.where = where  # "SQLite file /x.db" or "PostgreSQL at host:port"; never secrets
        self._unavailable = unavailable
        self._driver_error = driver_error
        self._in_transaction = False

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self._driver_error as exc:
            if self._in_transaction and self.dialect.retryable(exc):
                raise  # transaction() retries it
            if isinstance(exc, self._unavailable) and self._lost():
                raise BackendUnavailableError(
                    f"Lost the connection to the registry ({self.where}): {_first_line(exc)}. "
                    "Check that the server is running and reachable."
                ) from exc
            raise RegistryError(
                f"Registry operation failed ({self.where}): {_first_line(exc)}"
            ) from exc

    def _lost(self) -> bool:
        return bool(getattr(self.raw, "broken", False) or getattr(self.raw, "closed", False))

    def query(self, statement: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return all its rows."""
        with self._translated():
            cursor = self.raw.execute(self.dialect.sql(statement), tuple(params))
            return list(cursor.fetchall()) if cursor.description else []

    def execute(self, statement: str, params: Sequence[object] = ()) -> None:
        """Run one statement, ignoring any rows."""
        with self._translated():
            self.raw.execute(self.dialect.sql(statement), tuple(params))

    def executemany(self, statement: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement once per parameter row."""
        if not rows:
            return
        with self._translated():
            cursor = self.raw.cursor()
            try:
                cursor.executemany(self.dialect.sql(statement), [tuple(r) for r in rows])
            finally:
                cursor.close()

    def transaction(self, work: Callable[[], T], lock_key: str) -> T:
        """Run ``work`` in one write transaction serialised on ``lock_key``; retry when busy.

        ``work`` may run more than once, so it must only touch the database and local state.
        """
        deadline = time.monotonic() + WRITE_DEADLINE_S
        delay = 0.01
        while True:
            self._in_transaction = True
            try:
                for statement in self.dialect.begin_write:
                    self.execute(statement, (lock_key,) if "?" in statement else ())
                result = work()
                self.execute("COMMIT")
                return result
            except BaseException as exc:
                self._rollback_quietly()
                if not self.dialect.retryable(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise RegistryError(
                        f"The registry ({self.where}) stayed busy for {WRITE_DEADLINE_S:.0f} s; "
                        "another process holds a long write transaction. Try again."
                    ) from exc
            finally:
                self._in_transaction = False
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)

    def _rollback_quietly(self) -> None:
        with suppress(Exception):  # no transaction open, or the connection is gone
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.raw.close()


def connect(url: str) -> Database:
    """Open the database a registry URL names."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(
            "Registry URL must look like 'sqlite:///abs/path.db' or "
            f"'postgresql://user@host:port/db'; got something without '://' ({scheme[:20]!r})."
        )
    if scheme == "sqlite":
        return _connect_sqlite(url[len("sqlite://") :])
    if scheme in {"postgresql", "postgres"}:
        return _connect_postgres(url)
    raise ConfigError(
        f"Unsupported registry URL scheme {scheme!r}; use 'sqlite:///abs/path.db' or "
        "'postgresql://user@host:port/db'."
    )


def _connect_sqlite(path: str) -> Database:
    if not path:
        raise ConfigError("SQLite registry URL has no path; use 'sqlite:///abs/path.db'.")
    if path.startswith("//"):  # sqlite:////abs/path.db, the form the config writes
        path = "/" + path.lstrip("/")
    if path != ":memory:":
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"Cannot create the directory {parent!r} for the SQLite registry {path!r}: "
                f"{exc.strerror or exc}. Choose a writable path."
            ) from exc
    try:
        raw = sqlite3.connect(
            path, timeout=_SQLITE_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise RegistryError(
            f"Cannot open the SQLite registry {path!r}: {exc}. "
            "Check that the path names a writable file."
        ) from exc
    db = Database(raw, SQLITE, f"SQLite file {path!r}")
    try:
        _retry_busy(lambda: raw.execute("PRAGMA journal_mode=WAL").fetchall(), db)
    except BaseException:
        raw.close()
        raise
    return db


def _retry_busy(action: Callable[[], object], db: Database) -> None:
    deadline = time.monotonic() + WRITE_DEADLINE_S
    while True:
        try:
            action()
            return
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
                raise RegistryError(
                    f"The registry ({db.where}) is not a SQLite database; it may be a registry "
                    "Feast wrote (a protobuf file of the same default name). Point `registry:` "
                    "in feature_store.yaml at another file, or move this one away, then run "
                    "`pitstop apply` to register the repo's definitions."
                ) from exc
            if not db.dialect.retryable(exc) or time.monotonic() >= deadline:
                raise RegistryError(f"Cannot prepare the registry ({db.where}): {exc}") from exc
        time.sleep(0.02 * (1 + random.random()))


def _connect_postgres(url: str) -> Database:
    psycopg: Any = require("psycopg", "postgres")
    try:
        info: dict[str, str] = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ConfigError(
            "Invalid PostgreSQL registry URL; expected "
            "'postgresql://user@host:port/db[?options=-csearch_path%3Dschema]'."
        ) from exc
    where = f"PostgreSQL at {info.get('host') or 'localhost'}:{info.get('port') or '5432'}"
    kwargs: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in info:
        kwargs["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
    try:
        raw = psycopg.connect(url, **kwargs)
    except psycopg.Error as exc:
        detail = _first_line(exc)
        password = info.get("password")
        if password:
            detail = detail.replace(password, "***")
        raise BackendUnavailableError(
            f"Cannot connect to the registry ({where}, database {info.get('dbname', '?')!r}, "
            f"user {info.get('user', '?')!r}): {detail}. Check that the server is running and "
            "accepts connections at that address, and that the URL's user and database exist."
        ) from exc
    return Database(
        raw, POSTGRES, where, unavailable=(psycopg.OperationalError,), driver_error=psycopg.Error
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
