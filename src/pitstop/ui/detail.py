"""The page of one registry object: its spec laid out for people, versions, diffs, lineage,
freshness, and a few rows of its offline data.

The page is drawn from the object's stored spec (what ``pitstop <kind> describe -o json``
prints), so every kind gets one: the properties a kind is known for come first, in words;
anything else in the spec is listed under "Other properties" as it is stored. Lineage nodes the
principal may not describe are drawn without their names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pitstop.access import Resource, authorize, policy_of
from pitstop.catalog.lineage import DIRECTIONS, LineageGraph
from pitstop.definitions.serde import VIEW_KINDS, kind_for
from pitstop.errors import RetrievalError
from pitstop.registry.audit import current_actor
from pitstop.registry.specs import MISSING
from pitstop.ui.graph import Drawing, layout
from pitstop.ui.http import Request, Response
from pitstop.ui.pages import about, page
from pitstop.ui.render import render
from pitstop.ui.views import collection_of, object_url

#: Spec keys shown by their own sections (never under "Other properties").
SHOWN = {"name", "description", "tags", "owner", "schema", "features", "aggregations", "udf",
         "sources", "request_sources", "entities", "join_keys", "source", "batch_source",
         "ttl_seconds", "online", "offline", "type", "path", "timestamp_field",
         "created_timestamp_column", "feature_service", "training_datasets", "uri", "storage",
         "actions", "roles", "types", "name_patterns", "required_tags", "principals",
         "value_type", "mode", "field_mapping", "file_format"}  # fmt: skip
SAMPLED = ("feature_view", "stream_feature_view")


@page("/{collection}/{name}", "Object")
def detail(request: Request) -> Response:
    _, cls = collection_of(request)
    name = request.params["name"]
    catalog = request.ui.store.catalog
    entry = catalog.describe(cls, name)  # describe permission, or 403
    kind, spec = entry.kind, entry.record.spec or {}
    versions = list(reversed(catalog.history(name, cls)))
    direction = request.arg("direction", "both")
    if direction not in DIRECTIONS:
        raise RetrievalError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    graph = catalog.lineage(name, cls, direction=direction)
    hidden, drawing = hidden_nodes(request, graph), layout(graph)
    return render(
        request, "detail.html", title=f"{name} ({kind.replace('_', ' ')})", kind=kind,
        name=name, spec=spec, record=entry.record, facts=facts(request, kind, spec),
        other=other_properties(spec), schema=schema(request, spec), versions=versions,
        diff=diff(request, catalog, name, cls, versions), direction=direction,
        drawing=drawing, hidden=hidden, edges=edge_rows(request, graph, hidden, drawing),
        sampled=kind in SAMPLED, may_sample=kind in SAMPLED and may(request, "read_offline",
                                                                    entry.object),
        freshness=freshness(request, kind, spec),
        lookup=kind in ("feature_service", *SAMPLED, "on_demand_feature_view"),
        more=more_pages(request, kind, name),
    )  # fmt: skip


def more_pages(request: Request, kind: str, name: str) -> list[tuple[str, str]]:
    """Links to the pages declared about this kind of object (:func:`pages.about`)."""
    collection = request.params["collection"]
    return [(p.title, request.url(p.path.replace("{collection}", collection)
                                  .replace("{name}", quote(name, safe=""))))
            for p in about(kind)]  # fmt: skip


# --- facts -----------------------------------------------------------------------------------


def _link(request: Request, kind: str, name: str) -> dict[str, Any]:
    return {"text": name, "href": object_url(request, kind, name)}


def _text(value: Any) -> dict[str, Any]:
    return {"text": str(value), "href": None}


def facts(request: Request, kind: str, spec: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    """The properties a kind is known for, as (label, items) with links where they lead."""
    from pitstop.cli.output import duration

    rows: list[tuple[str, list[Any]]] = []

    def add(label: str, items: Iterable[dict[str, Any]]) -> None:
        listed = list(items)
        if listed:
            rows.append((label, listed))

    def value(label: str, key: str, show: Any = str) -> None:
        if spec.get(key) not in (None, "", [], {}):
            add(label, [_text(show(spec[key]))])

    source = spec.get("source") if isinstance(spec.get("source"), Mapping) else None
    add("Entities", (_link(request, "entity", e) for e in spec.get("entities") or ()))
    value("Join keys", "join_keys", ", ".join)
    value("Value type", "value_type")
    if "ttl_seconds" in spec:
        add("TTL", [_text(duration(spec["ttl_seconds"]) if spec["ttl_seconds"] else "none")])
    if "online" in spec:
        add("Online", [_text("yes" if spec["online"] else "no")])
    if "offline" in spec:
        add("Offline", [_text("yes" if spec["offline"] else "no")])
    if source is not None:
        add("Source", [_link(request, "data_source", source["name"]),
                       _text(f"({source.get('type', '')})")])  # fmt: skip
        if source.get("batch_source"):
            add("Batch source", [_link(request, "data_source", source["batch_source"]["name"])])
    if kind == "data_source":
        value("Type", "type")
        value("Path", "path")
        value("File format", "file_format")
        if spec.get("batch_source"):
            add("Batch source", [_link(request, "data_source", spec["batch_source"]["name"])])
    value("Timestamp field", "timestamp_field")
    value("Created timestamp column", "created_timestamp_column")
    if spec.get("field_mapping"):
        add("Field mapping", (_text(f"{k} → {v}") for k, v in spec["field_mapping"].items()))
    if kind == "on_demand_feature_view":
        add("Source views", (_link(request, "feature_view", s["name"])
                             for s in spec.get("sources") or ()))  # fmt: skip
        add("Request sources", (_link(request, "data_source", s["name"])
                                for s in spec.get("request_sources") or ()))  # fmt: skip
    value("Mode", "mode")
    if kind in ("saved_dataset", "model") and spec.get("feature_service"):
        add("Feature service", [_link(request, "feature_service", spec["feature_service"])])
    add("Training datasets", (_link(request, "saved_dataset", d)
                              for d in spec.get("training_datasets") or ()))  # fmt: skip
    value("URI", "uri")
    if isinstance(spec.get("storage"), Mapping):
        value("Storage", "storage", lambda s: s.get("path", s))
    if kind == "permission":
        add("Roles", (_link(request, "role", r) for r in spec.get("roles") or ()))
        value("Actions", "actions", ", ".join)
        add("Kinds", [_text(", ".join(spec.get("types") or ()) or "every kind")])
        add("Name patterns", [_text(", ".join(spec.get("name_patterns") or ()) or "any name")])
        value("Required tags", "required_tags",
              lambda t: ", ".join(f"{k}={v}" for k, v in t.items()))  # fmt: skip
    value("Principals", "principals", ", ".join)
    return rows


def other_properties(spec: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Spec keys no section shows, with their stored values."""
    return [(k, v) for k, v in spec.items() if k not in SHOWN and v not in (None, "", [], {})]


