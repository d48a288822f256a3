"""The audit trail: an append-only, hash-chained log of what was done to a project.

Every apply, rollback and teardown appends a record in the transaction that makes the change
(so a change without its record, or a record without its change, cannot be committed);
materializations, pushes, denied requests and policy changes append one of their own. A record
says who (``principal``), what (``action``), which objects and versions, when (``at``, UTC),
from where (``origin``) and the ``outcome`` (``ok``, ``denied``, ``error``).

``pitstop_audit(project, seq, at, principal, origin, action, objects, outcome, detail,
prev_hash, hash)``: ``seq`` counts 1, 2, 3... per project; ``hash`` is the sha256 of the
record's canonical JSON, which includes ``prev_hash``, the hash of record ``seq - 1``; the
newest hash is also kept in ``pitstop_meta`` (``audit_head``). :func:`verify` recomputes the
chain: an edited record breaks its own hash, a deleted one breaks the sequence or the link
of the next, a deleted newest one disagrees with the head. Whoever can rewrite the whole
table and the head can forge a consistent log; keep the head ``verify`` prints somewhere else
to catch that too. Teardown does not remove the trail.

Who and where default to the OS user and this host; front ends set them per call with
:func:`acting_as`::

    with acting_as(Actor("api-key:3f2a9c", "http 10.0.0.7")):
        store.push(...)
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pitstop.registry.sqldialect import Database, Dialect

logger = logging.getLogger("pitstop.audit")
HEAD_KEY = "audit_head"
OUTCOMES = ("ok", "denied", "error")


@dataclass(frozen=True)
class Actor:
    """Who acts, from where, and the roles a verified token gave them."""

    principal: str
    origin: str
    roles: tuple[str, ...] = ()


@functools.cache
def _default_actor() -> Actor:
    from pitstop.registry.records import default_author

    return Actor(default_author(), f"sdk@{socket.gethostname()}")


_ACTOR: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("pitstop_actor", default=None)


def current_actor() -> Actor:
    """The actor of this call (see :func:`acting_as`), else the OS user on this host."""
    return _ACTOR.get() or _default_actor()


def set_actor(actor: Actor) -> None:
    """Attribute what this thread or task does from now on to ``actor`` (a command line)."""
    _ACTOR.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Attribute what this block does (in this thread or task) to ``actor``."""
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the trail."""

    seq: int
    at: datetime
    principal: str
    origin: str
    action: str
    objects: tuple[dict[str, Any], ...]
    outcome: str
    detail: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.isoformat(), "principal": self.principal,
                "origin": self.origin, "action": self.action, "objects": list(self.objects),
                "outcome": self.outcome, "detail": self.detail, "prev_hash": self.prev_hash,
                "hash": self.hash}  # fmt: skip

    def names(self) -> set[str]:
        return {str(o.get("name")) for o in self.objects}


@dataclass(frozen=True)
class Entry:
    """What to append (the rest is filled in by :func:`append`)."""

    action: str
    objects: Sequence[dict[str, Any]] = ()
    outcome: str = "ok"
    detail: str = ""
    actor: Actor | None = None


def record_hash(project: str, seq: int, at: datetime, principal: str, origin: str,
                action: str, objects: Sequence[dict[str, Any]], outcome: str, detail: str,
                prev_hash: str) -> str:  # fmt: skip
    """sha256 of the record's canonical JSON (sorted keys, compact)."""
    body = {
        "project": project,
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "principal": principal,
        "origin": origin,
        "action": action,
        "objects": list(objects),
        "outcome": outcome,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()  # fmt: skip


def ddl(d: Dialect) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS pitstop_audit ("
        f" project TEXT NOT NULL, seq {d.integer} NOT NULL, at {d.timestamp} NOT NULL,"
        " principal TEXT NOT NULL, origin TEXT NOT NULL, action TEXT NOT NULL,"
        " objects TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL,"
        " prev_hash TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (project, seq))",
        "CREATE INDEX IF NOT EXISTS pitstop_audit_at ON pitstop_audit (project, at)",
    ]


def append(db: Database, project: str, entry: Entry) -> AuditRecord:
    """Append ``entry`` to ``project``'s trail; call inside a transaction holding the
    project's write lock, so records form one chain."""
    return append_many(db, project, [entry])[0]


def append_many(db: Database, project: str, entries: Sequence[Entry]) -> list[AuditRecord]:
    """Append ``entries`` in order (see :func:`append`)."""
    last = db.query(
        "SELECT seq, hash FROM pitstop_audit WHERE project = ? ORDER BY seq DESC LIMIT 1",
        (project,),
    )
    seq, prev = (int(last[0][0]), str(last[0][1])) if last else (0, "")
    records, rows = [], []
    for entry in entries:
        if entry.outcome not in OUTCOMES:
            raise ValueError(f"audit outcome {entry.outcome!r} is not one of {OUTCOMES}")
        actor = entry.actor or current_actor()
        seq, at = seq + 1, datetime.now(UTC)
        clean = [{k: v for k, v in o.items() if v is not None} for o in entry.objects]
        detail = entry.detail.replace("\x00", "")
        digest = record_hash(project, seq, at, actor.principal, actor.origin, entry.action,
                             clean, entry.outcome, detail, prev)  # fmt: skip
        rows.append((project, seq, db.dialect.encode_ts(at), actor.principal, actor.origin,
                     entry.action, json.dumps(clean, separators=(",", ":"), ensure_ascii=False),
                     entry.outcome, detail, prev, digest))  # fmt: skip
        records.append(AuditRecord(seq, at, actor.principal, actor.origin, entry.action,
                                   tuple(clean), entry.outcome, detail, prev, digest))  # fmt: skip
        prev = digest
    db.executemany(
        "INSERT INTO pitstop_audit (project, seq, at, principal, origin, action, objects,"
        " outcome, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    if records:
        db.execute(
            "INSERT INTO pitstop_meta (project, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (project, key) DO UPDATE SET value = excluded.value",
            (project, HEAD_KEY, f"{seq}:{prev}"),
        )
    return records


class Batcher:
    """Appends entries in the background, many per transaction, at most ``delay`` seconds
    after they were added (for frequent events such as pushes, whose own transaction would
    cost more than the push); :meth:`flush` writes what waits now."""

    def __init__(self, write: Callable[[list[Entry]], object], delay: float = 0.2) -> None:
        self._write = write
        self.delay = delay
        self._waiting: list[Entry] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def add(self, entry: Entry) -> None:
        """Queue ``entry`` (its actor is fixed now, in the caller's context)."""
        fixed = entry if entry.actor is not None else replace(entry, actor=current_actor())
        with self._lock:
            self._waiting.append(fixed)
            if self._timer is None:
                self._timer = threading.Timer(self.delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not waiting:
                return
            try:
                self._write(waiting)
            except Exception as exc:  # the registry is down: keep them for the next flush
                self._waiting[:0] = waiting
                logger.error("audit records not written yet (%d waiting): %s", len(waiting), exc)


def read(db: Database, project: str, *, since: datetime | None = None,
         principal: str | None = None) -> list[AuditRecord]:  # fmt: skip
    """The project's records, oldest first (``since``: at or after; ``principal``: by them)."""
    sql = ("SELECT seq, at, principal, origin, action, objects, outcome, detail, prev_hash,"
           " hash FROM pitstop_audit WHERE project = ?")  # fmt: skip
    params: list[object] = [project]
    if since is not None:
        sql += " AND at >= ?"
        params.append(db.dialect.encode_ts(since))
    if principal is not None:
        sql += " AND principal = ?"
        params.append(principal)
    return [_record(row) for row in db.query(sql + " ORDER BY seq", params)]


def _record(row: tuple[Any, ...]) -> AuditRecord:
    seq, at, principal, origin, action, objects, outcome, detail, prev, digest = row
    return AuditRecord(int(seq), Dialect.decode_ts(at), principal, origin, action,
                       tuple(json.loads(objects)), outcome, detail, prev, digest)  # fmt: skip


@dataclass
class Verification:
    """What :func:`verify` found: ``ok`` when ``problems`` is empty."""

    records: int = 0
    head: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(db: Database, project: str) -> Verification:
    """Recompute every hash and link of ``project``'s trail and compare the newest with the
    recorded head."""
    out = Verification()
    prev, expected = "", 1
    for rec in read(db, project):
        out.records += 1
        if rec.seq != expected:
            out.problems.append(f"records {expected}..{rec.seq - 1} are missing (deleted)")
        if rec.prev_hash != prev:
            out.problems.append(f"record {rec.seq} does not follow the record before it "
                                "(a record before it was changed or deleted)")  # fmt: skip
        again = record_hash(project, rec.seq, rec.at, rec.principal, rec.origin, rec.action,
                            rec.objects, rec.outcome, rec.detail, rec.prev_hash)  # fmt: skip
        if again != rec.hash:
            when = rec.at.isoformat()
            out.problems.append(f"record {rec.seq} was changed after it was written "
                                f"({rec.action} by {rec.principal} at {when})")  # fmt: skip
        prev, expected = rec.hash, rec.seq + 1
        out.head = f"{rec.seq}:{rec.hash}"
    rows = db.query("SELECT value FROM pitstop_meta WHERE project = ? AND key = ?",
                    (project, HEAD_KEY))  # fmt: skip
    head = str(rows[0][0]) if rows else ""
    if head != out.head:
        out.problems.append(f"the newest record is {out.head or 'none'} but the trail's head "
                            f"says {head or 'none'} (records at the end were deleted)")  # fmt: skip
    return out
