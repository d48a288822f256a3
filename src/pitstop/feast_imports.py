"""Feast feature repos, unchanged: while pitstop loads a repo, ``feast`` imports give pitstop's
objects.

:class:`FeastImports` puts an import hook (a ``sys.meta_path`` finder) in place for the time
:func:`pitstop.repo.load_repo` imports the repo's files, and only then. Inside that window
``import feast`` and ``from feast.x import Y`` resolve to pitstop's definitions, whether or not
Feast is installed; when it closes, every ``feast`` module it made is dropped from
``sys.modules`` and an installed Feast that was imported before is put back, so other code in
the process never sees the stand-in. No file of the repo is written.

A name a Feast module offers and pitstop does not is a *stand-in*: importing it works, and using
it (calling it, subclassing it, passing an argument pitstop does not know) records a
:class:`Problem` naming the construct, the file and line, and what to use instead. Whatever is
built from a stand-in is a stand-in too, so loading goes on and one run finds every problem of
the repo; ``load_repo`` then raises one error listing them all.
"""

from __future__ import annotations

import enum
import importlib
import importlib.abc
import importlib.machinery
import inspect
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pitstop.errors import DefinitionError, suggest

_DEFS = "pitstop.definitions"
EXPORTS: dict[str, dict[str, str]] = {}  # feast module -> {name: pitstop module defining it}


def _export(feast_module: str, target: str, *names: str) -> None:
    EXPORTS.setdefault(feast_module, {}).update(dict.fromkeys(names, target))


_TYPES = ("Array", "Bool", "Bytes", "ComplexType", "FeastType", "Float32", "Float64", "Int32",
          "Int64", "Json", "Map", "String", "Struct", "UnixTimestamp", "ValueType",
          "from_value_type")  # fmt: skip
_FORMATS = ("AvroFormat", "FileFormat", "JsonFormat", "ParquetFormat", "ProtoFormat",
            "StreamFormat")  # fmt: skip
_SOURCES = ("DataSource", "FileSource", "KafkaSource", "PushMode", "PushSource", "RequestSource")

for _module, _target, _names in (
    ("feast", f"{_DEFS}.entity", ("Entity",)),
    ("feast", f"{_DEFS}.field", ("Feature", "Field")),
    ("feast", f"{_DEFS}.feature_view", ("FeatureView",)),
    ("feast", f"{_DEFS}.on_demand", ("OnDemandFeatureView", "on_demand_feature_view")),
    ("feast", f"{_DEFS}.stream", ("Aggregation", "StreamFeatureView")),
    ("feast", f"{_DEFS}.service", ("FeatureService",)),
    ("feast", f"{_DEFS}.sources", ("FileSource", "KafkaSource", "PushSource", "RequestSource")),
    ("feast", f"{_DEFS}.project", ("Project",)),
    ("feast", "pitstop.types", ("ValueType",)),
    ("feast", "pitstop.feature_store", ("FeatureStore",)),
    ("feast", "pitstop.config", ("RepoConfig",)),
    ("feast.types", "pitstop.types", _TYPES),
    ("feast.value_type", "pitstop.types", ("ValueType",)),
    ("feast.entity", f"{_DEFS}.entity", ("Entity",)),
    ("feast.field", f"{_DEFS}.field", ("Field",)),
    ("feast.feature", f"{_DEFS}.field", ("Feature",)),
    ("feast.feature_view", f"{_DEFS}.feature_view", ("FeatureView",)),
    ("feast.on_demand_feature_view", f"{_DEFS}.on_demand",
     ("OnDemandFeatureView", "on_demand_feature_view")),
    ("feast.stream_feature_view", f"{_DEFS}.stream", ("StreamFeatureView",)),
    ("feast.aggregation", f"{_DEFS}.stream", ("Aggregation",)),
    ("feast.feature_service", f"{_DEFS}.service", ("FeatureService",)),
    ("feast.data_source", f"{_DEFS}.sources", _SOURCES),
    ("feast.data_format", f"{_DEFS}.formats", _FORMATS),
    ("feast.project", f"{_DEFS}.project", ("Project",)),
    ("feast.feature_logging", f"{_DEFS}.feature_logging", ("LoggingConfig",)),
    ("feast.infra.offline_stores.file_source", f"{_DEFS}.sources", ("FileSource",)),
    ("feast.infra.offline_stores.contrib.spark_offline_store.spark_source", f"{_DEFS}.sources",
     ("SparkSource",)),
    ("feast.infra.offline_stores.file_source", f"{_DEFS}.feature_logging",
     ("FileLoggingDestination",)),
    ("feast.feature_store", "pitstop.feature_store", ("FeatureStore",)),
    ("feast.repo_config", "pitstop.config", ("RepoConfig",)),
):  # fmt: skip
    _export(_module, _target, *_names)

