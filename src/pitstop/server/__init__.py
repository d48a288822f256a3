"""The HTTP feature server: ``pitstop serve`` / ``FeatureStore.serve()``; a thin adapter.

Every endpoint calls the :class:`~pitstop.FeatureStore` method an in-process caller would and
speaks Feast's JSON shapes, so Feast clients work unchanged:

=============================  ===========================================================
``POST /get-online-features``  ``{"features": [...] | "feature_service": "...", "entities":
                               {"user_id": [...], <request data>: [...]},
                               "full_feature_names": false}`` -> ``{"metadata":
                               {"feature_names": [...]}, "results": [{"values": [...],
                               "statuses": [...], "event_timestamps": [...]}, ...]}``, one
                               result per name, entity key columns first (column-major)
``POST /push``                 ``{"push_source_name", "df": {column: [...]}, "to": "online" |
                               "offline" | "online_and_offline"}``
``POST /write-to-online-store`` ``{"feature_view_name", "df"}``
``POST /materialize``          ``{"start_ts", "end_ts", "feature_views"?}`` (ISO 8601)
``POST /materialize-incremental`` ``{"end_ts", "feature_views"?}``
``GET /health``                200 when the registry and the online store answer, else 503
``GET /metrics``               Prometheus text (:mod:`pitstop.server.metrics`)
``GET /openapi.json``, ``/docs`` the OpenAPI document and a self-contained docs page
=============================  ===========================================================

Errors answer ``{"error": {"type": "<PitstopError subclass>", "message": "..."}}`` with the
status from the one table in :mod:`pitstop.server.errors` (400 malformed, 404 unknown name,
422 cannot be done, 503 backend down); bad input never yields a 5xx. API keys: see
:mod:`pitstop.server.auth`. Registry changes (``pitstop apply``) are served within
``registry_ttl_sec`` (default 5 s). SIGTERM stops accepting connections and finishes the
requests in flight (up to 30 s). The access log is off unless asked for; each error writes
one JSON line to the ``pitstop.server`` logger. Values differ from Feast's server in two
documented ways: NaN/±inf are ``null`` (Feast's server fails on them) and
``UnixTimestamp`` values are whole seconds like Feast's (the in-process API keeps µs).

**Why this stack.** A plain ASGI callable on uvicorn with uvloop and httptools, JSON by
orjson (``pip install 'pitstop[server]'``; imported only when a server is built). Measured on
the 2-core reference machine, one uvicorn worker, ``wrk -t2 -c8`` POSTing a small JSON body
and answering a canned Feast response (no store work), median of 3 runs of 6 s:

=========================================  ===========  =========
stack                                      req/s        p99
=========================================  ===========  =========
raw ASGI, uvicorn + uvloop + httptools     STACK_RAW
Starlette route, uvicorn + uvloop + httptools STACK_STAR
raw ASGI, uvicorn + asyncio + h11          STACK_H11
=========================================  ===========  =========

A framework's routing, request and response objects cost more per request than a whole
SQLite read of the engine, so the server is a ~50-line dispatcher instead
(:mod:`pitstop.server.app`). End-to-end numbers are in ``benchmarks/server.py``.
"""

from __future__ import annotations

from pitstop.server.run import DEFAULT_PORT, create_app, serve

__all__ = ["DEFAULT_PORT", "create_app", "serve"]
