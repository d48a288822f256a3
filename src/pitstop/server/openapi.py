"""The OpenAPI 3.1 document of the feature server (``/openapi.json``) and its docs page (``/docs``).

The docs page is one self-contained HTML file rendered from the document: no script, no CDN.
"""

from __future__ import annotations

import html
import json
from typing import Any

from pitstop.catalog.kinds import COLLECTIONS

_REF = "#/components/schemas/"
_NAME = {"type": "string", "minLength": 1}
_NAMES = {
    "type": ["array", "null"],
    "items": _NAME,
    "description": "Feature view names; absent or null: every view.",
}
_COLUMNS = {
    "type": "object",
    "minProperties": 1,
    "description": "Columns by name, each a list with one value per row; every list has the "
    "same length.",
    "additionalProperties": {"type": "array", "items": {}},
}
_TIMESTAMP = {
    "type": "string",
    "format": "date-time",
    "description": "ISO 8601; without a zone it is UTC.",
}
_COUNT = {"type": "integer", "minimum": 0}
_STATUS = {"type": "string", "enum": ["PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"]}
SCHEMAS: dict[str, Any] = {
    "GetOnlineFeaturesRequest": {
        "type": "object",
        "description": "Exactly one of features and feature_service (a null counts as absent).",
        "required": ["entities"],
        "properties": {
            "features": {"type": ["array", "null"], "minItems": 1, "uniqueItems": True,
                         "items": {"type": "string", "pattern": "^[^:]+:[^:]+$"},
                         "description": "Feature references 'view:feature', or "
                                        "'view@v2:feature' for version 2 of the view."},
            "feature_service": {**_NAME, "type": ["string", "null"]},
            "entities": {**_COLUMNS, "description": "The join key columns, plus the request "
                         "data columns on-demand feature views need; every list has the same "
                         "length (the number of entity rows). Key values are integers or strings "
                         "as the entity declares."},
            "full_feature_names": {"type": "boolean", "default": False},
        },
        "oneOf": [
            {"required": ["features"], "properties": {"features": {"type": "array"}}},
            {"required": ["feature_service"],
             "properties": {"feature_service": {"type": "string"}}},
        ],
    },
    "GetOnlineFeaturesResponse": {
        "type": "object",
        "required": ["metadata", "results"],
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["feature_names"],
                "properties": {"feature_names": {"type": "array", "items": {"type": "string"}}},
            },
            "results": {
                "type": "array",
                "description": "One entry per name in metadata.feature_names (the join key "
                "columns first, then the features), each with one value per entity row. Request "
                "data is not returned. NOT_FOUND: the entity is unknown (an on-demand output: "
                "none of the views it reads has the entity); OUTSIDE_MAX_AGE: older than the "
                "view's TTL, served as null.",
                "items": {
                    "type": "object",
                    "required": ["values", "statuses", "event_timestamps"],
                    "properties": {
                        "values": {"type": "array", "items": {}},
                        "statuses": {"type": "array", "items": _STATUS},
                        "event_timestamps": {"type": "array",
                                             "items": {"type": "string", "format": "date-time"}},
                    },
                },
            },
        },
    },
    "PushRequest": {
        "type": "object",
        "required": ["push_source_name", "df"],
        "properties": {
            "push_source_name": _NAME,
            "df": {**_COLUMNS, "description": "Rows to push, by column: the join keys, the "
                   "timestamp field and the features of every view the source feeds."},
            "to": {"type": "string", "enum": ["online", "offline", "online_and_offline"],
                   "default": "online"},
            "allow_registry_cache": {"type": "boolean", "default": True},
            "allow_missing_columns": {"type": "boolean", "default": False},
        },
    },
    "PushResponse": {
        "type": "object",
        "required": ["push_source_name", "to", "rows", "written"],
        "properties": {"push_source_name": {"type": "string"}, "to": {"type": "string"},
                       "rows": _COUNT, "written": _COUNT},
    },
    "WriteToOnlineStoreRequest": {
        "type": "object",
        "required": ["feature_view_name", "df"],
        "properties": {
            "feature_view_name": _NAME,
            "df": {**_COLUMNS, "description": "Rows to write, by column: the view's join keys, "
                   "timestamp field and features."},
            "allow_registry_cache": {"type": "boolean", "default": True},
        },
    },
    "WriteToOnlineStoreResponse": {
        "type": "object",
        "required": ["feature_view_name", "rows", "written"],
        "properties": {"feature_view_name": {"type": "string"}, "rows": _COUNT,
                       "written": _COUNT},
    },
    "MaterializeRequest": {
        "type": "object",
        "description": "start_ts must not be after end_ts.",
        "required": ["start_ts", "end_ts"],
        "properties": {"start_ts": _TIMESTAMP, "end_ts": _TIMESTAMP, "feature_views": _NAMES},
    },
    "MaterializeIncrementalRequest": {
        "type": "object",
        "description": "end_ts must not be before a view's last materialized end.",
        "required": ["end_ts"],
        "properties": {"end_ts": _TIMESTAMP, "feature_views": _NAMES},
    },
    "MaterializeResponse": {
        "type": "object",
        "required": ["materialized"],
        "properties": {"materialized": {"type": "array", "items": {
            "type": "object",
            "required": ["feature_view", "start", "end", "rows", "seconds"],
            "properties": {
                "feature_view": {"type": "string"},
                "start": {"type": ["string", "null"], "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "rows": _COUNT,
                "seconds": {"type": "number", "minimum": 0},
            },
        }}},
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "registry_serial": {"type": "integer"},
            "online_store_ms": {"type": "number"},
            "error": {"$ref": _REF + "ErrorDetail"},
        },
    },
    "RegistryObject": {
        "type": "object",
        "required": ["kind", "name", "version", "spec_hash", "author", "applied_at", "spec"],
        "properties": {"kind": {"type": "string"}, "name": {"type": "string"},
                       "version": {"type": "integer", "minimum": 1},
                       "spec_hash": {"type": "string"}, "author": {"type": "string"},
                       "applied_at": {"type": "string", "format": "date-time"},
                       "spec": {"type": "object", "description": "The object's definition, "
                                "as `pitstop registry-dump` prints it."}},
    },
    "RegistryObjects": {
        "type": "object",
        "required": ["objects"],
        "properties": {"objects": {"type": "array", "items": {"$ref": _REF + "RegistryObject"}}},
    },
    "Versions": {
        "type": "object",
        "required": ["versions"],
        "properties": {"versions": {"type": "array", "description": "Oldest first.", "items": {
            "type": "object",
            "required": ["kind", "name", "version", "spec_hash", "author", "applied_at",
                         "deleted"],
            "properties": {"kind": {"type": "string"}, "name": {"type": "string"},
                           "version": {"type": "integer", "minimum": 1},
                           "spec_hash": {"type": "string", "description": "Empty for a "
                                         "deletion."},
                           "author": {"type": "string"},
                           "applied_at": {"type": "string", "format": "date-time"},
                           "deleted": {"type": "boolean"},
                           "status": {"type": "string", "enum": ["served", "staged", ""],
                                      "description": "served: unpinned reads use it; staged: "
                                      "written by a staged apply, never served."}},
        }}},
    },
    "SpecDiff": {
        "type": "object",
        "required": ["name", "v1", "v2", "changes"],
        "properties": {"name": {"type": "string"}, "v1": {"type": "integer"},
                       "v2": {"type": "integer"}, "changes": {"type": "array", "items": {
            "type": "object",
            "required": ["path", "op", "old", "new"],
            "properties": {"path": {"type": "string", "description": "Like schema[2].dtype."},
                           "op": {"type": "string", "enum": ["added", "removed", "changed"]},
                           "old": {"description": "null when added"},
                           "new": {"description": "null when removed"}},
        }}},
    },
    "Lineage": {
        "type": "object",
        "required": ["root", "direction", "registry_version", "nodes", "edges"],
        "properties": {
            "root": {"type": "string", "description": "kind:name"},
            "direction": {"type": "string", "enum": ["both", "upstream", "downstream"]},
            "registry_version": {"type": "integer"},
            "nodes": {"type": "array", "items": {
                "type": "object", "required": ["id", "kind", "name", "missing"],
                "properties": {"id": {"type": "string"}, "kind": {"type": "string"},
                               "name": {"type": "string"}, "missing": {"type": "boolean"}}}},
            "edges": {"type": "array", "description": "target is built from source",
                      "items": {"type": "object", "required": ["source", "target", "relation"],
                                "properties": {"source": {"type": "string"},
                                               "target": {"type": "string"},
                                               "relation": {"type": "string"}}}},
        },
    },
    "SearchResults": {
        "type": "object",
        "required": ["query", "results"],
        "properties": {"query": {"type": "string"}, "results": {
            "type": "array", "description": "Best first: exact names, then name prefixes, "
            "then every word of the query, then words with a typo.", "items": {
                "type": "object",
                "required": ["kind", "name", "feature", "ref", "view_kind", "match",
                             "description", "owner", "tags", "dtype"],
                "properties": {
                    "kind": {"type": "string", "description": "feature, or the object's kind"},
                    "name": {"type": "string", "description": "The object (a feature's view)"},
                    "feature": {"type": ["string", "null"]},
                    "ref": {"type": "string", "description": "view:feature, or the name"},
                    "view_kind": {"type": ["string", "null"]},
                    "match": {"type": "string", "enum": ["exact", "prefix", "token", "fuzzy"]},
                    "description": {"type": "string"}, "owner": {"type": "string"},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                    "dtype": {"type": "string"},
                },
            }}},
    },
    "ErrorDetail": {
        "type": "object",
        "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"$ref": _REF + "ErrorDetail"}},
    },
}  # fmt: skip

