"""Lineage: which objects feed which, from data sources to models, at any registry version.

The graph's nodes are registry objects; an edge ``a -> b`` says that ``b`` is built from
``a``:

- entity -> feature view (its keys); data source -> view (its source; a push or Kafka
  source's batch source -> that source);
- view -> on-demand view (its inputs); request source -> on-demand view;
- view -> feature service (its projections);
- feature service -> saved dataset (the service it was retrieved with; else its views);
- feature service -> model (the service it reads); saved dataset -> model (trained on).

An object that names another the registry does not hold (a model whose feature service was
removed) gets an edge from a node marked ``missing``. ``lineage(...)`` walks the graph
upstream (what an object is built from), downstream (what is built from it) or both::

    graph = catalog.lineage("user_features", FeatureView)
    print(graph.to_mermaid())
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pitstop.definitions.refs import view_of
from pitstop.definitions.serde import VIEW_KINDS
from pitstop.errors import NotFoundError, RetrievalError, suggest
from pitstop.registry.snapshot import LABELS

__all__ = ["DIRECTIONS", "Edge", "Graph", "LineageGraph", "Node"]

DIRECTIONS = ("both", "upstream", "downstream")


@dataclass(frozen=True, order=True)
class Node:
    """One registry object (``missing``: named by another object, but not registered)."""

    kind: str
    name: str
    missing: bool = field(default=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "missing": self.missing}


@dataclass(frozen=True)
class Edge:
    """``target`` is built from ``source``; ``relation`` says how."""

    source: Node
    target: Node
    relation: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source.id, "target": self.target.id, "relation": self.relation}


Specs = Mapping[str, Mapping[str, Mapping[str, Any]]]  # kind -> name -> spec


class Graph:
    """Every edge of one registry version, indexed both ways."""

    def __init__(self, specs: Specs, serial: int) -> None:
        self.serial = serial
        self.nodes: dict[tuple[str, str], Node] = {
            (kind, name): Node(kind, name) for kind, by_name in specs.items() for name in by_name
        }
        self.down: dict[Node, list[Edge]] = {}
        self.up: dict[Node, list[Edge]] = {}
        for edge in _edges(specs, self.nodes):
            self.down.setdefault(edge.source, []).append(edge)
            self.up.setdefault(edge.target, []).append(edge)

    def find(self, name: str, kind: str | None) -> Node:
        """The node of ``name`` (of ``kind``; without it, the one kind holding that name)."""
        if kind is not None:
            node = self.nodes.get((kind, name))
            if node is None:
                known = [n for k, n in self.nodes if k == kind]
                raise NotFoundError(
                    f"{LABELS.get(kind, kind)} {name!r} is not in the registry."
                    f"{suggest(name, known)}"
                )
            return node
        found = [node for (k, n), node in self.nodes.items() if n == name]
        if len(found) == 1:
            return found[0]
        if found:
            kinds = ", ".join(sorted(n.kind for n in found))
            raise RetrievalError(
                f"{name!r} names several objects ({kinds}); give the kind (--kind, kind=)"
            )
        raise NotFoundError(
            f"No object named {name!r} in the registry.{suggest(name, [n for _, n in self.nodes])}"
        )

    def walk(self, root: Node, direction: str) -> LineageGraph:
        """The objects reachable from ``root`` upstream, downstream or both."""
        if direction not in DIRECTIONS:
            raise RetrievalError(
                f"lineage direction {direction!r} is not one of {', '.join(DIRECTIONS)}"
            )
        nodes = {root}
        edges: list[Edge] = []
        for step in ("upstream", "downstream"):
            if direction not in ("both", step):
                continue
            index, far = (self.up, "source") if step == "upstream" else (self.down, "target")
            queue, seen = deque([root]), {root}
            while queue:
                for edge in index.get(queue.popleft(), ()):
                    edges.append(edge)
                    nxt: Node = getattr(edge, far)
                    if nxt not in seen:
                        seen.add(nxt)
                        queue.append(nxt)
            nodes |= seen
        return LineageGraph(root, tuple(sorted(nodes)), tuple(edges), direction, self.serial)


@dataclass(frozen=True)
class LineageGraph:
    """What feeds ``root`` and what it feeds, at registry version ``version``."""

    root: Node
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    direction: str
    version: int

    def upstream(self) -> list[Node]:
        """Objects ``root`` is built from, nearest first."""
        return self._reach("source")

    def downstream(self) -> list[Node]:
        """Objects built from ``root``, nearest first."""
        return self._reach("target")

    def _reach(self, far: str) -> list[Node]:
        near = "target" if far == "source" else "source"
        order, queue = [], deque([self.root])
        seen = {self.root}
        while queue:
            node = queue.popleft()
            for edge in self.edges:
                if getattr(edge, near) == node and getattr(edge, far) not in seen:
                    seen.add(getattr(edge, far))
                    order.append(getattr(edge, far))
                    queue.append(getattr(edge, far))
        return order

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root.id,
            "direction": self.direction,
            "registry_version": self.version,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_dot(self) -> str:
        """Graphviz: ``pitstop lineage NAME -o dot | dot -Tsvg > lineage.svg``."""
        lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
        for n in self.nodes:
            style = ', style="bold,filled", fillcolor="#ffe9a8"' if n == self.root else ""
            style += ", style=dashed, color=red" if n.missing else ""
            label = f"{n.name}\\n{LABELS.get(n.kind, n.kind)}"
            lines.append(f"  {json.dumps(n.id)} [label={json.dumps(label)}{style}];")
        for e in self.edges:
            lines.append(f"  {json.dumps(e.source.id)} -> {json.dumps(e.target.id)}"
                         f" [label={json.dumps(e.relation)}];")  # fmt: skip
        return "\n".join([*lines, "}"])

    def to_mermaid(self) -> str:
        """A Mermaid flowchart (Markdown renderers on code hosts draw it)."""
        ids = {n: f"n{i}" for i, n in enumerate(self.nodes)}
        lines = ["flowchart LR"]
        for n in self.nodes:
            text = f"{n.name}<br/><i>{LABELS.get(n.kind, n.kind)}</i>".replace('"', "#quot;")
            lines.append(f'  {ids[n]}["{text}"]')
        for e in self.edges:
            lines.append(f"  {ids[e.source]} -->|{e.relation}| {ids[e.target]}")
        lines.append(f"  style {ids[self.root]} stroke-width:3px")
        lines += [f"  style {ids[n]} stroke-dasharray: 5 5" for n in self.nodes if n.missing]
        return "\n".join(lines)

    def to_text(self) -> str:
        """Indented trees, upstream then downstream, for people."""
        out = [f"{self.root.name} ({LABELS.get(self.root.kind, self.root.kind)}),"
               f" registry version {self.version}"]  # fmt: skip
        for title, far in (("upstream", "source"), ("downstream", "target")):
            if self.direction not in ("both", title):
                continue
            near = "target" if far == "source" else "source"
            lines = list(self._tree(self.root, near, far, 1, {self.root}))
            out.append(f"{title}:" + ("" if lines else " (none)"))
            out += lines
        return "\n".join(out)

    def _tree(self, node: Node, near: str, far: str, depth: int, shown: set[Node]) -> Iterator[str]:
        for edge in self.edges:
            if getattr(edge, near) != node:
                continue
            other: Node = getattr(edge, far)
            again = other in shown
            mark = " [missing]" if other.missing else (" (see above)" if again else "")
            yield (f"{'  ' * depth}{other.name} ({LABELS.get(other.kind, other.kind)},"
                   f" {edge.relation}){mark}")  # fmt: skip
            if not again:
                shown.add(other)
                yield from self._tree(other, near, far, depth + 1, shown)


def _edges(specs: Specs, nodes: dict[tuple[str, str], Node]) -> Iterable[Edge]:
    """Every edge, read off the objects' specs (no decoding: old versions are read fast)."""

    def node(kind: str, name: str) -> Node:
        return nodes.get((kind, name)) or Node(kind, name, missing=True)

    views = {n: node(k, n) for k in VIEW_KINDS for n in specs.get(k, {})}

    def view(name: str) -> Node:
        return views.get(name) or Node("feature_view", name, missing=True)

    def names(items: Any) -> list[str]:
        return [str(i["name"]) for i in items or () if isinstance(i, Mapping) and i.get("name")]

    for name, spec in specs.get("data_source", {}).items():
        for batch in names([spec.get("batch_source")]):
            yield Edge(node("data_source", batch), node("data_source", name), "batch")
    for kind in ("feature_view", "stream_feature_view"):
        for name, spec in specs.get(kind, {}).items():
            target = node(kind, name)
            for entity in spec.get("entities") or ():
                yield Edge(node("entity", entity), target, "keys")
            for source in names([spec.get("source")]):
                yield Edge(node("data_source", source), target, "source")
    for name, spec in specs.get("on_demand_feature_view", {}).items():
        target = node("on_demand_feature_view", name)
        for source in names(spec.get("sources")):
            yield Edge(view(source), target, "input")
        for request in names(spec.get("request_sources")):
            yield Edge(node("data_source", request), target, "request")
    for name, spec in specs.get("feature_service", {}).items():
        target = node("feature_service", name)
        for used in dict.fromkeys(names(spec.get("features"))):
            yield Edge(view(used), target, "features")
    for name, spec in specs.get("saved_dataset", {}).items():
        target = node("saved_dataset", name)
        if spec.get("feature_service"):
            yield Edge(node("feature_service", spec["feature_service"]), target, "retrieved")
        else:
            for used in dict.fromkeys(view_of(str(ref)) for ref in spec["features"]):
                yield Edge(view(used), target, "retrieved")
    for name, spec in specs.get("model", {}).items():
        target = node("model", name)
        yield Edge(node("feature_service", spec["feature_service"]), target, "serves")
        for dataset in spec.get("training_datasets") or ():
            yield Edge(node("saved_dataset", dataset), target, "trained on")
