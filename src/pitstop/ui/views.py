"""Catalog pages: the overview, search, and the list of each kind of object.

Every read goes through :class:`~pitstop.catalog.Catalog` as the request's principal, so the
catalog's one rule decides what is shown: listings and search hold only objects the principal
may ``describe``, and a page of an object it may not describe is a 403.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from pitstop.catalog.kinds import COLLECTIONS
from pitstop.definitions.base import Definition
from pitstop.definitions.field import Field
from pitstop.definitions.serde import kind_for
from pitstop.errors import NotFoundError, RetrievalError, suggest
from pitstop.ui.http import Request, Response
from pitstop.ui.pages import page
from pitstop.ui.render import render

PAGE_SIZE = 50
T = TypeVar("T")
SEARCH_LIMIT = 50
FRAGMENT_LIMIT = 12
_BY_KIND = {kind_for(cls): name for name, cls in COLLECTIONS.items()}


def object_url(request: Request, kind: str, name: str) -> str:
    """The page of the object ``kind``/``name``."""
    return request.url(f"/{_BY_KIND.get(kind, kind)}/{quote(name, safe='')}")


def collection_of(request: Request) -> tuple[str, type[Definition]]:
    """The collection named in the path (``feature-views``) and its class."""
    name = request.params["collection"]
    cls = COLLECTIONS.get(name)
    if cls is None:
        raise NotFoundError(f"no page {request.path!r}: {name!r} is not a kind of registry "
                            f"object.{suggest(name, COLLECTIONS)}")  # fmt: skip
    return name, cls


def tag_filter(request: Request) -> dict[str, str]:
    """``tag=key=value`` query fields (several: repeated or comma-separated; ``key:value``
    also accepted)."""
    tags = {}
    pairs = [p.strip() for value in request.args("tag") for p in value.split(",") if p.strip()]
    for pair in pairs:
        key, sep, value = pair.partition("=") if "=" in pair else pair.partition(":")
        if not sep or not key.strip():
            raise RetrievalError(f"tag filter {pair!r}: write key=value, e.g. team=growth")
        tags[key.strip()] = value.strip()
    return tags


# --- overview --------------------------------------------------------------------------------


@page("/", "Overview", nav="Catalog")
def overview(request: Request) -> Response:
    catalog = request.ui.store.catalog
    counts = []
    for name, cls in COLLECTIONS.items():
        found = catalog.list(cls)
        extra = sum(len(getattr(o, "features", ())) for o in found) if _has_features(cls) else 0
        counts.append((name, kind_for(cls), len(found), extra))
    return render(request, "overview.html", title="Overview", counts=counts,
                  serial=catalog.snapshot().serial)  # fmt: skip


def _has_features(cls: type[Definition]) -> bool:
    return kind_for(cls) in ("feature_view", "stream_feature_view", "on_demand_feature_view")


# --- search ----------------------------------------------------------------------------------


@page("/search", "Search", nav="Catalog")
def search(request: Request) -> Response:
    """The search page; ``fragment=1`` answers the result list alone (as-you-type)."""
    query = request.arg("q")
    kind = request.arg("kind")
    fragment = request.arg("fragment") == "1"
    hits: list[Any] = []
    if query:
        kinds: list[type[Definition]] = []
        if kind == "feature":
            kinds = [Field]
        elif kind:
            kinds = [collection_class(kind)]
        hits = request.ui.store.catalog.search(
            query, kinds=kinds, tags=tag_filter(request), owner=request.arg("owner") or None,
            limit=FRAGMENT_LIMIT if fragment else SEARCH_LIMIT,
        )  # fmt: skip
    results = [_result(request, h) for h in hits]
    template = "search_results.html" if fragment else "search.html"
    return render(request, template, title=f"Search: {query}" if query else "Search",
                  query=query, kind=kind, results=results)  # fmt: skip


def collection_class(name: str) -> type[Definition]:
    cls = COLLECTIONS.get(name)
    if cls is None:
        raise RetrievalError(f"kind {name!r} is not one of feature, {', '.join(COLLECTIONS)}")
    return cls


def _result(request: Request, hit: Any) -> dict[str, Any]:
    href = object_url(request, hit.kind, hit.name)
    if hit.feature:
        href += f"#feature-{quote(hit.feature, safe='')}"
    data: dict[str, Any] = hit.to_dict()
    data["href"] = href
    return data


# --- lists -----------------------------------------------------------------------------------


@page("/{collection}", "Objects")
def listing(request: Request) -> Response:
    """One kind's objects, filtered by tag, owner and name, a page at a time."""
    name, cls = collection_of(request)
    other = request.arg("kind")
    if other and other != name:  # the kind chosen in the filter form
        collection_class(other)
        keep = {k: v for k, v in request.query.items() if k not in ("kind", "page")}
        return Response.redirect(request.url(f"/{other}", **keep))
    tags, owner = tag_filter(request), request.arg("owner") or None
    text = request.arg("q").lower()
    found = request.ui.store.catalog.list(cls, tags=tags, owner=owner)
    if text:
        found = [o for o in found if text in o.name.lower()]
    shown, number, pages = paginate(request, found)
    rows = [_row(request, obj) for obj in shown]
    owners = sorted({getattr(o, "owner", "") for o in found} - {""})
    return render(request, "list.html", title=_title(cls), collection=name,
                  kind=kind_for(cls), rows=rows, total=len(found), page=number, pages=pages,
                  tags=tags, owner=owner or "", q=request.arg("q"), owners=owners,
                  columns=_columns(kind_for(cls)))  # fmt: skip


