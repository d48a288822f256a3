"""The HTTP feature server: ``pitstop serve`` / ``FeatureStore.serve()``; a thin adapter.

Every endpoint calls the :class:`~pitstop.FeatureStore` method an in-process caller would and
speaks Feast's JSON shapes, so Feast clients work unchanged:

- ``POST /get-online-features`` — ``{"features": [...] | "feature_service": "...",
  "entities": {"user_id": [...], <request data>: [...]}, "full_feature_names": false}`` ->
  ``{"metadata": {"feature_names": [...]}, "results": [{"values": [...], "statuses": [...],
  "event_timestamps": [...]}, ...]}``: one result per name, the join key columns first, each
  with one value per entity row (column-major, like Feast); request data is not echoed.
  ``features`` and ``feature_service`` together are a 400.
- ``POST /push`` — ``{"push_source_name", "df": {column: [...]}, "to": "online" | "offline" |
  "online_and_offline"}``; ``POST /write-to-online-store`` — ``{"feature_view_name", "df"}``.
- ``POST /materialize`` — ``{"start_ts", "end_ts", "feature_views"?}`` (ISO 8601, naive is
  UTC); ``POST /materialize-incremental`` — ``{"end_ts", "feature_views"?}``.
- ``GET /health`` — 200 when the registry and the online store answer, else 503 and why;
  ``GET /metrics`` — Prometheus text (:mod:`pitstop.server.metrics`); ``GET /openapi.json``
  and ``GET /docs`` — the OpenAPI document and a self-contained docs page.
- ``GET /registry/search?q=``, ``GET /registry/{collection}[/{name}[/history|/diff]]`` —
  search and read the registry (:mod:`pitstop.server.registry_api`).

Errors answer ``{"error": {"type": "<PitstopError subclass>", "message": "..."}}`` with the
status from the one table in :mod:`pitstop.server.errors` (400 malformed, 404 unknown name,
422 cannot be done, 503 backend down); bad input never yields a 5xx. API keys: see
:mod:`pitstop.server.auth`. Registry changes (``pitstop apply``) are served within
``registry_ttl_sec`` (default 5 s). SIGTERM stops accepting connections and finishes the
requests in flight (up to 30 s). The access log is off unless asked for; each error writes
one JSON line to the ``pitstop.server`` logger. Values are written as Feast writes them
(``Bytes`` base64, ``UnixTimestamp`` whole seconds; see :mod:`pitstop.server.wire`), except
NaN and ±inf, which JSON cannot carry: they are ``null``.

**Why this stack.** A plain ASGI callable on uvicorn with uvloop and httptools, JSON by
orjson (``pip install 'pitstop[server]'``; imported only when a server is built). Measured on
the 2-core reference machine, one uvicorn worker, ``wrk -t1 -c8`` POSTing a small JSON body
that the app parses and answers with a canned Feast response (no store work); median of 3
runs of 5 s, server CPU time per request from ``/proc``:

==============================================================  ==========  ===============
stack                                                           req/s       CPU / request
==============================================================  ==========  ===============
raw ASGI, uvicorn + uvloop + httptools, one write per response  46,800      20.4 µs
raw ASGI, uvicorn + uvloop + httptools                          40,900      22.9 µs
Starlette route, uvicorn + uvloop + httptools                   28,200      34.7 µs
raw ASGI, uvicorn + asyncio + h11                               8,500       110.8 µs
==============================================================  ==========  ===============

A framework's routing, request and response objects cost more per request (+12 µs) than
the whole engine read of 5 features from SQLite (~13 µs), so the server is a dict of routes
(:mod:`pitstop.server.app`, ~3 µs per request). :mod:`pitstop.server.transport` makes uvicorn
send each response in one write instead of two. A real request costs about 55 µs of server
CPU on SQLite: ~35 µs HTTP (uvicorn, syscalls), ~13 µs engine, ~7 µs JSON and shaping.
End-to-end numbers: ``benchmarks/server.py``.
"""

from __future__ import annotations

from pitstop.server.run import DEFAULT_PORT, create_app, serve

__all__ = ["DEFAULT_PORT", "create_app", "serve"]
