"""Read-only registry endpoints: the catalog over HTTP.

::

    GET /registry/search?q=purchase&kind=feature&tag=team=growth&owner=...&limit=20
    GET /registry/{collection}                       ?tag=k=v&owner=...
    GET /registry/{collection}/{name}
    GET /registry/{collection}/{name}/history        (each version's status: served, staged)
    GET /registry/{collection}/{name}/diff?v1=1&v2=2
    GET /registry/{collection}/{name}/lineage?direction=both|upstream|downstream&version=N

``collection`` is ``entities``, ``data-sources``, ``feature-views``, ... (as on the command
line). Every answer is plain JSON from :class:`~pitstop.catalog.Catalog`; nothing here
changes the registry.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from pitstop.catalog.kinds import COLLECTIONS
from pitstop.definitions.base import Definition
from pitstop.definitions.field import Field
from pitstop.errors import NotFoundError, RetrievalError, suggest
from pitstop.registry.store import MISSING

if TYPE_CHECKING:
    from pitstop.catalog import Catalog

PREFIX = "/registry/"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
Query = dict[str, list[str]]


def parse_query(raw: bytes) -> Query:
    """The query string's parameters (each a list of its values)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RetrievalError("the query string is not UTF-8") from None
    return parse_qs(text, keep_blank_values=True)


def _one(query: Query, name: str, default: str | None = None) -> str | None:
    values = query.get(name)
    if not values:
        return default
    if len(values) > 1:
        raise RetrievalError(f"the query parameter {name!r} is given {len(values)} times; once")
    return values[0]


def _int(query: Query, name: str, default: int | None = None) -> int:
    text = _one(query, name)
    if text is None:
        if default is None:
            raise RetrievalError(f"the query parameter {name!r} is required (an integer)")
        return default
    if not re.fullmatch(r"[+-]?\d{1,9}", text.strip()):
        raise RetrievalError(f"the query parameter {name!r} must be an integer, not {text!r}")
    return int(text)


def _collection(text: str) -> type[Definition]:
    cls = COLLECTIONS.get(text)
    if cls is None:
        raise NotFoundError(
            f"no registry collection {text!r};{suggest(text, COLLECTIONS)} "
            f"collections: {', '.join(COLLECTIONS)}"
        )
    return cls


def _tags(query: Query) -> dict[str, str]:
    tags = {}
    for pair in query.get("tag", []):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RetrievalError(f"tag {pair!r}: write key=value, e.g. tag=team=growth")
        tags[key] = value
    return tags


def _owner(query: Query) -> str | None:
    return _one(query, "owner")


def _record(r: Any) -> dict[str, Any]:
    return {"kind": r.kind, "name": r.name, "version": r.version, "spec_hash": r.spec_hash,
            "author": r.author, "applied_at": r.applied_at.isoformat(),
            "deleted": r.deleted, "status": r.status}  # fmt: skip


def _change(c: Any) -> dict[str, Any]:
    return {"path": c.path, "op": c.op, "old": None if c.old is MISSING else c.old,
            "new": None if c.new is MISSING else c.new}  # fmt: skip


class RegistryEndpoints:
    """Answers ``GET /registry/...`` from a catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def get(self, path: str, query: Query) -> dict[str, Any]:
        parts = path[len(PREFIX) :].split("/")
        if parts == ["search"]:
            return self.search(query)
        cls = _collection(parts[0])
        if len(parts) == 1:
            return self.list(cls, query)
        name = parts[1]
        if not _NAME.match(name):
            raise NotFoundError(f"no object named {name!r}: names use letters, digits, _ . -")
        if len(parts) == 2:
            return self.catalog.describe(cls, name).to_dict()
        if parts[2:] == ["history"]:
            return {"versions": [_record(r) for r in self.catalog.history(name, cls)]}
        if parts[2:] == ["lineage"]:
            direction = _one(query, "direction", "both") or "both"
            version = _int(query, "version", 0) or None
            graph = self.catalog.lineage(name, cls, direction=direction, version=version)
            return graph.to_dict()
        if parts[2:] == ["diff"]:
            v1, v2 = _int(query, "v1"), _int(query, "v2")
            changes = self.catalog.diff(name, v1, v2, cls)
            return {"name": name, "v1": v1, "v2": v2, "changes": [_change(c) for c in changes]}
        raise NotFoundError(f"no endpoint {path!r}; the endpoints are listed at /docs")

    def list(self, cls: type[Definition], query: Query) -> dict[str, Any]:
        entries = self.catalog.entries(cls, tags=_tags(query), owner=_owner(query))
        return {"objects": [e.to_dict() for e in entries]}

    def search(self, query: Query) -> dict[str, Any]:
        text = _one(query, "q")
        if text is None:
            raise RetrievalError("the query parameter 'q' is required: what to search for")
        kinds: list[type[Definition]] = []
        for kind in query.get("kind", []):
            kinds.append(Field if kind == "feature" else _collection(kind))
        hits = self.catalog.search(text, kinds=kinds, tags=_tags(query), owner=_owner(query),
                                   limit=_int(query, "limit", 20))  # fmt: skip
        return {"query": text, "results": [h.to_dict() for h in hits]}
