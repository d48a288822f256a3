"""Online stores: the latest feature values per entity, for serving.

:func:`open_online_store` turns an ``online_store`` config into an :class:`OnlineStore`. The
built-in backends are listed once in ``BUILTIN_STORES`` as ``"module:Class"`` strings and imported
only when used, so ``import pitstop.online`` loads no driver. Third-party packages add backends
through the entry point group ``pitstop.online_stores`` (name = the config's ``type``, value =
``"module:Class"``). Every store class has the same shape: ``Store(config, project, repo_path)``.

>>> from pitstop.config import MemoryOnlineConfig
>>> store = open_online_store(MemoryOnlineConfig(), "demo", Path("."))
>>> store.read([("driver_stats", [b"k"])])
[[None]]
>>> store.close()
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from pitstop.errors import ConfigError
from pitstop.online.base import Capabilities, OnlineStore, ReadRow, StoredRow

__all__ = [
    "BUILTIN_STORES",
    "Capabilities",
    "OnlineStore",
    "ReadRow",
    "StoredRow",
    "open_online_store",
]

BUILTIN_STORES: dict[str, str] = {
    "memory": "pitstop.online.memory:MemoryOnlineStore",
    "sqlite": "pitstop.online.sqlite:SqliteOnlineStore",
    "redis": "pitstop.online.redis:RedisOnlineStore",
    "postgres": "pitstop.online.postgres:PostgresOnlineStore",
}
ENTRY_POINT_GROUP = "pitstop.online_stores"


class _TypedConfig(Protocol):
    @property
    def type(self) -> str: ...


def open_online_store(config: _TypedConfig, project: str, repo_path: Path) -> OnlineStore:
    """Open the online store that ``config.type`` names, for ``project``.

    ``repo_path`` anchors relative paths (the SQLite file). Connections are opened lazily or
    at once, depending on the backend; either way an unreachable server raises
    :class:`~pitstop.errors.BackendUnavailableError`.
    """
    target = BUILTIN_STORES.get(config.type) or _plugin(config.type)
    module_name, _, class_name = target.partition(":")
    store_class = getattr(importlib.import_module(module_name), class_name)
    store: OnlineStore = store_class(config, project, Path(repo_path))
    return store


def _plugin(kind: str) -> str:
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == kind]
    if not found:
        known = ", ".join(sorted({*BUILTIN_STORES, *entry_points(group=ENTRY_POINT_GROUP).names}))
        raise ConfigError(
            f"online_store.type: {kind!r} is not an online store; allowed: {known} (a plug-in "
            f"registers more through the entry point group {ENTRY_POINT_GROUP!r})"
        )
    return str(found[0].value)