_ERRORS = {
    "400": "Malformed request: JSON, shape, value types, missing request data.",
    "401": "Missing or invalid API key (when auth is configured).",
    "403": "A read-only API key called a write endpoint, or the project's access policies do "
    "not let this caller do this (PermissionDeniedError).",
    "404": "Unknown feature view, feature, feature service or push source.",
    "413": "The request body is larger than 64 MiB.",
    "422": "The named object cannot do this, or its source data is unreadable.",
    "503": "The online store or the registry does not answer.",
}
# The names of the repo `pitstop init` creates.
_EXAMPLES = {
    "/get-online-features": {
        "features": ["user_features:total_purchases", "user_features:avg_purchase_amount",
                     "user_derived_features:purchase_frequency"],
        "entities": {"user_id": [1001, 1002]},
    },
    "/push": {
        "push_source_name": "transaction_push_source",
        "df": {"user_id": [1001], "transaction_amount": [12.5],
               "transaction_timestamp": ["2026-11-26T10:00:00Z"]},
        "to": "online",
    },
    "/write-to-online-store": {
        "feature_view_name": "user_features",
        "df": {"user_id": [1001], "total_purchases": [46], "avg_purchase_amount": [52.5],
               "days_since_last_purchase": [0], "customer_segment": ["regular"],
               "tenure_months": [14], "event_timestamp": ["2026-11-26T10:00:00Z"],
               "created_timestamp": ["2026-11-26T10:00:00Z"]},
    },
    "/materialize": {"start_ts": "2026-11-01T00:00:00Z", "end_ts": "2026-11-26T00:00:00Z",
                     "feature_views": ["user_features"]},
    "/materialize-incremental": {"end_ts": "2026-11-26T00:00:00Z"},
}  # fmt: skip
_SERVICE_EXAMPLE = {"feature_service": "churn_model_v1", "entities": {"user_id": [1001]}}
_POSTS = {
    "/get-online-features": ("GetOnlineFeaturesRequest", "GetOnlineFeaturesResponse",
                             "Latest feature values with statuses and event timestamps, in "
                             "Feast's column-major shape.", "read"),
    "/push": ("PushRequest", "PushResponse",
              "Write rows to every feature view fed by a push source.", "write"),
    "/write-to-online-store": ("WriteToOnlineStoreRequest", "WriteToOnlineStoreResponse",
                               "Write rows to one feature view's online table.", "write"),
    "/materialize": ("MaterializeRequest", "MaterializeResponse",
                     "Load each view's latest rows in [start_ts, end_ts] online.", "write"),
    "/materialize-incremental": ("MaterializeIncrementalRequest", "MaterializeResponse",
                                 "Continue each view from its last materialization.", "write"),
}  # fmt: skip