def paginate(request: Request, items: Sequence[T]) -> tuple[Sequence[T], int, int]:
    """The items of the page ``?page=N`` asks for (:data:`PAGE_SIZE` a page), its number and
    how many pages there are."""
    try:
        number = max(1, int(request.arg("page", "1")))
    except ValueError:
        raise RetrievalError(f"page {request.arg('page')!r} is not a number") from None
    pages = max(1, -(-len(items) // PAGE_SIZE))
    return items[(number - 1) * PAGE_SIZE : number * PAGE_SIZE], number, pages


def _title(cls: type[Definition]) -> str:
    from pitstop.catalog.kinds import label

    text = label(cls)
    return (text[:-1] + "ies" if text.endswith("y") else text + "s").capitalize()


def _columns(kind: str) -> Sequence[str]:
    """The kind-specific column of a listing (after name and before description)."""
    return {
        "entity": ["Join keys"],
        "data_source": ["Type"],
        "feature_view": ["Features", "Entities"],
        "stream_feature_view": ["Features", "Entities"],
        "on_demand_feature_view": ["Features", "Sources"],
        "feature_service": ["Views"],
        "saved_dataset": ["Features"],
        "model": ["Feature service"],
        "permission": ["Actions"],
        "role": ["Principals"],
    }.get(kind, [])


def _row(request: Request, obj: Any) -> dict[str, Any]:
    kind = kind_for(type(obj))
    cells: list[str] = []
    if kind == "entity":
        cells = [", ".join(obj.join_keys)]
    elif kind == "data_source":
        cells = [obj.source_type]
    elif kind in ("feature_view", "stream_feature_view"):
        cells = [str(len(obj.features)), ", ".join(obj.entities)]
    elif kind == "on_demand_feature_view":
        sources = [p.name for p in obj.sources] + [r.name for r in obj.request_sources]
        cells = [str(len(obj.features)), ", ".join(sources)]
    elif kind == "feature_service":
        cells = [", ".join(p.name_to_use for p in obj.projections)]
    elif kind == "saved_dataset":
        cells = [str(len(obj.features))]
    elif kind == "model":
        cells = [obj.feature_service]
    elif kind == "permission":
        cells = [", ".join(obj.actions)]
    elif kind == "role":
        cells = [", ".join(obj.principals)]
    return {"name": obj.name, "href": object_url(request, kind, obj.name), "cells": cells,
            "description": getattr(obj, "description", ""), "owner": getattr(obj, "owner", ""),
            "tags": dict(getattr(obj, "tags", {}))}  # fmt: skip


@page("/health", "Health", public=True)
def health(request: Request) -> Response:
    """``ok`` and the registry's version once the registry answers (for probes)."""
    serial = request.ui.store.catalog.serial()
    return Response(200, f"ok {serial}\n".encode(), "text/plain; charset=utf-8")