_UNGUARDED = {"FeatureStore", "RepoConfig", "from_value_type"}

_HINTS = {
    "KinesisSource": "feed the views from a PushSource (store.push or `pitstop ingest`)",
    "BatchFeatureView": "use FeatureView",
    "LabelView": "keep labels as extra columns of the entity DataFrame given to "
    "get_historical_features",
    "Set": "use Array(...)",
    "PdfBytes": "use Bytes",
    "ImageBytes": "use Bytes",
    "stream_feature_view": "build a StreamFeatureView(...) over a PushSource",
}


@dataclass(frozen=True)
class Problem:
    """One use of a construct pitstop does not support, where it happens and what to do."""

    file: str
    line: int
    construct: str
    hint: str

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}"
        return f"{where}: {self.construct} is not supported by pitstop; {self.hint}"


class FeastImports:
    """While active, ``feast`` imports resolve to pitstop; collects the :class:`Problem` s.

    >>> with FeastImports(Path("feature_repo")) as feast:         # doctest: +SKIP
    ...     importlib.import_module("example_repo")
    >>> feast.problems                                            # doctest: +SKIP
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[Problem] = []
        self._saved: dict[str, types.ModuleType] = {}
        self._finder = _Finder()

    def __enter__(self) -> FeastImports:
        global _ACTIVE
        self._saved = {k: sys.modules.pop(k) for k in list(sys.modules) if _is_feast(k)}
        sys.meta_path.insert(0, self._finder)
        _ACTIVE = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _ACTIVE
        _ACTIVE = None
        sys.meta_path.remove(self._finder)
        for name in [k for k in sys.modules if _is_feast(k)]:
            del sys.modules[name]
        sys.modules.update(self._saved)

    @property
    def files(self) -> set[str]:
        """The repo files (relative paths) in which a problem was recorded."""
        return {p.file for p in self.problems}

    def record(self, construct: str, hint: str) -> None:
        file, line = self._caller()
        problem = Problem(file, line, construct, hint)
        if problem not in self.problems:
            self.problems.append(problem)

    def _caller(self) -> tuple[str, int]:
        """The innermost frame of the stack that runs a file of the repo."""
        frame = sys._getframe(1)
        while frame is not None:
            path = Path(frame.f_code.co_filename)
            if path.is_absolute() and path.is_relative_to(self.root):
                return str(path.relative_to(self.root)), frame.f_lineno
            frame = frame.f_back  # type: ignore[assignment]
        return "<unknown file>", 0


_ACTIVE: FeastImports | None = None


def _is_feast(name: str) -> bool:
    return name == "feast" or name.startswith("feast.")


def _record(construct: str, hint: str) -> None:
    """Note the problem while a repo loads; used at any other time, it is an error at once."""
    if _ACTIVE is None:
        raise DefinitionError(f"{construct} is not supported by pitstop; {hint}")
    _ACTIVE.record(construct, hint)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes every ``feast`` module; each is a package so that any submodule imports."""

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not _is_feast(fullname):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _FeastModule(spec.name)
        module.__dict__["__all__"] = sorted(EXPORTS.get(spec.name, {}))
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _FeastModule(types.ModuleType):
    """A ``feast`` module: pitstop's object for each name it supports, a stand-in for others."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return resolve(f"{self.__name__}.{name}")


def resolve(path: str) -> Any:
    """The object for a dotted Feast name (``feast.types.Int64``): pitstop's, or a stand-in."""
    if path in EXPORTS:
        return importlib.import_module(path)
    module, _, name = path.rpartition(".")
    target = EXPORTS.get(module, {}).get(name)
    if target is None:
        return StandIn(path)
    return _exported(target, name, path)