_COLLECTIONS = list(COLLECTIONS)
_KIND: dict[str, Any] = {
    "name": "kind", "in": "path", "required": True, "description": "The collection.",
    "schema": {"type": "string", "enum": _COLLECTIONS}}  # fmt: skip
_OBJECT: dict[str, Any] = {
    "name": "name", "in": "path", "required": True, "description": "The object's name.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.\\-]*$"}}  # fmt: skip
_FILTERS: list[dict[str, Any]] = [
    {"name": "tag", "in": "query", "description": "Only objects tagged key=value (repeatable).",
     "schema": {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}},
     "style": "form", "explode": True},
    {"name": "owner", "in": "query", "description": "Only objects with this owner.",
     "schema": {"type": "string"}},
]  # fmt: skip
_VERSION = {"type": "integer", "minimum": 1}
_REGISTRY_GETS: dict[str, tuple[str, str, str, list[dict[str, Any]]]] = {
    "/registry/search": ("SearchResults", "registry_search",
                         "Objects and features matching q: exact names, then prefixes, words, "
                         "words with a typo.", [
        {"name": "q", "in": "query", "required": True, "description": "What to look for.",
         "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
        {"name": "kind", "in": "query", "description": "Only these kinds (repeatable).",
         "schema": {"type": "array", "items": {"type": "string",
                                               "enum": [*_COLLECTIONS, "feature"]}},
         "style": "form", "explode": True},
        *_FILTERS,
        {"name": "limit", "in": "query", "description": "Most results.",
         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}},
    ]),
    "/registry/{kind}": ("RegistryObjects", "registry_list",
                         "The live objects of one kind, with their current versions.",
                         [_KIND, *_FILTERS]),
    "/registry/{kind}/{name}": ("RegistryObject", "registry_describe",
                                "One live object with its current version.", [_KIND, _OBJECT]),
    "/registry/{kind}/{name}/history": ("Versions", "registry_history",
                                        "Every version of an object, deletions included.",
                                        [_KIND, _OBJECT]),
    "/registry/{kind}/{name}/diff": ("SpecDiff", "registry_diff",
                                     "What changed in an object from version v1 to v2.", [
        _KIND, _OBJECT,
        {"name": "v1", "in": "query", "required": True, "schema": _VERSION},
        {"name": "v2", "in": "query", "required": True, "schema": _VERSION},
    ]),
    "/registry/{kind}/{name}/lineage": ("Lineage", "registry_lineage",
                                        "What an object is built from and what is built from "
                                        "it, now or at a registry version.", [
        _KIND, _OBJECT,
        {"name": "direction", "in": "query",
         "schema": {"type": "string", "enum": ["both", "upstream", "downstream"],
                    "default": "both"}},
        {"name": "version", "in": "query", "description": "A registry version (default: now).",
         "schema": _VERSION},
    ]),
}  # fmt: skip
_REGISTRY_ERRORS = {
    "400": "A malformed query parameter.",
    "401": _ERRORS["401"],
    "403": "The project's access policies do not let this caller describe the object.",
    "404": "No such collection, object or version.",
    "503": _ERRORS["503"],
}


