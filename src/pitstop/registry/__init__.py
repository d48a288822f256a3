"""The registry: versioned definitions on SQL, decoded and cached for readers.

:class:`Registry` wraps the storage (:mod:`pitstop.registry.store`) with definition objects:
``snapshot()`` returns decoded live objects, cached for ``cache_ttl_seconds`` and reloaded only
when another writer changed something; ``apply()`` checks references and writes in one
transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from pitstop.definitions.base import Definition
from pitstop.definitions.serde import kind_of
from pitstop.registry.plan import Change, Objects, plan, resolve
from pitstop.registry.snapshot import LABELS, Snapshot
from pitstop.registry.store import RegistryStore, VersionRecord

__all__ = ["LABELS", "Change", "Registry", "Snapshot", "VersionRecord"]


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
                live = self.store.live()
                specs = {k: {n: r.spec for n, r in by.items()} for k, by in live.items()}
                self._snapshot = Snapshot.from_specs(specs, serial)  # type: ignore[arg-type]
            self._checked_at = now
            return self._snapshot

    def refresh(self) -> Snapshot:
        return self.snapshot(fresh=True)

    def plan(
        self, objects: Iterable[Definition], deletes: Iterable[Definition] = (), *, prune: bool
    ) -> tuple[list[Change], Objects]:
        """What applying ``objects`` would change, and the checked objects to write."""
        live = self.store.live()
        desired: Objects = {}
        if not prune:
            current = self.snapshot(fresh=True)
            desired = {k: dict(v) for k, v in current.objects.items()}
        for obj in objects:
            desired.setdefault(kind_of(obj), {})[obj.name] = obj
        for obj in deletes:
            desired.get(kind_of(obj), {}).pop(obj.name, None)
        resolved = resolve(desired)
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

    def apply(
        self,
        objects: Iterable[Definition],
        deletes: Iterable[Definition] = (),
        *,
        prune: bool = False,
        author: str | None = None,
    ) -> list[Change]:
        """Write ``objects`` (and remove ``deletes``, or everything else with ``prune``)."""
        changes, _ = self.plan(objects, deletes, prune=prune)
        return self.write(changes, author=author)

    def write(self, changes: list[Change], *, author: str | None = None) -> list[Change]:
        """Write the changes a :meth:`plan` computed, in one transaction."""
        puts = [(c.kind, c.name, c.spec) for c in changes if c.action in ("create", "update")]
        dels = [(c.kind, c.name) for c in changes if c.action == "delete"]
        if puts or dels:
            self.store.apply(puts, dels, author=author)  # type: ignore[arg-type]
        self._snapshot = None
        return changes

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
