"""Online stores: the latest feature values per entity, for serving.

:mod:`.base` holds the :class:`OnlineStore` protocol; each store's module holds its config model
and the store (Redis: :mod:`.redis_config` and :mod:`.redis`). A config model's ``open`` builds
the store; :mod:`pitstop.backends` says which model an ``online_store: {type: ...}`` names.
Importing this package loads no driver.

>>> from pathlib import Path
>>> from pitstop.online.memory import MemoryOnlineConfig
>>> store = MemoryOnlineConfig().open("demo", Path("."))
>>> store.read([("driver_stats", [b"k"])])
[[None]]
>>> store.close()
"""

from __future__ import annotations

from pitstop.online.base import Capabilities, OnlineStore, ReadRow, StoredRow

__all__ = ["Capabilities", "OnlineStore", "ReadRow", "StoredRow"]
