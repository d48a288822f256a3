"""The catalog: the one service that lists, describes, versions and changes registry objects.

The command line, the feature server, :class:`~pitstop.FeatureStore` and any other front end
ask the catalog, never the registry's storage: what exists (``list``, ``get``, ``describe``),
how it changed (``history``, ``diff``) and changing it (``apply``, ``promote``, ``rollback``,
``teardown``). Kinds are classes, never strings::

    catalog = store.catalog
    view = catalog.get(FeatureView, "user_features")
    [v.version for v in catalog.history("user_features", FeatureView)]   # [1, 2]
    catalog.diff("user_features", 1, 2)                                   # [SpecChange(...)]
    catalog.apply([user_features], stage=True)   # v3 staged; v2 stays served
    catalog.promote("user_features", 3)          # v3 served from now on
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pitstop.access import Policy, Resource, authorize, check_all, policy_of
from pitstop.catalog.lineage import Graph, LineageGraph
from pitstop.catalog.search import Searcher, SearchHit
from pitstop.definitions.base import Definition
from pitstop.definitions.serde import from_spec, kind_for
from pitstop.errors import PermissionDeniedError
from pitstop.registry import Change, Check, Live, Registry, Snapshot
from pitstop.registry.audit import AuditRecord, Batcher, Verification, current_actor
from pitstop.registry.audit import Entry as AuditEntry
from pitstop.registry.store import Promotion, SpecChange, VersionRecord

__all__ = ["Catalog", "Entry", "LineageGraph", "SearchHit"]

D = TypeVar("D", bound=Definition)
# named here because the ``list`` method hides the builtin in the class body
Records = list[VersionRecord]
Changes = list[Change]
SpecChanges = list[SpecChange]
Hits = list[SearchHit]
AuditRecords = list[AuditRecord]


@dataclass(frozen=True)
class Entry(Generic[D]):
    """One live object with the version record it is the spec of."""

    object: D
    record: VersionRecord

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def author(self) -> str:
        return self.record.author

    @property
    def applied_at(self) -> datetime:
        return self.record.applied_at

    def to_dict(self) -> dict[str, Any]:
        """Plain data: kind, name, version, spec hash, author, time (ISO 8601) and spec."""
        r = self.record
        return {
            "kind": r.kind,
            "name": r.name,
            "version": r.version,
            "spec_hash": r.spec_hash,
            "author": r.author,
            "applied_at": r.applied_at.isoformat(),
            "spec": r.spec,
        }


Entries = list[Entry[D]]


def _kind(cls: type[Definition] | None) -> str | None:
    return None if cls is None else kind_for(cls)


class Catalog:
    """Reads and changes of one project's registry objects."""

    def __init__(self, registry: Registry, *, read_sample_rate: float = 0.0) -> None:
        self.registry = registry
        self.read_sample_rate = read_sample_rate
        self._batched = Batcher(lambda entries: self.registry.store.append_audit(*entries))
        registry.before_close.append(self._batched.flush)
        self._searcher: Searcher | None = None
        self._graphs: dict[int, Graph] = {}

    @property
    def project(self) -> str:
        return self.registry.project

    # --- reads ---------------------------------------------------------------------------

    def snapshot(self, *, fresh: bool = False) -> Snapshot:
        """The live objects (cached; ``fresh=True`` reads the registry now)."""
        return self.registry.snapshot(fresh=fresh)

    def serial(self) -> int:
        """The registry's change counter: every write that changes an object bumps it."""
        return self.registry.store.serial()

    def list(
        self,
        cls: type[D],
        *,
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
        fresh: bool = False,
    ) -> list[D]:
        """Live objects of one kind by name, those with all ``tags`` (and ``owner``) only."""
        snapshot = self.snapshot(fresh=fresh)
        found = snapshot.of(cls)
        visible = _describable(snapshot)
        return [found[n] for n in sorted(found)
                if _matches(found[n], tags, owner) and visible(found[n])]  # fmt: skip

    def entries(
        self,
        cls: type[D],
        *,
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> Entries[D]:
        """Like :meth:`list`, read now, each object with its current version record."""
        kind = kind_for(cls)
        records = self.registry.store.live().get(kind, {})
        visible = _describable(self.snapshot(fresh=True))
        out = []
        for name in sorted(records):
            obj = from_spec(kind, records[name].spec or {})
            if isinstance(obj, cls) and _matches(obj, tags, owner) and visible(obj):
                out.append(Entry(obj, records[name]))
        return out

    def get(self, cls: type[D], name: str, *, fresh: bool = False) -> D:
        """One live object; a miss names close names and other kinds of that name."""
        snapshot = self.snapshot(fresh=fresh)
        found = snapshot.get(cls, name)
        authorize(snapshot, "describe", Resource.of(found))
        return found

    def describe(self, cls: type[D], name: str) -> Entry[D]:
        """One live object read now, with its current version record."""
        obj = self.get(cls, name, fresh=True)
        self._read("describe", kind_for(cls), name)
        history = self.registry.store.history(name, kind_for(cls))
        return Entry(obj, next((r for r in history if r.status == "served"), history[-1]))

    def history(self, name: str, cls: type[Definition] | None = None) -> Records:
        """Every version of an object, oldest first, deletions included (``cls`` chooses
        among several kinds of one name); ``status`` tells the served and staged ones."""
        self._read("history", _kind(cls), name)
        found = self.registry.store.history(name, _kind(cls))
        self._may("describe", found[-1].kind, name)
        return found

    def version(
        self, name: str, version: int, cls: type[Definition] | None = None
    ) -> VersionRecord:
        """One version of an object."""
        return self.registry.store.get_version(name, version, _kind(cls))

    def diff(self, name: str, v1: int, v2: int, cls: type[Definition] | None = None) -> SpecChanges:
        """What changed in an object's spec from version ``v1`` to ``v2``."""
        self._read("diff", _kind(cls), name, f"v{v1}..v{v2}")
        changes = self.registry.store.diff(name, v1, v2, _kind(cls))
        self._may("describe", self.registry.store.history(name, _kind(cls))[-1].kind, name)
        return changes

    def search(
        self,
        query: str,
        *,
        kinds: Iterable[type[Definition]] = (),
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
        limit: int = 20,
    ) -> Hits:
        """Objects and features matching ``query``, best first: exact names, then name
        prefixes, then words, then words with a typo (:mod:`pitstop.catalog.search`).
        ``kinds`` narrows to those classes (``Field``: features)."""
        store = self.registry.store
        if self._searcher is None or self._searcher.store is not store:
            self._searcher = Searcher(store)
        serial = self.snapshot().serial  # cached: no round trip for the words of typos
        hits = self._searcher.search(query, kinds=kinds, tags=tags, owner=owner, limit=limit,
                                     serial=serial)  # fmt: skip
        self._read("search", None, None, query)
        policy = policy_of(self.snapshot())
        if policy.enabled:
            actor = current_actor()
            allowed = policy.allows
            hits = [h for h in hits if allowed(actor, "describe", Resource(h.kind, h.name, h.tags))]
        return hits

    def snapshot_at(self, version: int | None, *, fresh: bool = False) -> Snapshot:
        """The live objects at registry ``version`` (None: now)."""
        if version is None:
            return self.snapshot(fresh=fresh)
        return self.registry.snapshot_at(version)

    def lineage(
        self,
        name: str,
        cls: type[Definition] | None = None,
        *,
        direction: str = "both",
        version: int | None = None,
        fresh: bool = False,
    ) -> LineageGraph:
        """What ``name`` is built from (``upstream``), what is built from it
        (``downstream``), or both, at registry ``version`` (None: now)."""
        snapshot = self.snapshot(fresh=fresh)
        serial = snapshot.serial if version is None else version
        graph = self._graphs.get(serial)
        if graph is None:
            if version is None or version == snapshot.serial:
                specs = {k: {n: o.to_spec() for n, o in by.items()}
                         for k, by in snapshot.objects.items()}  # fmt: skip
            else:  # read as stored, not decoded: an old version answers fast too
                live = self.registry.store.live_at(version)
                specs = {k: {n: r.spec or {} for n, r in by.items()} for k, by in live.items()}
            if len(self._graphs) >= 8:
                self._graphs.clear()
            graph = self._graphs[serial] = Graph(specs, serial)
        found = graph.walk(graph.find(name, _kind(cls)), direction)
        self._may("describe", found.root.kind, name, snapshot)
        self._read("lineage", found.root.kind, name, direction)
        return found

    # --- audit ---------------------------------------------------------------------------

    def audit_log(
        self,
        *,
        since: datetime | None = None,
        principal: str | None = None,
        name: str | None = None,
    ) -> AuditRecords:
        """The project's audit trail, oldest first: records at or after ``since``, by
        ``principal``, touching an object called ``name``."""
        self.flush_audit()
        records = self.registry.store.audit_records(since=since, principal=principal)
        return [r for r in records if name is None or name in r.names()]

    def verify_audit(self) -> Verification:
        """Recompute the trail's hash chain; ``problems`` names every edited or deleted
        record (:mod:`pitstop.registry.audit`)."""
        self.flush_audit()
        return self.registry.store.verify_audit()

    def record(
        self,
        action: str,
        objects: Iterable[tuple[str, str]] = (),
        *,
        outcome: str = "ok",
        detail: str = "",
        batched: bool = False,
    ) -> None:
        """Append an event that is not a registry change (a materialization, a push, a
        denied request) to the trail; ``objects`` are ``(kind, name)`` pairs. ``batched``
        events (pushes) are written in the background, many per transaction, within 0.2 s
        (:meth:`flush_audit` writes them now)."""
        listed = [{"kind": k, "name": n} for k, n in objects]
        entry = AuditEntry(action, listed, outcome, detail)
        if batched:
            self._batched.add(entry)
        else:
            self.flush_audit()  # keeps the trail in the order things happened
            self.registry.store.append_audit(entry)

    def flush_audit(self) -> None:
        """Write the batched audit records that wait."""
        self._batched.flush()

    def _may(self, action: str, kind: str, name: str, snapshot: Snapshot | None = None) -> None:
        """:func:`authorize` ``action`` on the object ``kind``/``name`` (its tags from the
        snapshot; an object no longer live has none)."""
        snapshot = snapshot or self.snapshot()
        obj = snapshot.objects.get(kind, {}).get(name)
        tags = getattr(obj, "tags", {}) if obj is not None else {}
        authorize(snapshot, action, Resource(kind, name, tags))

    def _read(self, action: str, kind: str | None, name: str | None, detail: str = "") -> None:
        """Record a read when it falls in the configured sample."""
        if self.read_sample_rate and random.random() < self.read_sample_rate:
            objects = [] if name is None else [{"kind": kind, "name": name}]
            self._batched.add(AuditEntry(f"read:{action}", objects, detail=detail))

    # --- changes -------------------------------------------------------------------------

    def plan(
        self,
        objects: Iterable[Definition],
        deletes: Iterable[Definition] = (),
        *,
        prune: bool,
        check: Check | None = None,
        gate: bool = False,
    ) -> Changes:
        """What :meth:`apply` would change now, without writing (``gate``: refuse, as
        :meth:`apply` would, changes the caller may not make)."""
        changes = self.registry.plan(objects, deletes, prune=prune, check=check)[0]
        if gate:
            try:
                self._guard(changes, self.registry.store.live())
            except PermissionDeniedError as exc:
                self.record("apply", outcome="denied", detail=str(exc)[:500])
                raise
        return changes

    def apply(
        self,
        objects: Iterable[Definition],
        deletes: Iterable[Definition] = (),
        *,
        prune: bool = False,
        author: str | None = None,
        check: Check | None = None,
        stage: bool = False,
    ) -> Changes:
        """Write new versions of changed objects in one transaction (see ``Registry.apply``);
        each change needs the ``apply`` (or ``delete``) permission under the policy in force
        before it. ``stage=True`` writes them as staged versions: served once promoted."""
        try:
            return self.registry.apply(objects, deletes, prune=prune, author=author, check=check,
                                       guard=self._guard, stage=stage)  # fmt: skip
        except PermissionDeniedError as exc:
            self.record("stage" if stage else "apply", outcome="denied", detail=str(exc)[:500])
            raise

    @staticmethod
    def _guard(changes: Changes, live: Live) -> None:
        """Refuse changes the caller may not make, under the policy of ``live``."""

        def decoded(kind: str) -> Iterable[Any]:
            return [from_spec(kind, r.spec or {}) for r in live.get(kind, {}).values()]

        policy = Policy(decoded("permission"), decoded("role"))
        if not policy.enabled:
            return
        for c in changes:
            if c.changed:
                spec = c.spec if c.spec is not None else c.old or {}
                action = "delete" if c.action == "delete" else "apply"
                authorize(policy, action, Resource(c.kind, c.name, spec.get("tags") or {}))

    def rollback(
        self,
        name: str,
        version: int,
        cls: type[Definition] | None = None,
        *,
        author: str | None = None,
    ) -> VersionRecord:
        """Make ``version`` current again as a new version; history is never rewritten."""
        self._may("apply", self.registry.store.history(name, _kind(cls))[-1].kind, name)
        try:
            return self.registry.store.rollback(name, version, _kind(cls), author=author)
        finally:
            self.registry.refresh()

    def promote(
        self,
        name: str,
        version: int,
        cls: type[Definition] | None = None,
        *,
        author: str | None = None,
    ) -> Promotion:
        """Serve ``version`` of an object from now on (a staged version, or an earlier one
        again), without writing a version; needs the ``apply`` permission on the object."""
        target = self.registry.store.get_version(name, version, _kind(cls))
        kind, snapshot = target.kind, self.snapshot()
        try:  # under the tags it has now and those of the version to serve
            self._may("apply", kind, name, snapshot)
            tags = (target.spec or {}).get("tags") or {}
            authorize(snapshot, "apply", Resource(kind, name, tags))
        except PermissionDeniedError as exc:
            self.record("promote", [(kind, name)], outcome="denied", detail=str(exc)[:500])
            raise
        try:
            return self.registry.store.promote(name, version, kind, author=author)
        finally:
            self.registry.refresh()

    def teardown(self) -> None:
        """Remove every object of the project from the registry (history included)."""
        snapshot = self.snapshot(fresh=True)
        check_all(snapshot, "delete", [o for by in snapshot.objects.values() for o in by.values()])
        try:
            self.registry.store.teardown()
        finally:
            self.registry.refresh()


def _describable(snapshot: Snapshot) -> Callable[[Definition], bool]:
    """Whether the caller may describe an object, under the policy of ``snapshot``."""
    policy = policy_of(snapshot)
    if not policy.enabled:
        return lambda obj: True
    actor = current_actor()
    return lambda obj: policy.allows(actor, "describe", Resource.of(obj))


def _matches(obj: Definition, tags: Mapping[str, str] | None, owner: str | None) -> bool:
    """Whether ``obj`` has all ``tags`` and the ``owner`` (None: any)."""
    have: Mapping[str, str] = getattr(obj, "tags", {})
    if tags and any(have.get(k) != v for k, v in tags.items()):
        return False
    return owner is None or getattr(obj, "owner", "") == owner
