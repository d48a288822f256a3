"""The registry: versioned definitions on SQL, decoded and cached for readers.

:class:`Registry` wraps the storage (:mod:`pitstop.registry.store`) with definition objects:
``snapshot()`` returns decoded live objects (each object's served version), cached for
``cache_ttl_seconds`` and reloaded only when another writer changed something; ``apply()``
checks references, computes the changes against the state inside its write transaction and
writes them there (``stage=True``: as staged versions, served once promoted);
``view_version()`` reads a view as it was at any of its versions, for pinned references.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from pitstop.definitions.base import Definition
from pitstop.definitions.feature_view import Projectable
from pitstop.definitions.serde import VIEW_KINDS, from_spec, kind_of
from pitstop.errors import NotFoundError, suggest
from pitstop.registry.plan import Change, Objects, Pinned, plan, resolve
from pitstop.registry.records import ApplyResult
from pitstop.registry.snapshot import LABELS, Snapshot
from pitstop.registry.store import Deletes, Live, Puts, RegistryStore, VersionRecord

__all__ = ["LABELS", "Change", "Check", "Guard", "Live", "Registry", "Snapshot", "VersionRecord"]

#: Called with the resolved definitions an apply or plan was given; raises to reject them.
Check = Callable[[Sequence[Definition]], None]
#: Called, inside the apply's transaction, with its changes and the live objects they
#: replace; raises to refuse them (access control).
Guard = Callable[[list[Change], Live], None]


class Registry:
    """Definitions of one project, read through a TTL cache."""

    def __init__(self, url: str, project: str, cache_ttl_seconds: float = 60) -> None:
        self.url = url
        self.project = project
        self.cache_ttl_seconds = cache_ttl_seconds
        self._store: RegistryStore | None = None
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        #: called by :meth:`close` before the connection goes (writes still waiting)
        self.before_close: list[Callable[[], None]] = []

    @property
    def store(self) -> RegistryStore:
        if self._store is None:
            self._store = RegistryStore.open(self.url, self.project)
        return self._store

    def snapshot(self, *, fresh: bool = False) -> Snapshot:
        """Live objects; re-read when the cache is older than the TTL and the registry changed."""
        now = time.monotonic()
        cached = self._snapshot
        if cached is not None and not fresh and now - self._checked_at < self.cache_ttl_seconds:
            return cached
        with self._lock:
            serial = self.store.serial()
            if self._snapshot is None or serial != self._snapshot.serial:
                self._snapshot = self._decode(self.store.live(), serial)
            self._checked_at = now
            return self._snapshot

    def snapshot_at(self, version: int) -> Snapshot:
        """The live objects at registry version ``version`` (read now, not cached)."""
        if version == self.snapshot().serial:
            return self.snapshot()
        return self._decode(self.store.live_at(version), version)

    def _decode(self, live: Live, serial: int) -> Snapshot:
        specs = {k: {n: r.spec for n, r in by.items()} for k, by in live.items()}
        versions = {k: {n: r.version for n, r in by.items()} for k, by in live.items()}
        return Snapshot.from_specs(specs, serial, versions, self.view_version)  # type: ignore[arg-type]

    def view_version(self, name: str, version: int) -> Projectable:
        """A view of any kind as it was at its version ``version`` (served, staged or past).

        An unknown view, an unknown version or a deletion marker raises
        :class:`NotFoundError` naming the versions there are.
        """
        kinds = [k for k in self.store.kinds_of(name) if k in VIEW_KINDS]
        if not kinds:
            live = self.store.live()
            names = [n for k in VIEW_KINDS for n in live.get(k, {})]
            raise NotFoundError(
                f"feature view {name!r} is not in the registry, in any version."
                f"{suggest(name, names)}"
            )
        history = self.store.history(name, kinds[0])
        label = f"{LABELS[kinds[0]]} {name!r}"
        readable = [r for r in history if not r.deleted]
        found = next((r for r in readable if r.version == version), None)
        if found is None:
            what = "does not exist" if version > history[-1].version else "is its deletion"
            listed = ", ".join(f"v{r.version}" + (f" ({r.status})" if r.status else "")
                               for r in readable)  # fmt: skip
            example = f" Pin one of them, e.g. '{name}@v{readable[-1].version}:<feature>'."
            raise NotFoundError(
                f"{label} has no version {version} to read (v{version} {what}); its versions "
                f"are {listed}.{example}"
                if readable
                else f"{label} has no version {version} to read: it has no version with a "
                "definition."
            )
        view = from_spec(found.kind, found.spec or {})
        assert isinstance(view, Projectable)
        return view

    def refresh(self) -> Snapshot:
        return self.snapshot(fresh=True)

    def plan(
        self,
        objects: Iterable[Definition],
        deletes: Iterable[Definition] = (),
        *,
        prune: bool,
        check: Check | None = None,
    ) -> tuple[list[Change], Objects]:
        """What applying ``objects`` would change now, and the checked objects to write.

        ``check`` receives the resolved versions of ``objects`` (join keys filled in) and may
        raise to reject them.
        """
        live = self.store.live()
        return _changes(list(objects), list(deletes), live, prune, check, self.view_version)

    def apply(
        self,
        objects: Iterable[Definition],
        deletes: Iterable[Definition] = (),
        *,
        prune: bool = False,
        author: str | None = None,
        check: Check | None = None,
        guard: Guard | None = None,
        stage: bool = False,
    ) -> list[Change]:
        """Write ``objects`` (and remove ``deletes``, or everything else with ``prune``).

        Planning and writing are one transaction: concurrent applies run one after the other,
        and the changes returned are those this apply made to the state it replaced, each
        with the version it wrote or now serves. ``stage=True`` writes changed objects as
        staged versions and removes nothing (the deletions are left out of the changes).
        """
        objects, deletes = list(objects), list(deletes)

        def decide(live: Live) -> tuple[Puts, Deletes, list[Change]]:
            changes, _ = _changes(objects, deletes, live, prune, check, self.view_version)
            if stage:
                changes = [c for c in changes if c.action != "delete"]
            if guard is not None:
                guard(changes, live)
            puts = [(c.kind, c.name, c.spec) for c in changes if c.action in ("create", "update")]
            dels = [(c.kind, c.name) for c in changes if c.action == "delete"]
            return puts, dels, changes  # type: ignore[return-value]

        try:
            changes, result = self.store.apply_planned(decide, author=author, stage=stage)
        finally:
            self._snapshot = None
        return _written(changes, result)

    def close(self) -> None:
        for flush in self.before_close:
            flush()
        if self._store is not None:
            self._store.close()
            self._store = None


def _written(changes: list[Change], result: ApplyResult) -> list[Change]:
    """``changes`` as the store wrote them: with their versions; unchanged when the store
    found the spec already written (staged twice)."""
    records = {(r.kind, r.name): r for r in [*result.created, *result.updated, *result.deleted]}
    staged = {(r.kind, r.name): r for r in result.staged}
    out = []
    for c in changes:
        key = (c.kind, c.name)
        if key in staged:
            out.append(dataclasses.replace(c, version=staged[key].version, staged=True))
        elif key in records:
            out.append(dataclasses.replace(c, version=records[key].version))
        elif c.changed:
            out.append(dataclasses.replace(c, action="unchanged"))
        else:
            out.append(c)
    return out


def _changes(
    objects: list[Definition],
    deletes: list[Definition],
    live: Live,
    prune: bool,
    check: Check | None,
    pinned: Pinned | None = None,
) -> tuple[list[Change], Objects]:
    """The changes turning ``live`` into ``objects`` (the whole repo with ``prune``, else added
    to the live objects, less ``deletes``)."""
    desired: Objects = {}
    if not prune:
        specs = {k: {n: r.spec for n, r in by.items()} for k, by in live.items()}
        current = Snapshot.from_specs(specs, 0)  # type: ignore[arg-type]
        desired = {k: dict(v) for k, v in current.objects.items()}
    for obj in objects:
        desired.setdefault(kind_of(obj), {})[obj.name] = obj
    for obj in deletes:
        desired.get(kind_of(obj), {}).pop(obj.name, None)
    resolved = resolve(desired, pinned)
    if check is not None:
        check([resolved[kind_of(o)][o.name] for o in objects])
    changes = plan(resolved, live, prune=prune)
    if not prune:
        gone = {(kind_of(o), o.name) for o in deletes}
        changes += [
            Change(k, n, "delete", None, r.spec)
            for k, by in live.items()
            for n, r in by.items()
            if (k, n) in gone
        ]
    return changes, resolved
