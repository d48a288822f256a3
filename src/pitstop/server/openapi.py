"""The OpenAPI 3.1 document of the feature server (``/openapi.json``) and its docs page (``/docs``).

The docs page is one self-contained HTML file rendered from the document: no script, no CDN.
"""

from __future__ import annotations

import html
import json
from typing import Any

_REF = "#/components/schemas/"
_COLUMNS = {
    "type": "object",
    "description": "Columns: each key maps to a list with one value per row.",
    "additionalProperties": {"type": "array", "items": {}},
}
_NAMES = {"type": ["array", "null"], "items": {"type": "string"}}
SCHEMAS: dict[str, Any] = {
    "GetOnlineFeaturesRequest": {
        "type": "object",
        "required": ["entities"],
        "properties": {
            "features": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                         "description": "Feature references 'view:feature'."},
            "feature_service": {"type": "string", "description": "Used instead of features."},
            "entities": {**_COLUMNS, "description": "Join key columns, plus request data "
                         "columns for on-demand feature views."},
            "full_feature_names": {"type": "boolean", "default": False},
        },
    },
    "GetOnlineFeaturesResponse": {
        "type": "object",
        "required": ["metadata", "results"],
        "properties": {
            "metadata": {
                "type": "object",
                "properties": {"feature_names": {"type": "array", "items": {"type": "string"}}},
            },
            "results": {
                "type": "array",
                "description": "One entry per name in metadata.feature_names (entity key "
                "columns first), each with one value per entity row.",
                "items": {
                    "type": "object",
                    "properties": {
                        "values": {"type": "array", "items": {}},
                        "statuses": {"type": "array", "items": {"type": "string", "enum": [
                            "PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"]}},
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
            "push_source_name": {"type": "string"},
            "df": _COLUMNS,
            "to": {"type": "string", "enum": ["online", "offline", "online_and_offline"],
                   "default": "online"},
            "allow_registry_cache": {"type": "boolean", "default": True},
            "allow_missing_columns": {"type": "boolean", "default": False},
        },
    },
    "WriteToOnlineStoreRequest": {
        "type": "object",
        "required": ["feature_view_name", "df"],
        "properties": {
            "feature_view_name": {"type": "string"},
            "df": _COLUMNS,
            "allow_registry_cache": {"type": "boolean", "default": True},
        },
    },
    "MaterializeRequest": {
        "type": "object",
        "required": ["start_ts", "end_ts"],
        "properties": {
            "start_ts": {"type": "string", "format": "date-time"},
            "end_ts": {"type": "string", "format": "date-time"},
            "feature_views": _NAMES,
        },
    },
    "MaterializeIncrementalRequest": {
        "type": "object",
        "required": ["end_ts"],
        "properties": {
            "end_ts": {"type": "string", "format": "date-time"},
            "feature_views": _NAMES,
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
}  # fmt: skip

_ERRORS = {
    "400": "Malformed request: JSON, shape, value types, missing request data.",
    "401": "Missing or invalid API key (when auth is configured).",
    "403": "A read-only API key called a write endpoint.",
    "404": "Unknown feature view, feature, feature service or push source.",
    "422": "The named object cannot do this, or its source data is unreadable.",
    "503": "The online store or the registry does not answer.",
}
_EXAMPLES = {
    "/get-online-features": {
        "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"],
        "entities": {"driver_id": [1001, 1002]},
    },
    "/push": {
        "push_source_name": "driver_stats_push_source",
        "df": {"driver_id": [1001], "event_timestamp": ["2024-05-13 10:59:42"], "conv_rate": [1.0]},
        "to": "online",
    },
    "/write-to-online-store": {
        "feature_view_name": "driver_hourly_stats",
        "df": {"driver_id": [1001], "event_timestamp": ["2024-05-13 10:59:42"], "conv_rate": [1.0]},
    },
    "/materialize": {"start_ts": "2024-05-01T00:00:00Z", "end_ts": "2024-05-13T00:00:00Z"},
    "/materialize-incremental": {"end_ts": "2024-05-13T00:00:00Z"},
}
_POSTS = {
    "/get-online-features": ("GetOnlineFeaturesRequest", "Latest feature values with statuses "
                             "and event timestamps, in Feast's column-major shape.", "read"),
    "/push": ("PushRequest", "Write rows to every feature view fed by a push source.", "write"),
    "/write-to-online-store": ("WriteToOnlineStoreRequest",
                               "Write rows to one feature view's online table.", "write"),
    "/materialize": ("MaterializeRequest",
                     "Load each view's latest rows in [start_ts, end_ts] online.", "write"),
    "/materialize-incremental": ("MaterializeIncrementalRequest",
                                 "Continue each view from its last materialization.", "write"),
}  # fmt: skip


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _post(path: str, request: str, summary: str, access: str) -> dict[str, Any]:
    ok = {"$ref": _REF + "GetOnlineFeaturesResponse"} if request.startswith("Get") else {
        "type": "object"}  # fmt: skip
    responses: dict[str, Any] = {"200": {"description": "OK", **_json(ok)}}
    for code, text in _ERRORS.items():
        if code != "403" or access == "write":
            responses[code] = {"description": text, **_json({"$ref": _REF + "Error"})}
    body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": _REF + request}, "example": _EXAMPLES[path]}}}  # fmt: skip
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
                "200": {"description": "Healthy", **_json({"type": "object"})},
                "503": {"description": "Unhealthy", **_json({"type": "object"})},
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
                }
            },
        }
    }
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
                example = json.dumps(content["example"], indent=2)
                parts.append(f"<p>Request body <code>{name}</code>:</p><pre>{esc(schema)}</pre>")
                parts.append(f"<p>Example:</p><pre>{esc(example)}</pre>")
            codes = ", ".join(f"{c} {esc(r['description'])}" for c, r in op["responses"].items())
            parts.append(f"<p>Responses: {codes}</p>")
    parts.append("</body></html>")
    return "".join(parts)
