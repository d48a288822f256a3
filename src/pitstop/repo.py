"""Load a feature repository: import its Python files and collect the definitions in them."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pitstop.definitions.base import Definition
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.serde import kind_of
from pitstop.definitions.sources import DataSource, PushSource
from pitstop.errors import RepoError

SKIP_DIRS = {
    ".venv",
    "venv",
    "env",
    "data",
    "tests",
    "__pycache__",
    "node_modules",
    "build",
    "dist",
    "site-packages",
}


@dataclass
class RepoContents:
    """Definitions found in a repo, by kind then name, and the file each came from."""

    objects: dict[str, dict[str, Definition]] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, obj: Definition, origin: str) -> None:
        kind = kind_of(obj)
        by_name = self.objects.setdefault(kind, {})
        current = by_name.get(obj.name)
        if current is None:
            by_name[obj.name] = obj
            self.origins[(kind, obj.name)] = origin
        elif current is not obj and current != obj:
            first = self.origins[(kind, obj.name)]
            raise RepoError(
                f"{kind.replace('_', ' ')} {obj.name!r} is defined twice, differently: in "
                f"{first} and in {origin}; rename one of them"
            )

    def all(self) -> Iterator[Definition]:
        for by_name in self.objects.values():
            yield from by_name.values()


def python_files(root: Path) -> list[Path]:
    """The repo's ``.py`` files, skipping hidden folders, virtualenvs, data and tests."""
    found: list[Path] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in SKIP_DIRS for p in parts[:-1]):
            continue
        if parts[-1].startswith(".") or parts[-1] == "setup.py":
            continue
        found.append(path)
    return found


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _forget(root: Path, names: list[str]) -> None:
    """Drop earlier imports of this repo's modules (or same-named ones) so files load fresh."""
    heads = {n.split(".")[0] for n in names if n}
    for mod_name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if mod_name.split(".")[0] in heads or (file and Path(file).is_relative_to(root)):
            del sys.modules[mod_name]


def load_repo(root: str | Path) -> RepoContents:
    """Import every Python file of the repo at ``root`` and collect its definitions."""
    root = Path(root).resolve()
    files = python_files(root)
    names = [_module_name(root, p) for p in files]
    _forget(root, names)
    contents = RepoContents()
    sys.path.insert(0, str(root))
    try:
        for path, name in zip(files, names, strict=True):
            if not name:
                continue
            origin = str(path.relative_to(root))
            module = _import(name, origin)
            for value in list(vars(module).values()):
                if isinstance(value, Definition) and not isinstance(value, type):
                    collect(contents, value, origin)
    finally:
        sys.path.remove(str(root))
    return contents


def _import(name: str, origin: str) -> object:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename
        ]
        where = f" (line {frames[-1].lineno} of {frames[-1].filename})" if frames else ""
        raise RepoError(
            f"cannot load {origin}: {type(exc).__name__}: {exc}{where}; fix the file or move it "
            "out of the feature repo"
        ) from exc


def collect(contents: RepoContents, value: Definition, origin: str) -> None:
    try:
        kind_of(value)
    except TypeError:
        return  # fields, aggregations and other parts are collected through their owners
    contents.add(value, origin)
    if isinstance(value, FeatureView):
        collect(contents, value.source, origin)
    elif isinstance(value, PushSource):
        collect(contents, value.batch_source, origin)
    elif isinstance(value, OnDemandFeatureView):
        for req in value.request_sources:
            collect(contents, req, origin)
    elif isinstance(value, DataSource):
        pass
