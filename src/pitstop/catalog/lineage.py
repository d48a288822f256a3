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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pitstop.definitions.datasets import Model, SavedDataset
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import DataSource
from pitstop.errors import NotFoundError, RetrievalError, suggest
from pitstop.registry.snapshot import LABELS, Snapshot

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


class Graph:
    """Every edge of one snapshot, indexed both ways."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.serial = snapshot.serial
        self.nodes: dict[tuple[str, str], Node] = {
            (kind, name): Node(kind, name)
            for kind, by_name in snapshot.objects.items()
            for name in by_name
        }
        self.down: dict[Node, list[Edge]] = {}
        self.up: dict[Node, list[Edge]] = {}
        for edge in _edges(snapshot, self.nodes):
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


def _edges(snapshot: Snapshot, nodes: dict[tuple[str, str], Node]) -> Iterable[Edge]:
    def node(kind: str, name: str) -> Node:
        return nodes.get((kind, name)) or Node(kind, name, missing=True)

    views = {n: node(k, n) for k, by in snapshot.objects.items() for n in by
             if k in ("feature_view", "stream_feature_view", "on_demand_feature_view")}  # fmt: skip

    def view(name: str) -> Node:
        return views.get(name) or Node("feature_view", name, missing=True)

    for src in snapshot.of(DataSource).values():
        batch = getattr(src, "batch_source", None)
        if isinstance(batch, DataSource):
            yield Edge(node("data_source", batch.name), node("data_source", src.name), "batch")
    for kind in ("feature_view", "stream_feature_view"):
        for fv in snapshot.objects.get(kind, {}).values():
            assert isinstance(fv, FeatureView)
            target = node(kind, fv.name)
            for entity in fv.entities:
                yield Edge(node("entity", entity), target, "keys")
            yield Edge(node("data_source", fv.source.name), target, "source")
    for odfv in snapshot.of(OnDemandFeatureView).values():
        target = node("on_demand_feature_view", odfv.name)
        for p in odfv.sources:
            yield Edge(view(p.name), target, "input")
        for req in odfv.request_sources:
            yield Edge(node("data_source", req.name), target, "request")
    for svc in snapshot.of(FeatureService).values():
        target = node("feature_service", svc.name)
        for used in dict.fromkeys(p.name for p in svc.projections):
            yield Edge(view(used), target, "features")
    for ds in snapshot.of(SavedDataset).values():
        target = node("saved_dataset", ds.name)
        if ds.feature_service is not None:
            yield Edge(node("feature_service", ds.feature_service), target, "retrieved")
        else:
            for name in ds.views:
                yield Edge(view(name), target, "retrieved")
    for model in snapshot.of(Model).values():
        target = node("model", model.name)
        yield Edge(node("feature_service", model.feature_service), target, "serves")
        for name in model.training_datasets:
            yield Edge(node("saved_dataset", name), target, "trained on")
