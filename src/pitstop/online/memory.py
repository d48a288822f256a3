"""The in-memory online store: the reference implementation of :mod:`pitstop.online.base`.

One dict per view maps an entity key to its :class:`StoredRow`; one lock makes every method
atomic. Data lives as long as the store object and is visible to no other store object or
process. Every other store must behave like this one; the conformance suite
(``tests/test_online_stores.py``) checks that they do.

``modify`` calls ``change`` while holding the lock, so ``change`` must not call the store.
``rows_to_write`` (in :mod:`pitstop.online.base`) checks what a ``change`` returned.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pitstop.config import OnlineStoreConfig
from pitstop.online.base import (
    Capabilities,
    Change,
    ReadRow,
    StoredRow,
    rows_to_write,
    supersedes,
)


class MemoryOnlineConfig(OnlineStoreConfig):
    """``online_store: {type: memory}``: rows in this process only, gone when it exits."""

    type: Literal["memory"] = "memory"

    def open(self, project: str, repo_path: Path) -> MemoryOnlineStore:
        return MemoryOnlineStore(self, project, Path(repo_path))


class MemoryOnlineStore:
    """Rows in Python dicts, for tests and notebooks."""

    capabilities = Capabilities()

    def __init__(self, config: MemoryOnlineConfig, project: str, repo_path: Path) -> None:
        self.config = config
        self.project = project
        self._tables: dict[str, dict[bytes, StoredRow]] = {}
        self._lock = threading.Lock()

    def update(self, keep: Sequence[str], drop: Sequence[str]) -> None:
        with self._lock:
            for view in drop:
                self._tables.pop(view, None)
            for view in keep:
                self._tables.setdefault(view, {})

    def write(self, view: str, rows: Sequence[StoredRow]) -> None:
        with self._lock:
            table = self._tables.setdefault(view, {})
            for row in rows:
                if supersedes(row, table.get(row.entity_key)):
                    table[row.entity_key] = row

    def read(self, requests: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[ReadRow | None]]:
        result: list[list[ReadRow | None]] = []
        with self._lock:
            for view, keys in requests:
                table = self._tables.get(view, {})
                rows = [table.get(key) for key in keys]
                result.append([None if r is None else ReadRow(r.event_ts, r.value) for r in rows])
        return result

    def modify(self, view: str, keys: Sequence[bytes], change: Change) -> None:
        if not keys:
            return
        with self._lock:
            found = [self._tables.get(view, {}).get(key) for key in keys]
            current = [None if r is None else ReadRow(r.event_ts, r.value) for r in found]
            rows = rows_to_write(keys, change(current))
            table = self._tables.setdefault(view, {})
            for row in rows:  # unconditionally: event-time order does not apply
                table[row.entity_key] = row

    def newest_event_ts(self, views: Sequence[str]) -> dict[str, int | None]:
        with self._lock:
            tables = {view: self._tables.get(view) or {} for view in views}
        return {v: max((r.event_ts for r in t.values()), default=None) for v, t in tables.items()}

    def teardown(self, views: Sequence[str]) -> None:
        with self._lock:
            self._tables.clear()

    def close(self) -> None:
        pass
