"""The online lookup form: pick a feature service or view, enter entity keys, see the values,
their statuses and event timestamps.

The request goes through the feature server's own handler for ``POST /get-online-features``
(:class:`~pitstop.server.handlers.Endpoints`), with the body that endpoint takes, so the page
answers exactly what a client of the server gets — access checks (``read_online``) included.
The body is shown under the answer, ready for ``curl``.
"""

from __future__ import annotations

import json
from typing import Any

from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.service import FeatureService
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import NotFoundError, RetrievalError
from pitstop.types import Bool, Float32, Float64, Int32, Int64
from pitstop.ui.http import Request, Response
from pitstop.ui.pages import page
from pitstop.ui.render import render

MAX_ROWS = 100
MAX_CHOICES = 300  # views listed in the form's choice; more: a field for the view's name
_KINDS: list[tuple[str, type[Any]]] = [
    ("service", FeatureService), ("view", FeatureView), ("view", StreamFeatureView),
    ("view", OnDemandFeatureView),
]  # fmt: skip


@page("/lookup", "Online lookup", nav="Serving")
def lookup(request: Request) -> Response:
    catalog = request.ui.store.catalog
    targets = [(f"{prefix}:{name}", name) for prefix, cls in _KINDS
               for name in (o.name for o in catalog.list(cls))]  # fmt: skip
    views_listed = sum(t.startswith("view:") for t, _ in targets) <= MAX_CHOICES
    if not views_listed:  # a name field for views instead: the page stays light
        targets = [t for t in targets if t[0].startswith("service:")]
    chosen = request.arg("target")
    if not chosen and request.arg("service"):
        chosen = f"service:{request.arg('service')}"
    if not chosen and request.arg("view"):
        chosen = f"view:{request.arg('view')}"
    full = request.arg("full") == "1"
    form: dict[str, Any] = {"target": chosen, "keys": [], "fields": [], "full": full,
                            "views_listed": views_listed}  # fmt: skip
    answer, body, error = None, None, None
    if chosen:
        snapshot = catalog.snapshot()
        features = _features(snapshot, chosen)
        try:
            keys, fields = _inputs(snapshot, features, full)
        except RetrievalError:  # two views give features one name: the answer names both
            keys, fields = _inputs(snapshot, features, True)
            form["full"] = full = True
        form["keys"] = [{"name": k, "dtype": str(t or ""), "value": request.arg(f"key.{k}")}
                        for k, t in keys.items()]  # fmt: skip
        form["fields"] = [{"name": f.name, "dtype": str(f.dtype),
                           "value": request.arg(f"req.{f.name}")} for f in fields]  # fmt: skip
        if any(k["value"] for k in form["keys"]):
            entities = {k: _values(request.arg(f"key.{k}"), t, k) for k, t in keys.items()}
            entities.update({f.name: _values(request.arg(f"req.{f.name}"), f.dtype, f.name)
                             for f in fields})  # fmt: skip
            body = {"entities": entities, "full_feature_names": full}
            if isinstance(features, FeatureService):
                body["feature_service"] = features.name
            else:
                body["features"] = features
            try:
                answer = _rows(request.ui.endpoints.get_online_features(body), len(keys))
            except RetrievalError as exc:  # the entered values: shown beside the form
                error = str(exc)
    return render(request, "lookup.html", title="Online lookup", targets=targets, form=form,
                  answer=answer, error=error,
                  body=json.dumps(body, indent=2) if body else None)  # fmt: skip


def _features(snapshot: Any, target: str) -> FeatureService | list[str]:
    """The service, or the refs of every feature of the view, ``target`` names."""
    kind, _, name = target.partition(":")
    if kind == "service":
        service: FeatureService = snapshot.get(FeatureService, name)
        return service
    if kind == "view":
        view = snapshot.view(name)
        return [f"{view.name}:{f.name}" for f in view.features]
    raise NotFoundError(f"lookup target {target!r}: choose service:<name> or view:<name>")


def _inputs(snapshot: Any, features: Any, full: bool) -> tuple[dict[str, Any], list[Any]]:
    """The join keys the request needs (with their dtypes, where known) and the request
    data its on-demand views need."""
    from pitstop.engine.request import build_plan

    plan = build_plan(snapshot, features, full)
    keys: dict[str, Any] = {}
    for v in plan.views:
        known = {f.name: f.dtype for f in v.view.entity_columns}
        for entity in v.view.entities:
            found = snapshot.entities.get(entity)
            for key in found.join_keys if found else ():
                known.setdefault(key, found.dtype)
        rename = v.projection.join_key_map
        for key in v.view.join_keys:
            keys.setdefault(rename.get(key, key), known.get(key))
    return keys, list(plan.request_fields)


def _values(text: str, dtype: Any, name: str) -> list[Any]:
    """Comma-separated values as the JSON values the server takes for ``dtype``."""
    items = [t.strip() for t in text.split(",")] if text.strip() else []
    if not items:
        raise RetrievalError(f"{name!r}: enter a value (several: separated by commas)")
    if len(items) > MAX_ROWS:
        raise RetrievalError(f"{name!r}: at most {MAX_ROWS} values at once")
    return [_value(t, dtype, name) for t in items]


def _value(text: str, dtype: Any, name: str) -> Any:
    if text.lower() in ("", "null"):
        return None
    try:
        if dtype in (Int32, Int64) or (dtype is None and text.lstrip("-").isdigit()):
            return int(text)
        if dtype in (Float32, Float64):
            return float(text)
    except ValueError:
        raise RetrievalError(f"{name!r} is declared {dtype}; {text!r} is not a number") from None
    if dtype == Bool:
        if text.lower() not in ("true", "false"):
            raise RetrievalError(f"{name!r} is declared Bool; write true or false, not {text!r}")
        return text.lower() == "true"
    return text


def _rows(answer: dict[str, Any], keys: int) -> dict[str, Any]:
    """Feast's column-major answer as rows: the ``keys`` join key columns, then each feature
    as a value, a status and an event timestamp."""
    names, results = answer["metadata"]["feature_names"], answer["results"]
    count = len(results[0]["values"]) if results else 0
    rows = []
    for i in range(count):
        rows.append({
            "keys": [_cell(r["values"][i]) for r in results[:keys]],
            "cells": [{"value": _cell(r["values"][i]), "status": r["statuses"][i],
                       "ts": r["event_timestamps"][i]} for r in results[keys:]],
        })  # fmt: skip
    return {"keys": names[:keys], "features": names[keys:], "rows": rows}


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
