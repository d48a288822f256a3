"""What the registry store reads and writes: version records, apply results, and the checks
of what an apply is given (:func:`prepare_all`).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pitstop.errors import RegistryError
from pitstop.registry import audit
from pitstop.registry.specs import canonical_hash
from pitstop.registry.sqldialect import Dialect

#: The columns of ``pitstop_versions`` a :class:`VersionRecord` is read from, in order.
COLUMNS = "kind, name, version, spec, spec_hash, author, applied_at, deleted"


@dataclass(frozen=True)
class VersionRecord:
    """One immutable version of one registry object."""

    kind: str
    name: str
    version: int
    spec: dict[str, Any] | None  # None for a deletion marker
    spec_hash: str  # "" for a deletion marker
    author: str
    applied_at: datetime  # tz-aware UTC
    deleted: bool
    #: ``"served"`` (unpinned reads use it), ``"staged"`` (written by a staged apply and
    #: never served) or ``""``; where the record was read, not part of the version itself
    status: str = field(default="", compare=False)


def record_of(row: Sequence[Any], status: str = "") -> VersionRecord:
    """The record of a ``pitstop_versions`` row read as :data:`COLUMNS`."""
    kind, name, version, spec, spec_hash, author, applied_at, deleted = row
    decoded = None if spec is None else json.loads(spec)
    at = Dialect.decode_ts(applied_at)
    return VersionRecord(kind, name, int(version), decoded, spec_hash, author, at, bool(deleted),
                         status)  # fmt: skip


@dataclass(frozen=True)
class ApplyResult:
    """What one :meth:`RegistryStore.apply` wrote. A re-added deleted object counts as created.

    ``created`` and ``updated`` hold the versions now served: new ones, or an existing version
    with the very spec applied (a staged one, served from now on). ``staged`` holds the
    versions a staged apply wrote.
    """

    created: list[VersionRecord] = field(default_factory=list)
    updated: list[VersionRecord] = field(default_factory=list)
    deleted: list[VersionRecord] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    staged: list[VersionRecord] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True if the apply wrote at least one version or served another one."""
        return bool(self.created or self.updated or self.deleted or self.staged)


@dataclass(frozen=True)
class Promotion:
    """What :meth:`RegistryStore.promote` did: the version served now and the one before."""

    record: VersionRecord
    previous: VersionRecord | None  # None: nothing was served (a new or deleted object)

    @property
    def changed(self) -> bool:
        return self.previous is None or self.previous.version != self.record.version


def applied(result: ApplyResult, *, stage: bool) -> audit.Entry:
    """The audit entry of one apply (``stage``: a staged one): every object it changed, with
    its version."""
    objects = [
        {"kind": r.kind, "name": r.name, "version": r.version, "change": change}
        for change, records in (("create", result.created), ("update", result.updated),
                                ("delete", result.deleted), ("stage", result.staged))
        for r in records
    ]  # fmt: skip
    unchanged = len(result.unchanged)
    detail = f"{unchanged} unchanged" if unchanged else "" if objects else "no changes"
    return audit.Entry("stage" if stage else "apply", objects, detail=detail)


def default_author() -> str:
    """The OS user name, or ``"unknown"``."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no such user in the password database, no env vars
        return "unknown"


@dataclass(frozen=True)
class Put:
    """One object to write, checked and encoded."""

    kind: str
    name: str
    text: str  # compact JSON in the caller's key order
    spec_hash: str


def prepare(kind: str, name: str, spec: object) -> Put:
    """Check one object to write; its spec as compact JSON and its canonical hash."""
    what = f"{kind} {name!r}"
    if not (isinstance(kind, str) and kind and isinstance(name, str) and name):
        raise RegistryError(f"Registry object kind and name must be non-empty strings: {what}.")
    if not isinstance(spec, dict):
        raise RegistryError(f"The spec of {what} must be a dict, not {type(spec).__name__}.")
    try:
        text = json.dumps(spec, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        spec_hash = canonical_hash(spec)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"The spec of {what} is not JSON-serialisable: {exc}.") from exc
    return Put(kind, name, text, spec_hash)


Live = dict[str, dict[str, VersionRecord]]
Puts = Sequence[tuple[str, str, dict[str, Any]]]
Deletes = Sequence[tuple[str, str]]


def prepare_all(puts: Puts, deletes: Deletes) -> list[Put]:
    """:func:`prepare` each put; an object may appear once among puts and deletes."""
    prepared = [prepare(kind, name, spec) for kind, name, spec in puts]
    seen: set[tuple[str, str]] = set()
    for key in [(p.kind, p.name) for p in prepared] + [(k, n) for k, n in deletes]:
        if key in seen:
            raise RegistryError(
                f"{key[0]} {key[1]!r} appears more than once in one apply; "
                "put or delete each object once."
            )
        seen.add(key)
    return prepared
