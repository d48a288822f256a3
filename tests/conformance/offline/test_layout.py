"""The offline package's import graph: no cycles, no private names across modules, and the
backend-neutral services (``pitstop.engine``) reaching engines only through the protocol."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pitstop

SRC = Path(pitstop.__file__).parent
OFFLINE = SRC / "offline"


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` imported when ``path`` is imported (module level, outside
    ``if TYPE_CHECKING:``), relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])  # fmt: skip
            found.append((base, [a.name for a in node.names]))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in OFFLINE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target, names in _runtime_imports(path):
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            # ``from package import submodule`` needs the submodule; its package is being
            # imported already when a module inside it runs, so that edge is no cycle
            for candidate in submodules or [target]:
                if candidate in modules and not (name + ".").startswith(candidate + "."):
                    edges.add(candidate)
        graph[name] = edges
    return graph


def test_no_import_cycles_in_offline() -> None:
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_private_names_across_offline_modules() -> None:
    for path in OFFLINE.rglob("*.py"):
        for target, names in _runtime_imports(path):
            private = [n for n in names if n.startswith("_")]
            assert not (target.startswith("pitstop.offline") and private), (path, target, private)


def test_services_reach_engines_only_through_the_protocol() -> None:
    for path in (SRC / "engine").rglob("*.py"):
        text = path.read_text()
        for banned in ("pitstop.offline.files", "pitstop.offline.duckdb", "import duckdb"):
            assert banned not in text, (path.name, banned)


def test_every_offline_module_imports_alone() -> None:
    names = sorted(_module(p) for p in OFFLINE.rglob("*.py"))
    code = (
        "import importlib, subprocess, sys\n"
        f"for name in {names!r}:\n"
        "    subprocess.run([sys.executable, '-c', f'import {name}'], check=True)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