@cache
def _exported(target: str, name: str, path: str) -> Any:
    value = getattr(importlib.import_module(target), name)
    if name in _UNGUARDED or not callable(value) or isinstance(value, enum.EnumMeta):
        return value
    return Guarded(value, name)


def _hint(path: str) -> str:
    module, _, name = path.rpartition(".")
    if name in _HINTS:
        return _HINTS[name]
    if name.endswith("Source"):
        return "export the data to Parquet or CSV files and read them with FileSource(path=...)"
    close = suggest(name, EXPORTS.get(module, {}))
    if close.startswith(" Did you mean"):
        return f"check the name.{close}"
    return "remove it (the README section 'Feast repos' lists what pitstop accepts)"


class StandIn:
    """What an unsupported Feast name gives: using it records a problem, once.

    A stand-in that came out of another one (``BigQuerySource(...)``, then ``source.field``)
    is *derived*: using it records nothing more, so one mistake is reported once.
    """

    __slots__ = ("_derived", "_path")

    def __init__(self, path: str, *, derived: bool = False) -> None:
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_derived", derived)

    def _used(self, construct: str) -> StandIn:
        if not self._derived:
            _record(construct, _hint(self._path))
        return StandIn(self._path, derived=True)

    def __call__(self, *args: Any, **kwargs: Any) -> StandIn:
        return self._used(f"{self._path.rpartition('.')[2]} ({self._path})")

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        self._used(f"a subclass of {self._path}")
        return (object,)

    def __getattr__(self, name: str) -> Any:
        if (name.startswith("__") and name.endswith("__")) or name in StandIn.__slots__:
            raise AttributeError(name)
        return self if self._derived else resolve(f"{self._path}.{name}")

    def __getitem__(self, key: Any) -> StandIn:
        return StandIn(self._path, derived=True)

    def __iter__(self) -> Any:
        return iter(())

    def __repr__(self) -> str:
        return f"<{self._path}: not supported by pitstop>"


class Guarded:
    """A pitstop class or decorator as a ``feast`` module offers it.

    It builds the real object, except when an argument is a stand-in (then the result is one
    too, so the problem is reported once) or a keyword pitstop does not know (recorded as a
    problem). ``isinstance`` and subclassing see the real class.
    """

    __slots__ = ("_name", "_target")

    def __init__(self, target: Any, name: str) -> None:
        self._target = target
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _holds_stand_in(args) or _holds_stand_in(kwargs.values()):
            return StandIn(self._name, derived=True)
        known = _keywords(self._target)
        unknown = [k for k in kwargs if known is not None and k not in known]
        if unknown:
            _record(
                f"{self._name}({unknown[0]}=...)",
                f"remove the argument; {self._name} takes {', '.join(sorted(known or ()))}",
            )
            return StandIn(self._name, derived=True)
        return self._target(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in Guarded.__slots__:  # not set yet (a copy being built)
            raise AttributeError(name)
        return getattr(self._target, name)

    def __instancecheck__(self, obj: object) -> bool:
        return isinstance(obj, self._target)

    def __subclasscheck__(self, cls: type) -> bool:
        return issubclass(cls, self._target)

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (self._target,)

    def __repr__(self) -> str:
        return repr(self._target)


def _holds_stand_in(values: Iterable[Any]) -> bool:
    for value in values:
        if isinstance(value, StandIn):
            return True
        if isinstance(value, list | tuple | set | frozenset) and any(
            isinstance(v, StandIn) for v in value
        ):
            return True
        if isinstance(value, dict) and any(isinstance(v, StandIn) for v in value.values()):
            return True
    return False


@cache
def _keywords(target: Any) -> frozenset[str] | None:
    """The keyword arguments ``target`` takes; ``None`` when it takes any."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY)
