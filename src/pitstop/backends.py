"""The table of backends: which config model each ``type:`` in ``feature_store.yaml`` names.

There are two kinds, named like their ``feature_store.yaml`` sections: ``online_store`` and
``offline_store`` (offline engines). Each maps a ``type`` name to the backend's **config
model**, written as a lazy ``"module:Class"`` target. The config model is the light half of a
backend: a frozen pydantic model, subclass of :class:`pitstop.config.OnlineStoreConfig` or
:class:`pitstop.config.OfflineStoreConfig`, that validates the section and whose ``open``
builds the backend, importing the backend's module and driver only then. Parsing
``feature_store.yaml`` therefore imports one config module per section and no driver, and
importing this module imports no backend at all.

A ``type`` is looked up in

1. the built-in tables :data:`ONLINE_STORES` and :data:`OFFLINE_ENGINES`;
2. the backends added with :func:`register` (tests, applications embedding pitstop);
3. the entry points of installed distributions, group ``pitstop.online_stores`` or
   ``pitstop.offline_engines``: the entry point's name is the ``type``, its value the config
   model, e.g. in a package's ``pyproject.toml``::

       [project.entry-points."pitstop.online_stores"]
       mystore = "mystore.config:MyStoreConfig"

Built-in names cannot be taken: :func:`register` refuses them and entry points with such a
name are ignored.

>>> config_model("online_store", "memory").__name__
'MemoryOnlineConfig'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal, get_args

from pitstop.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUPS",
    "OFFLINE_ENGINES",
    "ONLINE_STORES",
    "Kind",
    "config_model",
    "names",
    "register",
    "unregister",
]

Kind = Literal["online_store", "offline_store"]

#: Built-in online stores (in the order error messages list them).
ONLINE_STORES: dict[str, str] = {
    "sqlite": "pitstop.online.sqlite:SqliteOnlineConfig",
    "redis": "pitstop.online.redis_config:RedisOnlineConfig",
    "postgres": "pitstop.online.postgres:PostgresOnlineConfig",
    "memory": "pitstop.online.memory:MemoryOnlineConfig",
}

#: Built-in offline engines; ``file`` is Feast's name for the file-based store.
OFFLINE_ENGINES: dict[str, str] = {
    "duckdb": "pitstop.offline.duckdb_config:DuckDBOfflineConfig",
    "file": "pitstop.offline.duckdb_config:DuckDBOfflineConfig",
    "spark": "pitstop.offline.spark.config:SparkOfflineConfig",
}

ENTRY_POINT_GROUPS: dict[Kind, str] = {
    "online_store": "pitstop.online_stores",
    "offline_store": "pitstop.offline_engines",
}

_BUILTIN: dict[Kind, dict[str, str]] = {
    "online_store": ONLINE_STORES,
    "offline_store": OFFLINE_ENGINES,
}
_REGISTERED: dict[Kind, dict[str, str | type]] = {"online_store": {}, "offline_store": {}}


def _check_kind(kind: str) -> Kind:
    if kind not in _BUILTIN:
        allowed = ", ".join(get_args(Kind))
        raise ConfigError(f"{kind!r} is not a kind of backend; allowed: {allowed}")
    return kind


def register(kind: Kind, name: str, target: str | type) -> None:
    """Add the backend ``name`` of ``kind``: ``target`` is its config model or a
    ``"module:Class"`` string naming it (imported when ``name`` is first used).

    Registering a name again replaces the earlier target; built-in names cannot be taken.

    >>> register("online_store", "mystore", "mystore.config:MyStoreConfig")  # doctest: +SKIP
    """
    table = _BUILTIN[_check_kind(kind)]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"register({kind!r}, {name!r}, ...): the name must be a non-empty str")
    if name in table:
        raise ConfigError(
            f"register({kind!r}, {name!r}, ...): {name!r} is a built-in {_what(kind)}; "
            "register the backend under another name"
        )
    if isinstance(target, str) and not _is_target(target):
        raise ConfigError(
            f"register({kind!r}, {name!r}, {target!r}): the target must be a config model "
            "class or a 'module:Class' string"
        )
    _REGISTERED[kind][name] = target


def unregister(kind: Kind, name: str) -> None:
    """Remove a backend added with :func:`register` (nothing happens if there is none)."""
    _REGISTERED[_check_kind(kind)].pop(name, None)


def names(kind: Kind) -> list[str]:
    """Every ``type`` of ``kind``: built-in ones in table order, then registered ones, then
    those of entry points (sorted)."""
    found = [*_BUILTIN[_check_kind(kind)], *_REGISTERED[kind]]
    plugins = sorted({ep.name for ep in _entry_points(kind)} - set(found))
    return found + plugins


def config_model(kind: Kind, name: str) -> type[Any]:
    """The config model of the backend ``name`` of ``kind``, imported now.

    Raises :class:`~pitstop.errors.ConfigError` if no backend has that name (listing the
    names there are), if its target cannot be imported, or if the target is not a config
    model of ``kind``. The message is the problem only; the caller names the file and key.
    """
    _check_kind(kind)
    target: str | type | None = None
    where = ""
    if isinstance(name, str):
        target = _BUILTIN[kind].get(name)
        where = f"a built-in {_what(kind)}"
        if target is None and name in _REGISTERED[kind]:
            target, where = _REGISTERED[kind][name], "registered with pitstop.backends.register"
        if target is None:
            for ep in _entry_points(kind):
                if ep.name == name:
                    dist = f" of {ep.dist.name} {ep.dist.version}" if ep.dist else ""
                    target = f"{ep.module}:{ep.attr}" if ep.attr else ep.module
                    where = f"an entry point{dist} in group {ENTRY_POINT_GROUPS[kind]!r}"
                    break
    if target is None:
        allowed = ", ".join(names(kind))
        raise ConfigError(f"{name!r} is not a supported {_what(kind)}; allowed: {allowed}")
    model = _load(target, name, where) if isinstance(target, str) else target
    from pitstop.config import OfflineStoreConfig, OnlineStoreConfig

    base = OnlineStoreConfig if kind == "online_store" else OfflineStoreConfig
    shown = repr(target)
    if not (isinstance(model, type) and issubclass(model, base)):
        raise ConfigError(
            f"{name!r} ({where}) names {shown}, which is not a config model of an "
            f"{_what(kind)}: it must be a subclass of pitstop.config.{base.__name__}"
        )
    if missing := sorted(getattr(model, "__abstractmethods__", ())):
        raise ConfigError(
            f"{name!r} ({where}) names {shown}, a config model without "
            f"{', '.join(missing)}(): it must implement them to build the backend"
        )
    return model


def _what(kind: Kind) -> str:
    return kind.replace("_", " ")


def _is_target(text: str) -> bool:
    module, sep, attr = text.partition(":")
    return bool(sep and module and attr)


def _load(target: str, name: str, where: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except Exception as exc:  # a third-party module may fail in any way while importing
        raise ConfigError(
            f"{name!r} ({where}) names {target!r}, which cannot be imported: "
            f"{type(exc).__name__}: {exc}; install or repair the package that provides it"
        ) from exc
    return obj


def _entry_points(kind: Kind) -> list[EntryPoint]:
    from importlib.metadata import entry_points

    builtin = _BUILTIN[kind]
    return [ep for ep in entry_points(group=ENTRY_POINT_GROUPS[kind]) if ep.name not in builtin]