def schema(request: Request, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The fields (name, dtype, description; join keys marked), aggregations, the features
    of a service (linked to their views) or dataset, and an on-demand view's code."""
    objects = request.ui.store.catalog.snapshot().objects
    keys = set(spec.get("join_keys") or ())
    fields = [{"name": f.get("name", ""), "dtype": f.get("dtype", ""),
               "description": f.get("description", ""), "key": f.get("name") in keys,
               "tags": f.get("tags") or {}}
              for f in spec.get("schema") or () if isinstance(f, Mapping)]  # fmt: skip
    projections = []
    for p in spec.get("features") or ():
        if isinstance(p, Mapping):
            kind = next((k for k in VIEW_KINDS if p.get("name") in objects.get(k, {})), None)
            view = objects[kind][p["name"]] if kind else None
            chosen = set(p.get("features") or ())
            typed = [{"name": f.name, "dtype": str(f.dtype)} for f in getattr(view, "features", ())
                     if not chosen or f.name in chosen]  # fmt: skip
            href = object_url(request, kind, p["name"]) if kind else None
            projections.append({**p, "href": href, "fields": typed})
    refs = [str(p) for p in spec.get("features") or () if isinstance(p, str)]
    udf = spec.get("udf") if isinstance(spec.get("udf"), Mapping) else None
    return {"fields": fields, "aggregations": list(spec.get("aggregations") or ()),
            "projections": projections, "refs": refs, "udf": udf}  # fmt: skip


def freshness(request: Request, kind: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """When the view was last materialized up to, and whether that is older than its TTL."""
    if kind not in SAMPLED or not spec.get("online", True):
        return None
    from pitstop.engine.materialize import watermark

    mark = watermark(request.ui.store.registry.store, spec["name"])
    if mark is None:
        return {"until": None, "stale": False}
    ttl = spec.get("ttl_seconds") or 0
    stale = bool(ttl) and datetime.now(UTC) - mark > timedelta(seconds=ttl)
    return {"until": mark, "stale": stale}


# --- versions --------------------------------------------------------------------------------


def diff(request: Request, catalog: Any, name: str, cls: Any, versions: list[Any]) -> Any:
    """The changes between two versions (``?v1=&v2=``; by default the last two)."""
    if len(versions) < 2 and not request.arg("v1"):
        return None
    try:
        v2 = int(request.arg("v2") or versions[0].version)
        v1 = int(request.arg("v1") or v2 - 1)
    except ValueError:
        raise RetrievalError("v1 and v2 must be version numbers") from None
    changes = catalog.diff(name, v1, v2, cls)
    rows = [{"path": c.path, "op": c.op, "old": None if c.old is MISSING else c.old,
             "new": None if c.new is MISSING else c.new} for c in changes]  # fmt: skip
    return {"v1": v1, "v2": v2, "changes": rows}


# --- lineage ---------------------------------------------------------------------------------


def may(request: Request, action: str, obj: Any) -> bool:
    """Whether the principal may do ``action`` on ``obj`` (asked without recording a
    refusal: the page only leaves out what would be refused)."""
    policy = policy_of(request.ui.store.catalog.snapshot())
    return policy.allows(current_actor(), action, Resource.of(obj))


def hidden_nodes(request: Request, graph: LineageGraph) -> set[str]:
    """Ids of the lineage nodes the principal may not describe (drawn without their names)."""
    snapshot = request.ui.store.catalog.snapshot()
    policy = policy_of(snapshot)
    if not policy.enabled:
        return set()
    actor, hidden = current_actor(), set()
    for node in graph.nodes:
        obj = snapshot.objects.get(node.kind, {}).get(node.name)
        resource = Resource.of(obj) if obj is not None else Resource(node.kind, node.name)
        if node != graph.root and not policy.allows(actor, "describe", resource):
            hidden.add(node.id)
    return hidden


def edge_rows(
    request: Request, graph: LineageGraph, hidden: set[str], drawn: Drawing
) -> list[dict[str, Any]]:
    """The edges of the drawing as text, for the list beside it (screen readers, copying)."""
    shown = {p.node for p in drawn.nodes}

    def end(node: Any) -> dict[str, Any]:
        if node.id in hidden:
            return {"text": "(restricted)", "href": None, "kind": node.kind}
        href = None if node.missing else object_url(request, node.kind, node.name)
        return {"text": node.name, "href": href, "kind": node.kind, "missing": node.missing}

    seen, rows = set(), []
    for e in graph.edges:
        if (e.source, e.target) not in seen and e.source in shown and e.target in shown:
            seen.add((e.source, e.target))
            rows.append({"source": end(e.source), "target": end(e.target),
                         "relation": e.relation})  # fmt: skip
    return rows


# --- sample rows -----------------------------------------------------------------------------


@page("/{collection}/{name}/sample", "Sample rows")
def sample(request: Request) -> Response:
    """A few rows of a view's offline data (a fragment the detail page loads after itself)."""
    from pitstop.ui.samples import sample_rows

    _, cls = collection_of(request)
    store = request.ui.store
    view = store.catalog.get(cls, request.params["name"], fresh=True)
    authorize(store.catalog.snapshot(), "read_offline", Resource.of(view))
    table = sample_rows(store, view)
    if request.arg("fragment") == "1":
        return render(request, "sample.html", table=table)
    return render(request, "sample_page.html", title=f"Sample rows of {view.name}",
                  name=view.name, kind=kind_for(cls), table=table)  # fmt: skip
