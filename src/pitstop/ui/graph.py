"""A layered drawing of a lineage graph, computed here, drawn as SVG by a template.

Lineage graphs are small directed acyclic graphs (data sources → views → services → datasets
→ models), so the classic layered method does well and stays short:

1. **layers** — each node sits one layer right of its furthest predecessor (longest path from
   the sources), so every edge points left to right;
2. **dummy nodes** — an edge spanning several layers gets a bend point in each layer it
   crosses, so that it is routed between nodes, not through them;
3. **order** — nodes within a layer start sorted by kind and name, then a few sweeps move each
   node to the mean position (barycenter) of its neighbours in the previous layer, left to
   right and back, which removes most crossings;
4. **coordinates** — layers are columns; nodes are stacked in their order and each column is
   centred; edges are cubic curves through their bend points.

Graphs with more than :data:`MAX_NODES` nodes keep the nodes nearest the root (the drawing
says how many were left out). ``layout(graph)`` returns plain numbers for the template.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from pitstop.catalog.lineage import Edge, LineageGraph, Node
from pitstop.registry.snapshot import LABELS

__all__ = ["MAX_NODES", "Drawing", "Placed", "Wire", "layout"]

MAX_NODES = 80
NODE_W, NODE_H = 200, 44
GAP_X, GAP_Y = 70, 16
DUMMY_H = 10
MARGIN = 8
MAX_CHARS = 26
SWEEPS = 4
#: Left-to-right order of kinds within a layer before the sweeps (sources first).
KIND_ORDER = ("entity", "data_source", "feature_view", "stream_feature_view",
              "on_demand_feature_view", "feature_service", "saved_dataset", "model")  # fmt: skip


@dataclass(frozen=True)
class Placed:
    """A node with its box (top-left corner) and the text shown in it."""

    node: Node
    x: float
    y: float
    label: str  # the name, shortened to fit
    kind_label: str
    root: bool

    @property
    def full_name(self) -> str:
        return self.node.name


@dataclass(frozen=True)
class Wire:
    """An edge as an SVG path (``d``) with its relation, for the tooltip and the list."""

    source: Node
    target: Node
    relation: str
    d: str


@dataclass(frozen=True)
class Drawing:
    """Everything the template needs: size, boxes, curves, and what was left out."""

    width: float
    height: float
    nodes: tuple[Placed, ...]
    wires: tuple[Wire, ...]
    node_w: int
    node_h: int
    omitted: int  # nodes not drawn (beyond MAX_NODES)


def layout(graph: LineageGraph, max_nodes: int = MAX_NODES) -> Drawing:
    """Lay ``graph`` out left to right (see the module docstring)."""
    nodes, edges, omitted = _nearest(graph, max_nodes)
    layer = _layers(nodes, edges)
    ranks, chains = _with_dummies(nodes, edges, layer)
    _order(ranks, chains)
    pos = _coordinates(ranks)
    placed = tuple(
        Placed(n, *pos[n], _shorten(n.name), LABELS.get(n.kind, n.kind), n == graph.root)
        for column in ranks for n in column if isinstance(n, Node)
    )  # fmt: skip
    wires = tuple(Wire(e.source, e.target, e.relation, _path([pos[p] for p in chain]))
                  for e, chain in chains)  # fmt: skip
    width = max((x for x, _ in pos.values()), default=0) + NODE_W + 2 * MARGIN
    height = max((y + _height(n) for n, (_, y) in pos.items()), default=0) + MARGIN
    return Drawing(width, height, placed, wires, NODE_W, NODE_H, omitted)


# --- which nodes -----------------------------------------------------------------------------


def _nearest(graph: LineageGraph, limit: int) -> tuple[list[Node], list[Edge], int]:
    """The nodes within the fewest steps of the root (either direction), at most ``limit``,
    and the edges between them (one per pair of nodes)."""
    near: dict[Node, list[Node]] = defaultdict(list)
    unique: dict[tuple[Node, Node], Edge] = {}
    for e in graph.edges:
        if (e.source, e.target) not in unique and e.source != e.target:
            unique[e.source, e.target] = e
            near[e.source].append(e.target)
            near[e.target].append(e.source)
    kept, queue = {graph.root: 0}, deque([graph.root])
    while queue and len(kept) < limit:
        node = queue.popleft()
        for other in sorted(near[node], key=_sort_key):
            if other not in kept and len(kept) < limit:
                kept[other] = kept[node] + 1
                queue.append(other)
    total = len({*graph.nodes, graph.root})
    edges = [e for e in unique.values() if e.source in kept and e.target in kept]
    return sorted(kept, key=_sort_key), edges, total - len(kept)


def _sort_key(node: Node) -> tuple[int, str, str]:
    rank = KIND_ORDER.index(node.kind) if node.kind in KIND_ORDER else len(KIND_ORDER)
    return rank, node.name, node.kind


# --- layers and bend points -------------------------------------------------------------------


def _layers(nodes: Sequence[Node], edges: Sequence[Edge]) -> dict[Node, int]:
    """Longest path from the sources; an edge closing a cycle (none are expected) is ignored."""
    preds: dict[Node, list[Node]] = defaultdict(list)
    succs: dict[Node, list[Node]] = defaultdict(list)
    for e in edges:
        preds[e.target].append(e.source)
        succs[e.source].append(e.target)
    waiting = {n: len(preds[n]) for n in nodes}
    layer = dict.fromkeys(nodes, 0)
    ready = deque(n for n in nodes if waiting[n] == 0)
    done: set[Node] = set()
    while len(done) < len(nodes):
        if not ready:  # a cycle: release the first node still waiting
            ready.append(next(n for n in nodes if n not in done))
        node = ready.popleft()
        if node in done:
            continue
        done.add(node)
        for nxt in succs[node]:
            if nxt not in done:
                layer[nxt] = max(layer[nxt], layer[node] + 1)
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    ready.append(nxt)
    return layer


@dataclass(frozen=True, eq=False)
class _Dummy:
    """A bend point of a long edge, in one layer."""

    layer: int


Slot = Node | _Dummy


def _with_dummies(
    nodes: Sequence[Node], edges: Sequence[Edge], layer: dict[Node, int]
) -> tuple[list[list[Slot]], list[tuple[Edge, list[Slot]]]]:
    """The columns (nodes and bend points per layer) and each edge's chain of slots."""
    ranks: list[list[Slot]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for n in nodes:
        ranks[layer[n]].append(n)
    chains: list[tuple[Edge, list[Slot]]] = []
    for e in sorted(edges, key=lambda e: (_sort_key(e.source), _sort_key(e.target))):
        a, b = layer[e.source], layer[e.target]
        if b <= a:  # a cycle's closing edge: drawn directly
            chains.append((e, [e.source, e.target]))
            continue
        chain: list[Slot] = [e.source]
        for i in range(a + 1, b):
            dummy = _Dummy(i)
            ranks[i].append(dummy)
            chain.append(dummy)
        chain.append(e.target)
        chains.append((e, chain))
    return ranks, chains


def _order(ranks: list[list[Slot]], chains: Iterable[tuple[Edge, list[Slot]]]) -> None:
    """Barycenter sweeps, in place: each slot moves to the mean position of its neighbours in
    the layer just before (forward sweeps) or just after (backward sweeps)."""
    left: dict[Slot, list[Slot]] = defaultdict(list)
    right: dict[Slot, list[Slot]] = defaultdict(list)
    for _, chain in chains:
        for a, b in pairwise(chain):
            right[a].append(b)
            left[b].append(a)
    for sweep in range(SWEEPS):
        forward = sweep % 2 == 0
        order = range(1, len(ranks)) if forward else range(len(ranks) - 2, -1, -1)
        for i in order:
            other = ranks[i - 1] if forward else ranks[i + 1]
            index = {slot: k for k, slot in enumerate(other)}
            links = left if forward else right

            def center(slot: Slot, k: int, links: dict[Slot, list[Slot]] = links,
                       index: dict[Slot, int] = index) -> float:  # fmt: skip
                near = [index[s] for s in links[slot] if s in index]
                return sum(near) / len(near) if near else float(k)

            ranks[i] = [s for _, s in sorted(((center(s, k), k), s) for k, s in
                                             enumerate(ranks[i]))]  # fmt: skip


def _height(slot: Slot) -> int:
    return NODE_H if isinstance(slot, Node) else DUMMY_H


def _coordinates(ranks: list[list[Slot]]) -> dict[Slot, tuple[float, float]]:
    """Top-left corners: one column per layer, each column centred vertically."""
    heights = [sum(_height(s) for s in col) + GAP_Y * max(len(col) - 1, 0) for col in ranks]
    tallest = max(heights, default=0)
    pos: dict[Slot, tuple[float, float]] = {}
    for i, col in enumerate(ranks):
        x = MARGIN + i * (NODE_W + GAP_X)
        y = MARGIN + (tallest - heights[i]) / 2
        for slot in col:
            pos[slot] = (x, y)
            y += _height(slot) + GAP_Y
    return pos


def _path(corners: list[tuple[float, float]]) -> str:
    """A curve from the right side of the first box to the left side of the last, crossing
    each column with a bend point in a straight line through that point's slot."""
    x0, y0 = corners[0][0] + NODE_W, corners[0][1] + NODE_H / 2
    d = [f"M{x0:.1f},{y0:.1f}"]

    def curve(x1: float, y1: float) -> None:
        bend = (x1 - x0) / 2
        d.append(f"C{x0 + bend:.1f},{y0:.1f} {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")

    for x, y in corners[1:-1]:
        curve(x, y + DUMMY_H / 2)
        x0, y0 = x + NODE_W, y + DUMMY_H / 2
        d.append(f"L{x0:.1f},{y0:.1f}")
    x, y = corners[-1]
    curve(x - 6, y + NODE_H / 2)  # room for the arrow head
    return " ".join(d)


def _shorten(name: str) -> str:
    return name if len(name) <= MAX_CHARS else name[: MAX_CHARS - 1] + "…"
