"""Load a feature repository: import its Python files and collect the definitions in them.

Files may say ``from feast import ...``: while they load, those imports give pitstop's objects
(:mod:`pitstop.feast_imports`).
"""

from __future__ import annotations

import ast
import importlib
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pitstop.definitions.base import Definition
from pitstop.definitions.feature_view import FeatureView, Projectable, Projection
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.serde import kind_of
from pitstop.definitions.sources import DataSource, KafkaSource, PushSource
from pitstop.errors import RepoError
from pitstop.feast_imports import FeastImports, Problem

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


def load_repo(root: str | Path, *, project: str | None = None) -> RepoContents:
    """Import every Python file of the repo at ``root`` and collect its definitions.

    Files may import from ``pitstop`` or, unchanged, from ``feast`` (see
    :mod:`pitstop.feast_imports`). Every file is tried; the problems of all files are reported
    together in one :class:`RepoError`. With ``project``, a ``Project`` defined in the repo must
    have that name (the ``project`` of ``feature_store.yaml``).
    """
    root = Path(root).resolve()
    files = python_files(root)
    names = [_module_name(root, p) for p in files]
    _forget(root, names)
    found: list[tuple[str, dict[str, Definition], set[str]]] = []
    failures: list[_Failure] = []
    importlib.invalidate_caches()  # see files created or changed since the last load
    sys.path.insert(0, str(root))
    bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ folders in the user's repo
    try:
        with FeastImports(root) as feast:
            for path, name in zip(files, names, strict=True):
                if not name:
                    continue
                origin = str(path.relative_to(root))
                try:
                    module = _import(name, origin, root)
                except _Failure as failure:
                    failures.append(failure)
                    continue
                values = {
                    key: value
                    for key, value in vars(module).items()
                    if isinstance(value, Definition) and not isinstance(value, type)
                }
                found.append((origin, values, _imported_names(path)))
    finally:
        sys.path.remove(str(root))
        sys.dont_write_bytecode = bytecode
    _raise_problems(feast.problems, failures)
    # First what each file defines, then what it imports or embeds: an object's origin is the
    # file that defines it, not the first file (alphabetically) that imports it.
    contents = RepoContents()
    for origin, values, imported in found:
        for key, value in values.items():
            if _defined_here(key, value, imported):
                collect(contents, value, origin, nested=False)
    for origin, values, _ in found:
        for value in values.values():
            collect(contents, value, origin)
    if project is not None:
        _check_project(contents, project)
    return contents


class _Failure(RepoError):
    """A file that raised while it was imported, and the repo file the error comes from."""

    def __init__(self, message: str, origin: str, source: str | None) -> None:
        super().__init__(message)
        self.origin = origin
        self.source = source or origin


def _raise_problems(problems: list[Problem], failures: list[_Failure]) -> None:
    """One error for everything that went wrong, or nothing.

    An exception in a file that uses an unsupported construct is most likely its consequence,
    and files that fail because they import the same broken file repeat one error: those are
    left out.
    """
    flagged = {p.file for p in problems}
    own: dict[str, _Failure] = {}
    for f in failures:
        if f.origin not in flagged and f.source not in flagged:
            own.setdefault(f.source, f)
    found = [(p.file, str(p)) for p in problems] + [(f.origin, str(f)) for f in own.values()]
    messages = [m for _, m in sorted(found, key=lambda item: item[0])]  # by file, stable
    if not messages:
        return
    if len(messages) == 1 and own:
        raise RepoError(messages[0]) from next(iter(own.values())).__cause__
    listed = "\n".join(f"  - {m}" for m in messages)
    raise RepoError(
        f"the feature repo has {len(messages)} problem{'s' if len(messages) > 1 else ''}; "
        f"fix them all and run again:\n{listed}"
    )


def _check_project(contents: RepoContents, project: str) -> None:
    for name, origin in [(n, o) for (k, n), o in contents.origins.items() if k == "project"]:
        if name != project:
            raise RepoError(
                f"Project {name!r} in {origin} is not the project {project!r} of "
                "feature_store.yaml; give both the same name"
            )


def _defined_here(key: str, value: Definition, imported: set[str]) -> bool:
    """Whether a file's top-level ``key`` is its own object (not imported, not a projection)."""
    if key in imported or "*" in imported:
        return False
    return not isinstance(value, Projectable) or value.projection == Projection(name=value.name)


def _imported_names(path: Path) -> set[str]:
    """The names a file binds with top-level import statements."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return set()
    return {
        alias.asname or alias.name.split(".")[0]
        for stmt in tree.body
        if isinstance(stmt, ast.Import | ast.ImportFrom)
        for alias in stmt.names
    }


def _import(name: str, origin: str, root: Path) -> object:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        # the innermost line of the user's repo, not of pitstop or importlib; a SyntaxError
        # has no such frame, but its message already names the file and line
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if Path(f.filename).is_relative_to(root)
        ]
        source = str(Path(frames[-1].filename).relative_to(root)) if frames else None
        where = f" (line {frames[-1].lineno} of {source})" if frames else ""
        raise _Failure(
            f"cannot load {origin}: {type(exc).__name__}: {exc}{where}; fix the file or move it "
            "out of the feature repo",
            origin,
            source,
        ) from exc


def collect(contents: RepoContents, value: Definition, origin: str, *, nested: bool = True) -> None:
    """Add ``value`` and (with ``nested``) the sources it embeds."""
    try:
        kind_of(value)
    except TypeError:
        return  # fields, aggregations and other parts are collected through their owners
    if isinstance(value, Projectable) and value.projection != Projection(name=value.name):
        value = value._copy(projection=Projection(name=value.name))  # the view, not a selection
    contents.add(value, origin)
    if not nested:
        return
    if isinstance(value, FeatureView):
        collect(contents, value.source, origin)
    elif isinstance(value, PushSource | KafkaSource) and value.batch_source is not None:
        collect(contents, value.batch_source, origin)  # a Kafka source's may be missing
    elif isinstance(value, OnDemandFeatureView):
        for req in value.request_sources:
            collect(contents, req, origin)
    elif isinstance(value, DataSource):
        pass