def _registry_get(answer: str, operation: str, summary: str,
                  parameters: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    responses: dict[str, Any] = {"200": {"description": "OK", **_json({"$ref": _REF + answer})}}
    for code, text in _REGISTRY_ERRORS.items():
        responses[code] = {"description": text, **_json({"$ref": _REF + "Error"})}
    return {"get": {"summary": summary, "operationId": operation, "parameters": parameters,
                    "responses": responses, "security": [{}, {"bearerAuth": []}]}}  # fmt: skip


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _post(path: str, request: str, answer: str, summary: str, access: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", **_json({"$ref": _REF + answer})}}
    for code, text in _ERRORS.items():
        responses[code] = {"description": text, **_json({"$ref": _REF + "Error"})}
    examples = {"features": {"value": _EXAMPLES[path]}}
    if path == "/get-online-features":
        examples["feature_service"] = {"value": _SERVICE_EXAMPLE}
    body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": _REF + request}, "examples": examples}}}  # fmt: skip
    return {"post": {"summary": summary, "operationId": path.strip("/").replace("-", "_"),
                     "requestBody": body, "responses": responses,
                     "security": [{}, {"bearerAuth": []}]}}  # fmt: skip


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    from pitstop import __version__

    paths = {path: _post(path, *spec) for path, spec in _POSTS.items()}
    paths["/health"] = {
        "get": {
            "summary": "200 when the registry and the online store answer, else 503 and why.",
            "operationId": "health",
            "responses": {
                "200": {"description": "Healthy", **_json({"$ref": _REF + "Health"})},
                "503": {"description": "Unhealthy", **_json({"$ref": _REF + "Health"})},
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics (text exposition format).",
            "operationId": "metrics",
            "security": [{}, {"bearerAuth": []}],
            "responses": {
                "200": {
                    "description": "Metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": {"description": _ERRORS["401"], **_json({"$ref": _REF + "Error"})},
            },
        }
    }
    paths.update({path: _registry_get(*spec) for path, spec in _REGISTRY_GETS.items()})
    return {
        "openapi": "3.1.0",
        "info": {"title": "pitstop feature server", "version": __version__,
                 "description": "Feast-compatible HTTP feature server. Errors answer "
                 "{\"error\": {\"type\": ..., \"message\": ...}}."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "Only when feature_server.auth is configured."}}},
    }  # fmt: skip


def docs_html(doc: dict[str, Any]) -> str:
    """A plain HTML page listing every endpoint of ``doc`` with its schemas and an example."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>pitstop feature server</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}pre{background:#f4f4f4;padding:.6rem;overflow:auto}"
        "code{background:#f4f4f4}h2{border-top:1px solid #ddd;padding-top:1rem}"
        ".m{font-weight:bold;color:#06c}</style></head><body>",
        f"<h1>{esc(doc['info']['title'])} <small>{esc(doc['info']['version'])}</small></h1>",
        f"<p>{esc(doc['info']['description'])} Machine-readable: "
        "<a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            parts.append(f"<h2><span class='m'>{method.upper()}</span> <code>{esc(path)}</code>"
                         f"</h2><p>{esc(op['summary'])}</p>")  # fmt: skip
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                name = content["schema"]["$ref"].rsplit("/", 1)[-1]
                schema = json.dumps(doc["components"]["schemas"][name], indent=2)
                parts.append(f"<p>Request body <code>{name}</code>:</p><pre>{esc(schema)}</pre>")
                for example in content["examples"].values():
                    text = json.dumps(example["value"], indent=2)
                    parts.append(f"<p>Example:</p><pre>{esc(text)}</pre>")
            codes = ", ".join(f"{c} {esc(r['description'])}" for c, r in op["responses"].items())
            parts.append(f"<p>Responses: {codes}</p>")
    parts.append("</body></html>")
    return "".join(parts)
