"""Versioned storage of registry objects, over SQLite or PostgreSQL.

The store knows nothing of what objects mean: each is ``(kind, name, spec)`` with a
JSON-serialisable ``spec`` dict (only the search index it keeps reads specs, for their words).
Every change appends an immutable version; nothing ever updates or deletes a version row
(except :meth:`RegistryStore.teardown`). Example::

    with RegistryStore.open("sqlite:///tmp/registry.db", project="demo") as store:
        store.apply([("entity", "driver", {"join_keys": ["driver_id"]})])
        store.live()["entity"]["driver"].version  # -> 1

Tables (shared by all projects, rows keyed by project):

- ``pitstop_versions(project, kind, name, version, spec, spec_hash, author, applied_at, deleted)``,
  primary key ``(project, kind, name, version)``; ``spec`` is compact JSON text (NULL for a
  deletion marker); ``spec_hash`` is the sha256 of the canonical JSON (sorted keys).
- ``pitstop_meta(project, key, value)`` — small key/value pairs.
- ``pitstop_projects(project, serial)`` — bumped by every write that changes something.
- ``pitstop_search`` — the full-text index of live objects (:mod:`pitstop.registry.search_index`),
  written in the transaction of the versions it describes.
- ``pitstop_staged``, ``pitstop_promotions`` — which versions are staged and which were
  promoted: together with the versions they decide the *served* version of each object, the
  one :meth:`RegistryStore.live` returns (:mod:`pitstop.registry.serving`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

from pitstop.errors import NotFoundError, RegistryError, suggest
from pitstop.registry import audit, search_index, serving
from pitstop.registry.records import (
    COLUMNS,
    ApplyResult,
    Deletes,
    Live,
    Promotion,
    Put,
    Puts,
    VersionRecord,
    applied,
    default_author,
    prepare,
    prepare_all,
    record_of,
)
from pitstop.registry.serving import SERVED, STAGED
from pitstop.registry.specs import MISSING, SpecChange, canonical_hash, diff_specs
from pitstop.registry.sqldialect import Database, Dialect, connect

__all__ = [
    "MISSING",
    "ApplyResult",
    "Deletes",
    "Live",
    "Promotion",
    "Puts",
    "RegistryStore",
    "SpecChange",
    "VersionRecord",
    "canonical_hash",
    "default_author",
    "diff_specs",
]

T = TypeVar("T")


@dataclass(frozen=True)
class _Head:
    version: int
    spec_hash: str
    deleted: bool


_LATEST = (
    "v.version = (SELECT MAX(w.version) FROM pitstop_versions w"
    " WHERE w.project = v.project AND w.kind = v.kind AND w.name = v.name)"
)


def _ddl(d: Dialect) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS pitstop_versions ("
        " project TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
        f" version {d.integer} NOT NULL, spec TEXT, spec_hash TEXT NOT NULL,"
        f" author TEXT NOT NULL, applied_at {d.timestamp} NOT NULL, deleted {d.boolean} NOT NULL,"
        " PRIMARY KEY (project, kind, name, version))",
        "CREATE INDEX IF NOT EXISTS pitstop_versions_by_name ON pitstop_versions (project, name)",
        "CREATE TABLE IF NOT EXISTS pitstop_meta ("
        " project TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
        " PRIMARY KEY (project, key))",
        "CREATE TABLE IF NOT EXISTS pitstop_projects ("
        f" project TEXT NOT NULL PRIMARY KEY, serial {d.integer} NOT NULL)",
        *search_index.ddl(d),
        *audit.ddl(d),
        *serving.ddl(d),
    ]


class RegistryStore:
    """Versioned ``(kind, name, spec)`` objects of one project. Thread-safe; one connection."""

    def __init__(self, db: Database, project: str) -> None:
        self._db = db
        self.project = project
        self._lock = threading.RLock()
        self._closed = False

    @classmethod
    def open(cls, url: str, project: str) -> RegistryStore:
        """Open (creating tables if missing) the registry at ``url`` for ``project``.

        ``url`` is ``sqlite:///abs/path.db`` or ``postgresql://user@host:port/db``; add
        ``?options=-csearch_path%3Dschema`` to use a PostgreSQL schema.
        """
        if not isinstance(project, str) or not project:
            raise RegistryError(f"Registry project must be a non-empty string, got {project!r}.")
        db = connect(url)

        def create_tables() -> None:
            for statement in _ddl(db.dialect):
                db.execute(statement)

        try:  # serialised on a database-wide lock: several processes may open a fresh database
            db.transaction(create_tables, "pitstop:schema")
        except RegistryError as exc:
            db.close()
            raise RegistryError(
                f"Cannot create the registry tables. {exc}. Check that the user may create tables "
                "there (PostgreSQL: that the schema in the URL's search_path exists)."
            ) from exc
        except BaseException:
            db.close()
            raise
        return cls(db, project)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; further calls fail. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> RegistryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._closed:
                raise RegistryError(f"The registry store of project {self.project!r} is closed.")
            return fn()

    def _query(self, statement: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        return self._run(lambda: self._db.query(statement, params))

    def _write(self, work: Callable[[], T]) -> T:
        return self._run(lambda: self._db.transaction(work, f"pitstop.registry:{self.project}"))

    # -- writes ------------------------------------------------------------------------------

    def apply(
        self,
        puts: Puts,
        deletes: Deletes = (),
        *,
        author: str | None = None,
        stage: bool = False,
    ) -> ApplyResult:
        """Store new versions of changed objects and deletion markers, in one transaction.

        An object whose served version has the same canonical hash is unchanged; one whose
        newest version has it (a staged version) has that version served, with no new one.
        Deleting an unknown or already deleted object is a no-op. ``stage=True`` writes the
        new versions *staged*: the served versions stay as they are until :meth:`promote`
        (a staged apply deletes nothing).
        """
        prepared = prepare_all(puts, deletes)
        who = author or default_author()

        def work() -> ApplyResult:
            result = self._apply(prepared, list(deletes), who, stage=stage)
            audit.append(self._db, self.project, applied(result, stage=stage))
            return result

        return self._write(work)

    def apply_planned(
        self,
        decide: Callable[[Live], tuple[Puts, Deletes, T]],
        *,
        author: str | None = None,
        stage: bool = False,
    ) -> tuple[T, ApplyResult]:
        """Read the live objects, let ``decide`` choose what to write, and write it: all in one
        write transaction, so concurrent callers run one after the other and each decides on
        the state its own write replaces.

        ``decide(live)`` returns ``(puts, deletes, anything)``; the last item is handed back with
        the :class:`ApplyResult`. It may run more than once (when the database is busy), and an
        error it raises rolls the transaction back with nothing written. ``stage`` as in
        :meth:`apply`.
        """
        who = author or default_author()

        def work() -> tuple[T, ApplyResult]:
            served = self._served()
            puts, deletes, extra = decide(serving.live_of(served))
            prepared = prepare_all(puts, deletes)
            result = self._apply(prepared, list(deletes), who, stage=stage, served=served)
            audit.append(self._db, self.project, applied(result, stage=stage))
            return extra, result

        return self._write(work)

    def _apply(
        self,
        puts: list[Put],
        deletes: list[tuple[str, str]],
        author: str,
        *,
        stage: bool,
        served: dict[tuple[str, str], VersionRecord] | None = None,
    ) -> ApplyResult:
        if stage and deletes:
            raise RegistryError(
                "A staged apply deletes nothing; apply without stage to remove "
                f"{', '.join(f'{k} {n!r}' for k, n in deletes)}."
            )
        now = datetime.now(UTC)
        heads = self._heads()
        served = self._served() if served is None else served
        result = ApplyResult()
        rows: list[tuple[VersionRecord, str | None]] = []
        promoted: list[VersionRecord] = []
        for p in puts:
            key = (p.kind, p.name)
            head, current = heads.get(key), served.get(key)
            if current is not None and current.deleted:
                current = None
            if current is not None and current.spec_hash == p.spec_hash:
                result.unchanged.append(key)
                continue
            done = result.updated if current is not None else result.created
            if head is not None and not head.deleted and head.spec_hash == p.spec_hash:
                if stage:  # already the newest version, staged: nothing to add
                    result.unchanged.append(key)
                else:  # serve that version rather than repeat it
                    rec = replace(self._version(p.kind, p.name, head.version), status=SERVED)
                    promoted.append(rec)
                    done.append(rec)
                continue
            version = head.version + 1 if head else 1
            spec = json.loads(p.text)
            rec = VersionRecord(p.kind, p.name, version, spec, p.spec_hash, author, now, False,
                                STAGED if stage else SERVED)  # fmt: skip
            (result.staged if stage else done).append(rec)
            rows.append((rec, p.text))
        for kind, name in deletes:
            current = served.get((kind, name))
            if current is None or current.deleted:
                continue
            version = heads[(kind, name)].version + 1
            rec = VersionRecord(kind, name, version, None, "", author, now, True)
            result.deleted.append(rec)
            rows.append((rec, None))
        self._insert(rows, staged=stage, promoted=promoted, author=author, at=now)
        if not heads and rows:  # a new project: its index is complete from the first write
            search_index.mark_built(self._db, self.project)
        return result

    def rollback(
        self, name: str, version: int, kind: str | None = None, *, author: str | None = None
    ) -> VersionRecord:
        """Write a new version whose spec is that of ``version``, served; history stays
        immutable.

        Rolling back to the served spec is a no-op returning the served record; rolling a
        deleted object back revives it. A staged version (never served) is promoted, not
        rolled back to.
        """
        target = self._target(name, version, kind, "roll back to")
        if target.status == STAGED:
            raise RegistryError(
                f"Version {version} of {target.kind} {name!r} is staged and was never served; "
                f"serve it with `pitstop promote {name} {version}` (store.promote)."
            )
        spec = target.spec or {}
        who = author or default_author()

        def work() -> VersionRecord:
            latest = self._history(target.kind, name)[-1]
            current = self._serving(target.kind, name)
            objects = [{"kind": target.kind, "name": name, "version": (current or latest).version,
                        "from_version": version}]  # fmt: skip
            if current is not None and current.spec_hash == target.spec_hash:
                entry = audit.Entry("rollback", objects, detail="already current")
                audit.append(self._db, self.project, entry)
                return current
            p = prepare(target.kind, name, spec)
            now = datetime.now(UTC)
            rec = VersionRecord(
                target.kind, name, latest.version + 1, spec, p.spec_hash, who, now, False, SERVED
            )
            self._insert([(rec, p.text)], at=now)
            objects[0]["version"] = rec.version
            audit.append(self._db, self.project, audit.Entry("rollback", objects))
            return rec

        return self._write(work)

    def promote(
        self, name: str, version: int, kind: str | None = None, *, author: str | None = None
    ) -> Promotion:
        """Serve ``version`` of an object from now on: a staged version, or an earlier one
        again; no version is written. Promoting the served version is a no-op."""
        target = self._target(name, version, kind, "promote")
        who = author or default_author()

        def work() -> Promotion:
            previous = self._serving(target.kind, name)
            entry = {"kind": target.kind, "name": name, "version": version,
                     "from_version": previous.version if previous else None}  # fmt: skip
            record = replace(target, status=SERVED)
            if previous is not None and previous.version == version:
                audit.append(self._db, self.project,
                             audit.Entry("promote", [entry], detail="already served"))  # fmt: skip
                return Promotion(record, previous)
            self._insert([], promoted=[record], author=who, at=datetime.now(UTC))
            audit.append(self._db, self.project, audit.Entry("promote", [entry]))
            return Promotion(record, previous)

        return self._write(work)

    def _target(self, name: str, version: int, kind: str | None, verb: str) -> VersionRecord:
        """A version with a spec, to roll back to or promote."""
        target = self.get_version(name, version, kind)
        if target.deleted or target.spec is None:
            raise RegistryError(
                f"Version {version} of {target.kind} {name!r} is a deletion marker; "
                f"{verb} a version that has a spec."
            )
        return target

    def _serving(self, kind: str, name: str) -> VersionRecord | None:
        """The served version of one object; None when it serves nothing."""
        found = self._served(kind, name).get((kind, name))
        return None if found is None or found.deleted else found

    def set_meta(self, key: str, value: str) -> None:
        """Set a small per-project key/value pair (does not bump :meth:`serial`)."""
        self._write(
            lambda: self._db.execute(
                "INSERT INTO pitstop_meta (project, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (project, key) DO UPDATE SET value = excluded.value",
                (self.project, key, value),
            )
        )

    def teardown(self) -> None:
        """Delete every object and version of this project (other projects are untouched);
        serial restarts. The audit trail is kept, with a record of the teardown."""

        def work() -> None:
            live = self._live()
            for table in ("pitstop_versions", "pitstop_projects"):
                self._db.execute(f"DELETE FROM {table} WHERE project = ?", (self.project,))
            self._db.execute(  # the audit trail, and its head, outlive the objects
                "DELETE FROM pitstop_meta WHERE project = ? AND key <> ?",
                (self.project, audit.HEAD_KEY),
            )
            search_index.clear(self._db, self.project)
            serving.clear(self._db, self.project)
            gone = [{"kind": r.kind, "name": r.name, "version": r.version}
                    for by in live.values() for r in by.values()]  # fmt: skip
            audit.append(self._db, self.project, audit.Entry("teardown", gone))

        self._write(work)

    def _insert(
        self,
        records: list[tuple[VersionRecord, str | None]],
        *,
        staged: bool = False,
        promoted: Sequence[VersionRecord] = (),
        author: str = "",
        at: datetime,
    ) -> None:
        """Append versions (with their spec JSON text; ``staged``: as staged versions) and
        promotions of existing ones, at ``at``, and bump the serial."""
        if not records and not promoted:
            return
        p, ts = self.project, self._db.dialect.encode_ts
        rows = []
        for r, text in records:
            rows.append((p, r.kind, r.name, r.version, text, r.spec_hash, r.author,
                         ts(r.applied_at), r.deleted))  # fmt: skip
        if rows:
            self._db.executemany(
                f"INSERT INTO pitstop_versions (project, {COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        if staged:
            serving.mark_staged(self._db, p, [(r.kind, r.name, r.version) for r, _ in records])
        serving.promote(self._db, p, [(r.kind, r.name, r.version) for r in promoted], author,
                        ts(at))  # fmt: skip
        self._db.execute(
            "INSERT INTO pitstop_projects (project, serial) VALUES (?, 1)"
            " ON CONFLICT (project) DO UPDATE SET serial = pitstop_projects.serial + 1",
            (self.project,),
        )
        served = [] if staged else [r for r, _ in records]
        changed = [(r.kind, r.name, None if r.deleted else r.spec) for r in [*served, *promoted]]
        search_index.write(self._db, self.project, changed)

    # -- audit --------------------------------------------------------------------------------

    def append_audit(self, *entries: audit.Entry) -> list[audit.AuditRecord]:
        """Append ``entries`` to the project's audit trail (one transaction of their own)."""
        return self._write(lambda: audit.append_many(self._db, self.project, entries))

    def audit_records(
        self, *, since: datetime | None = None, principal: str | None = None
    ) -> list[audit.AuditRecord]:
        """The project's audit records, oldest first."""
        return self._run(lambda: audit.read(self._db, self.project, since=since,
                                            principal=principal))  # fmt: skip

    def verify_audit(self) -> audit.Verification:
        """Recompute the audit trail's hash chain (see :func:`pitstop.registry.audit.verify`)."""
        return self._run(lambda: audit.verify(self._db, self.project))

    # -- search --------------------------------------------------------------------------------

    @property
    def index(self) -> search_index.SearchIndex:
        """Full-text queries over this project's live objects (see :meth:`ensure_index`)."""
        return search_index.SearchIndex(self._query, self._db.dialect, self.project)

    def ensure_index(self) -> None:
        """Build the search index of this project if it was never built by this version of
        the index (a registry written before the index existed); cheap when it was."""
        if self.get_meta(search_index.META_KEY) == search_index.INDEX_VERSION:
            return

        def work() -> None:
            live = self._live()
            objects = [(k, n, r.spec) for k, by in live.items() for n, r in by.items()]
            search_index.rebuild(self._db, self.project, objects)  # type: ignore[arg-type]

        self._write(work)

    # -- reads -------------------------------------------------------------------------------

    def live(self) -> Live:
        """``kind -> name -> served version`` of every live object (one consistent read)."""
        return self._run(self._live)

    def _live(self, until: object = None) -> Live:
        return serving.live_of(self._served(until=until))

    def _served(
        self, kind: str | None = None, name: str | None = None, until: object = None
    ) -> dict[tuple[str, str], VersionRecord]:
        """Each object's served version row (or one's), deletion markers included, as of now
        or of the stored time ``until``."""
        return serving.served(self._db, self.project, kind=kind, name=name, until=until)

    def live_at(self, version: int) -> Live:
        """The live objects as the project's ``version``-th change left them (the registry
        version; the current one is :meth:`serial`): the versions served then."""
        when = self._version_time(version)
        return self._run(lambda: self._live(until=when))

    def _version_time(self, version: int) -> object:
        """When the ``version``-th change of the project was written (as stored): every
        change writes all its rows with one time, so the changes are the distinct times."""
        rows = self._query(
            f"{serving.CHANGE_TIMES} LIMIT 1 OFFSET ?",
            (self.project, self.project, max(version - 1, 0)),
        )
        if version < 1 or not rows:
            raise NotFoundError(
                f"Project {self.project!r} has no registry version {version}; its versions are "
                f"1..{self.serial()} (the current one is the last)."
            )
        return rows[0][0]

    def serial(self) -> int:
        """A counter bumped by every write that changes objects; 0 for an empty project."""
        rows = self._query("SELECT serial FROM pitstop_projects WHERE project = ?", (self.project,))
        return int(rows[0][0]) if rows else 0

    def get_meta(self, key: str) -> str | None:
        """The value :meth:`set_meta` stored under ``key``, or None."""
        rows = self._query(
            "SELECT value FROM pitstop_meta WHERE project = ? AND key = ?", (self.project, key)
        )
        return str(rows[0][0]) if rows else None

    def history(self, name: str, kind: str | None = None) -> list[VersionRecord]:
        """Every version of an object, oldest first, deletion markers included; the served
        one has status ``"served"``, staged ones ``"staged"``."""
        return self._history(self._resolve_kind(name, kind), name)

    def kinds_of(self, name: str) -> list[str]:
        """The kinds of the objects called ``name`` (served, staged or deleted), the kind with
        the newest version first."""
        rows = self._query(
            "SELECT kind, MAX(applied_at) FROM pitstop_versions WHERE project = ? AND name = ?"
            " GROUP BY kind",
            (self.project, name),
        )
        return [str(k) for k, _ in sorted(rows, key=lambda r: (str(r[1]), r[0]), reverse=True)]

    def get_version(self, name: str, version: int, kind: str | None = None) -> VersionRecord:
        """One version of an object."""
        history = self.history(name, kind)
        for rec in history:
            if rec.version == version:
                return rec
        raise NotFoundError(
            f"{history[0].kind} {name!r} in project {self.project!r} has no version {version}; "
            f"its versions are 1..{history[-1].version}."
        )

    def diff(self, name: str, v1: int, v2: int, kind: str | None = None) -> list[SpecChange]:
        """Structural changes from version ``v1`` to ``v2`` (a deletion marker diffs as ``{}``)."""
        kind = self._resolve_kind(name, kind)
        a = self.get_version(name, v1, kind)
        b = self.get_version(name, v2, kind)
        return diff_specs(a.spec or {}, b.spec or {})

    def _history(self, kind: str, name: str) -> list[VersionRecord]:
        def read() -> tuple[list[tuple[Any, ...]], VersionRecord | None, set[int]]:
            rows = self._db.query(
                f"SELECT {COLUMNS} FROM pitstop_versions"
                " WHERE project = ? AND kind = ? AND name = ? ORDER BY version",
                (self.project, kind, name),
            )
            served = self._served(kind, name).get((kind, name))
            return rows, served, serving.staged_versions(self._db, self.project, kind, name)

        rows, served, staged = self._run(read)
        if not rows:
            raise NotFoundError(f"No {kind} named {name!r} in project {self.project!r}.")
        on = served.version if served is not None and not served.deleted else None
        return [record_of(row, SERVED if row[2] == on else STAGED if row[2] in staged else "")
                for row in rows]  # fmt: skip

    def _version(self, kind: str, name: str, version: int) -> VersionRecord:
        rows = self._db.query(
            f"SELECT {COLUMNS} FROM pitstop_versions"
            " WHERE project = ? AND kind = ? AND name = ? AND version = ?",
            (self.project, kind, name, version),
        )
        return record_of(rows[0])

    def _resolve_kind(self, name: str, kind: str | None) -> str:
        """The kind of the object called ``name``; errors if none or (without kind) several."""
        rows = self._query(
            "SELECT DISTINCT kind FROM pitstop_versions WHERE project = ? AND name = ?",
            (self.project, name),
        )
        kinds = sorted(str(k) for (k,) in rows)
        if kind is not None and kind in kinds:
            return kind
        if kind is None and len(kinds) == 1:
            return kinds[0]
        if kind is None and kinds:
            raise RegistryError(
                f"{name!r} names several kinds of object in project {self.project!r}: "
                f"{', '.join(kinds)}. Pass kind= to choose one."
            )
        where, params = ("", ()) if kind is None else (" AND kind = ?", (kind,))
        names = self._query(
            f"SELECT DISTINCT name FROM pitstop_versions WHERE project = ?{where}",
            (self.project, *params),
        )
        also = f" ({name!r} exists as {', '.join(kinds)}.)" if kinds else ""
        raise NotFoundError(
            f"No {kind or 'registry object'} named {name!r} in project {self.project!r}."
            f"{suggest(name, [str(n) for (n,) in names])}{also}"
        )

    def _heads(self) -> dict[tuple[str, str], _Head]:
        rows = self._db.query(
            "SELECT kind, name, version, spec_hash, deleted FROM pitstop_versions v"
            f" WHERE v.project = ? AND {_LATEST}",
            (self.project,),
        )
        return {(k, n): _Head(int(v), h, bool(d)) for k, n, v, h, d in rows}
