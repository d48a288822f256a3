"""The ASGI application: routing, body reading, auth, errors, metrics, lifespan.

A plain ASGI callable (no framework): the routes are a dict lookup, the body is read from the
receive channel directly, JSON goes through orjson, and responses carry a ``content-length``
(no chunked encoding). ``/get-online-features`` runs on the event loop itself: a read is
tens of microseconds of Python plus one store round trip, less than a hop to a thread pool
and back costs. Writes, materialization, health checks and registry refreshes run in a small
thread pool so that they never hold up reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from struct import error as StructError
from typing import TYPE_CHECKING, Any

from pitstop.definitions.service import FeatureService
from pitstop.errors import NotFoundError, RetrievalError, require
from pitstop.quality.gauges import QualityGauges
from pitstop.registry.audit import Actor, set_actor
from pitstop.server import openapi
from pitstop.server.auth import ApiKeys, JwtAuth
from pitstop.server.errors import HTTPError, error_body, error_type, log_error, status_of
from pitstop.server.handlers import Endpoints
from pitstop.server.metrics import Metrics, render_gauges
from pitstop.server.registry_api import PREFIX, RegistryEndpoints, parse_query
from pitstop.server.wire import fallback

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 64 * 1024 * 1024
HEALTH_TIMEOUT_S = 5.0
_JSON = b"application/json"
_TEXT = b"text/plain; version=0.0.4; charset=utf-8"
_HTML = b"text/html; charset=utf-8"


@dataclass(frozen=True)
class _Route:
    method: str  # "POST" (JSON body) or "GET"
    handler: Callable[..., Any]
    access: str  # "open", "read" or "write"
    inline: bool = False  # run on the event loop (POST) instead of the thread pool
    label: str | None = None  # the path in metrics, for routes serving many paths


class FeatureServer:
    """The ASGI app serving one :class:`~pitstop.FeatureStore`."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        registry_ttl_sec: float = 5.0,
        keys: ApiKeys | JwtAuth | None = None,
        owns_store: bool = False,
    ) -> None:
        orjson: Any = require("orjson", "server")
        self._loads = orjson.loads
        self._dumps = orjson.dumps
        self._dump_opts = orjson.OPT_SERIALIZE_NUMPY
        self.store = store
        self.registry_ttl_sec = registry_ttl_sec
        self._store_ttl = store.registry.cache_ttl_seconds  # given back at shutdown
        store.registry.cache_ttl_seconds = registry_ttl_sec  # until the refresher takes over
        self.keys = keys
        self.owns_store = owns_store
        self.metrics = Metrics()
        self.endpoints = e = Endpoints(store, self.metrics)
        self.quality = QualityGauges(store)
        self._pool: ThreadPoolExecutor | None = None
        self._timed: object = None  # the online store whose reads are timed
        self._refresher: asyncio.Task[None] | None = None
        doc = openapi.document()
        self._openapi, self._docs = orjson.dumps(doc), openapi.docs_html(doc).encode()
        self.routes: dict[str, _Route] = {
            "/get-online-features": _Route("POST", self._online_features, "read", inline=True),
            "/push": _Route("POST", e.push, "write"),
            "/write-to-online-store": _Route("POST", e.write_to_online_store, "write"),
            "/materialize": _Route("POST", e.materialize, "write"),
            "/materialize-incremental": _Route("POST", e.materialize_incremental, "write"),
            "/health": _Route("GET", self._health, "open"),
            "/metrics": _Route("GET", self._metrics, "read"),
            "/openapi.json": _Route("GET", self._static(self._openapi, _JSON), "open"),
            "/docs": _Route("GET", self._static(self._docs, _HTML), "open"),
        }
        self._registry = _Route("GET", self._registry_get, "read", label="/registry")
        self.ui: Any = None  # the web UI (pitstop.ui.app.UIApp), served under /ui when set

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.ui is not None and self.ui.handles(scope["path"]):
                await self.ui(scope, receive, send)
                return
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    # --- requests -------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        route = self.routes.get(path)
        if route is None and path.startswith(PREFIX):
            route = self._registry
        headers: list[tuple[bytes, bytes]] = []
        ctype = _JSON
        try:
            if route is None:
                raise NotFoundError(f"no endpoint {path!r}; the endpoints are listed at /docs")
            if method != route.method and not (method == "HEAD" and route.method == "GET"):
                allow = route.method.encode() + (b", HEAD" if route.method == "GET" else b"")
                raise HTTPError(405, "MethodNotAllowed", f"{path} takes {route.method}",
                                [(b"allow", allow)])  # fmt: skip
            if route.access != "open" and self.keys is not None:
                auth = _header(scope, b"authorization")
                set_actor(_actor(scope))  # this request's task only; named in a refusal
                set_actor(self.keys.actor(auth, _origin(scope)))
                self.keys.check(auth, route.access == "write")
            elif route.access != "open" and not route.inline:  # who the audit trail names
                set_actor(_actor(scope))
            if route.method == "POST":
                data = self._parse(await _read_body(receive))
                if route.inline:
                    result = route.handler(data)
                else:
                    result = await self._in_pool(route.handler, data)
                payload = self._dumps(result, default=fallback, option=self._dump_opts)
                status = 200
            elif route is self._registry:
                status, payload, ctype = await route.handler(path, scope.get("query_string", b""))
            else:
                status, payload, ctype = await route.handler()
        except Exception as exc:
            status = status_of(exc)
            if status in (401, 403):
                await self._record_denial(scope, exc)
            payload = self._dumps(error_body(exc, status))
            headers = list(exc.headers) if isinstance(exc, HTTPError) else []
            self.metrics.error(error_type(exc))
            log_error(method, path, status, exc)
        headers += [(b"content-type", ctype), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload})
        label = (route.label or path) if route else "other"
        self.metrics.request(label, status, time.perf_counter() - started)

    def _parse(self, body: bytes) -> dict[str, Any]:
        try:
            data = self._loads(body)
        except ValueError as exc:
            raise RetrievalError(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RetrievalError(f"the request body must be a JSON object, got: {body[:80]!r}")
        return data

    async def _in_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pitstop-server")
        context = contextvars.copy_context()  # the request's actor goes along
        return await asyncio.get_running_loop().run_in_executor(self._pool, context.run, fn, *args)

    async def _record_denial(self, scope: Scope, exc: BaseException) -> None:
        """Append a denied request to the audit trail; a failing registry is only logged."""
        action = f"http {scope['method']} {scope['path']}"

        def record() -> None:  # as the request's actor, when it got that far
            self.store.catalog.record(action, outcome="denied", detail=str(exc)[:500])

        try:
            await self._in_pool(record)
        except Exception as failure:
            log_error("AUDIT", scope["path"], 503, failure)

    def _online_features(self, data: dict[str, Any]) -> dict[str, Any]:
        online = self.store.online
        if online is not self._timed:
            self._time_reads(online)
        try:
            return self.endpoints.get_online_features(data)
        except (StructError, OverflowError) as exc:  # an integer key beyond 64 bits
            raise RetrievalError(f"a value in 'entities' is out of range: {exc}") from None

    def _time_reads(self, online: Any) -> None:
        """Time every read of ``online`` into the online-read histogram."""
        read, observe, clock = online.read, self.metrics.online_read.observe, time.perf_counter

        def timed_read(requests: Any) -> Any:
            start = clock()
            try:
                return read(requests)
            finally:
                observe(clock() - start)

        online.read = timed_read
        self._timed = online

    async def _health(self) -> tuple[int, bytes, bytes]:
        try:
            answer = await asyncio.wait_for(
                self._in_pool(self.endpoints.health), timeout=HEALTH_TIMEOUT_S
            )
            return 200, self._dumps(answer), _JSON
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                reason = {"type": "Timeout", "message": f"no answer in {HEALTH_TIMEOUT_S} s"}
            else:
                reason = error_body(exc, 503)["error"]
            return 503, self._dumps({"status": "unavailable", "error": reason}), _JSON

    async def _registry_get(self, path: str, query: bytes) -> tuple[int, bytes, bytes]:
        """``GET /registry/...``: the catalog's answer, read in the thread pool."""
        api = RegistryEndpoints(self.store.catalog)
        answer = await self._in_pool(api.get, path, parse_query(query))
        return 200, self._dumps(answer, default=fallback), _JSON

    async def _metrics(self) -> tuple[int, bytes, bytes]:
        """The server's metrics, then freshness, drift and feature logging (read in the
        thread pool; a registry or store that fails leaves them out, logged)."""
        quality = b""
        try:
            quality = render_gauges(await self._in_pool(self.quality.collect))
        except Exception as exc:
            log_error("GET", "/metrics", 503, exc)
        return 200, self.metrics.render() + quality, _TEXT

    @staticmethod
    def _static(payload: bytes, ctype: bytes) -> Callable[[], Awaitable[tuple[int, bytes, bytes]]]:
        async def serve() -> tuple[int, bytes, bytes]:
            return 200, payload, ctype

        return serve

    # --- lifespan -------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._in_pool(self._warm_up)
                if self.registry_ttl_sec > 0:
                    self._refresher = asyncio.create_task(self._refresh_registry())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._refresher is not None:
                    self._refresher.cancel()
                self.store.registry.cache_ttl_seconds = self._store_ttl
                with contextlib.suppress(AttributeError):
                    del self._timed.read  # type: ignore[attr-defined]  # the class's read again
                await self._in_pool(self.store.flush_feature_logs)  # what is still queued
                if self.owns_store:
                    await self._in_pool(self.store.close)
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                if self.ui is not None:
                    self.ui.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refresh_registry(self) -> None:
        """Re-read the registry every ``registry_ttl_sec`` in the thread pool, so requests never
        wait for it; while the registry does not answer, the last definitions stay served."""
        registry = self.store.registry
        registry.cache_ttl_seconds = float("inf")  # requests take the snapshot as it is
        while True:
            await asyncio.sleep(self.registry_ttl_sec)
            try:
                await self._in_pool(registry.refresh)
            except Exception as exc:
                log_error("REFRESH", "registry", 503, exc)

    def _warm_up(self) -> None:
        """Read the registry and open the online store before the first request; then move
        everything loaded so far out of the garbage collector's way (``gc.freeze``), so that
        a full collection does not walk the imported modules while a request waits."""
        import pyarrow.compute  # noqa: F401  (what the first push needs, loaded now)

        try:
            snapshot = self.store.catalog.snapshot()
            self._time_reads(self.store.online)
            if any(s.logging_config for s in snapshot.of(FeatureService).values()):
                self.store.feature_logs.start()  # not on the first logged request
        except Exception as exc:  # served as 503 by /health until the backend answers
            log_error("STARTUP", "-", 503, exc)
        gc.collect()
        gc.freeze()


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks, size = [body], len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RetrievalError("the client closed the connection before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPError(413, "PayloadTooLarge", f"request bodies are limited to {MAX_BODY} B")
        chunks.append(chunk)
    return b"".join(chunks)


def _origin(scope: Scope) -> str:
    client = scope.get("client")
    return f"http {client[0]}" if client else "http"


def _actor(scope: Scope) -> Actor:
    """The audit trail's principal and origin of a request (before any token is checked)."""
    return Actor(ApiKeys.principal(_header(scope, b"authorization")), _origin(scope))


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None
