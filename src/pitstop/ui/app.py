"""The web UI's ASGI app: routing, sign-in, error pages, static files.

Served on its own by ``pitstop ui`` (at ``/``) or by the feature server under ``/ui``
(``pitstop serve --ui``). Every page is rendered on the server; the browser gets HTML, one
stylesheet and one small script (as-you-type search, fragments loaded after the page).

**Who is asking.** Like the feature server: with ``feature_server.auth`` set, a request needs
an API key or a JSON Web Token, sent as ``Authorization: Bearer ...`` or entered once on the
sign-in page, which keeps it in an HttpOnly, SameSite=Strict cookie. The principal
(``api-key:<hex>`` or ``jwt:<sub>``) is then the caller of every catalog read, so listings and
search show only what it may ``describe`` (the catalog's rule), and a page it may not see is a
403 page naming the permission missing, recorded in the audit trail as the feature server
records its refusals. Without an auth section every request is ``anonymous``.

Handlers run in a small thread pool (they read the registry and stores, which block), each
with the request's principal set for its thread only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import hashlib
import importlib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.errors import NotFoundError, PermissionDeniedError
from pitstop.registry.audit import Actor, set_actor
from pitstop.server.auth import ApiKeys, JwtAuth
from pitstop.server.errors import HTTPError, error_body, log_error, status_of
from pitstop.ui import http, pages
from pitstop.ui.http import Handler, Request, Response

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore
    from pitstop.server.handlers import Endpoints

STATIC = Path(__file__).with_name("static")
COOKIE = "pitstop_ui"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png"}  # fmt: skip
HEADINGS = {403: "Permission denied", 404: "Not found", 405: "Method not allowed",
            422: "This cannot be done", 500: "Something went wrong",
            503: "A backend does not answer"}  # fmt: skip
_COOKIE_TEXT = re.compile(r"[A-Za-z0-9_-]+\Z")
_LOCAL_PATH = re.compile(r"/(?!/)[^\\\s]*\Z")


class SignInNeeded(Exception):
    """The request has no credentials and the page needs them."""


class UIApp:
    """The web UI over one :class:`~pitstop.FeatureStore` (ASGI)."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        keys: ApiKeys | JwtAuth | None = None,
        prefix: str = "",
        endpoints: Endpoints | None = None,
        owns_store: bool = False,
    ) -> None:
        self.store = store
        self.keys = keys
        self.prefix = prefix.rstrip("/")
        self.owns_store = owns_store
        self._endpoints = endpoints
        self._pool: ThreadPoolExecutor | None = None
        self.router = http.Router()
        self._public: set[Handler] = set()
        for page in pages.load():
            self.router.add(page.path, page.handler, page.method)
            if page.public:
                self._public.add(page.handler)
        self._static = {p.name: p.read_bytes() for p in STATIC.iterdir() if p.is_file()}
        self.static_versions = {name: hashlib.sha256(data).hexdigest()[:12]
                                for name, data in self._static.items()}  # fmt: skip

    @property
    def project(self) -> str:
        return self.store.project

    @property
    def auth_kind(self) -> str | None:
        """``api_key``, ``jwt`` or None (no sign-in)."""
        if self.keys is None:
            return None
        return "jwt" if isinstance(self.keys, JwtAuth) else "api_key"

    @property
    def endpoints(self) -> Endpoints:
        """The feature server's request handlers (its own when mounted in the server)."""
        if self._endpoints is None:
            from pitstop.server.handlers import Endpoints
            from pitstop.server.metrics import Metrics

            self._endpoints = Endpoints(self.store, Metrics())
        return self._endpoints

    def handles(self, path: str) -> bool:
        """Whether ``path`` is the UI's (when mounted under a prefix; ``/`` leads to it)."""
        return path == "/" or path == self.prefix or path.startswith(self.prefix + "/")

    def static_url(self, name: str) -> str:
        return f"{self.prefix}/static/{name}?v={self.static_versions.get(name, '0')}"

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: http.Scope, receive: http.Receive, send: http.Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _http(self, scope: http.Scope, receive: http.Receive, send: http.Send) -> None:
        method, full = scope["method"], scope["path"]
        head = method == "HEAD"
        if full in ("/", self.prefix) and self.prefix:
            await http.send(send, Response.redirect(self.prefix + "/"), head)
            return
        path = full[len(self.prefix) :] or "/"
        if path.startswith("/static/"):
            await http.send(send, self._static_file(path[len("/static/") :]), head)
            return
        headers = dict(scope["headers"])
        client = scope.get("client")
        request = Request(method, path, {}, headers, self.prefix,
                          f"http {client[0]}" if client else "http",
                          scheme=scope.get("scheme", "http"), ui=self)  # fmt: skip
        try:
            request.query = http.parse_query(scope.get("query_string", b""))
            found = self.router.match(method, path)
            if found is None:
                raise NotFoundError(f"no page {full!r}")
            if isinstance(found, str):
                raise HTTPError(405, "MethodNotAllowed", f"{full} takes {found}",
                                [(b"allow", found.encode())])  # fmt: skip
            handler, request.params = found
            if method == "POST":
                request.form = await http.read_form(receive, headers)
        except Exception as exc:
            response = await self._in_pool(self._error, request, exc)
        else:
            response = await self._in_pool(self._handle, request, handler)
        await http.send(send, response, head)

    async def _in_pool(self, fn: Any, *args: Any) -> Response:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pitstop-ui")
        context = contextvars.copy_context()  # the principal set in there stays in there
        result: Response = await asyncio.get_running_loop().run_in_executor(
            self._pool, context.run, fn, *args
        )
        return result

    async def _lifespan(self, receive: http.Receive, send: http.Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._in_pool(self.warm_up)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def warm_up(self) -> Response:
        """Read the registry and compile the templates before the first request."""
        from pitstop.ui.render import environment

        for module in ("pitstop.engine.materialize", "pitstop.server.handlers"):
            importlib.import_module(module)  # what the first pages need, now

        try:
            self.store.catalog.snapshot()
        except Exception as exc:  # the pages say what is wrong, request by request
            log_error("STARTUP", "-", 503, exc)
        env = environment()
        for name in env.list_templates():
            env.get_template(name)
        return Response(200, b"")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        if self.owns_store:
            self.store.close()

    # --- requests ------------------------------------------------------------------------

    def _handle(self, request: Request, handler: Handler) -> Response:
        try:
            if handler not in self._public:
                self.authenticate(request)
            return handler(request)
        except Exception as exc:
            return self._error(request, exc)

    def authenticate(self, request: Request) -> None:
        """Set the request's principal from its token (header or cookie), or refuse it."""
        auth = self.credentials(request)
        if self.keys is None:
            actor = Actor("anonymous", request.client)
        elif auth is None:
            raise SignInNeeded
        else:
            actor = self.verify(auth, request.client)
            request.signed_in = True
        set_actor(actor)
        request.principal = actor.principal

    def verify(self, auth: bytes, origin: str) -> Actor:
        """The principal a ``Bearer`` header stands for; a 401 :class:`HTTPError` if none."""
        assert self.keys is not None
        set_actor(Actor(ApiKeys.principal(auth), origin))  # named if the check refuses
        actor = self.keys.actor(auth, origin)
        self.keys.check(auth, False)
        return actor

    @staticmethod
    def credentials(request: Request) -> bytes | None:
        """``Bearer <token>`` from the Authorization header, else from the sign-in cookie."""
        header = request.headers.get(b"authorization")
        if header:
            return header
        token = decode_cookie(request.cookie(COOKIE))
        return b"Bearer " + token.encode() if token else None

    def _error(self, request: Request, exc: BaseException) -> Response:
        from pitstop.ui.render import render

        if isinstance(exc, SignInNeeded):
            if _wants_fragment(request):
                return Response(401, b"sign in first", "text/plain; charset=utf-8")
            target = request.url("/login", next=self.prefix + request.path + _query(request))
            return Response.redirect(target)
        status = status_of(exc)
        if not request.signed_in and status not in (401, 405):  # who the page speaks to
            with contextlib.suppress(Exception):
                self.authenticate(request)
        if status in (401, 403):
            self.record_denial(request, exc)
        if status >= 500 or status == 405:
            log_error(request.method, self.prefix + request.path, status, exc)
        message = error_body(exc, status)["error"]["message"]
        headers = list(exc.headers) if isinstance(exc, HTTPError) and status != 401 else []
        if status == 401:  # a token that no longer works: sign in again
            headers.append(clear_cookie(self.prefix))
            response = render(request, "login.html", status=401, title="Sign in",
                              error=message, next=self.prefix + request.path)  # fmt: skip
        elif _wants_fragment(request):
            response = Response(status, message.encode(), "text/plain; charset=utf-8")
        else:
            heading = HEADINGS.get(status, "This page cannot be shown")
            response = render(request, "error.html", status=status, title=heading,
                              heading=heading, message=message,
                              denied=isinstance(exc, PermissionDeniedError))  # fmt: skip
        response.headers += headers
        return response

    def record_denial(self, request: Request, exc: BaseException) -> None:
        """The audit trail's record of a refused request, as the feature server writes it."""
        action = f"http {request.method} {self.prefix + request.path}"
        try:
            self.store.catalog.record(action, outcome="denied", detail=str(exc)[:500])
        except Exception as failure:  # a registry that does not answer is only logged
            log_error("AUDIT", request.path, 503, failure)

    def _static_file(self, name: str) -> Response:
        data = self._static.get(name)
        if data is None:
            return Response(404, b"not found", "text/plain; charset=utf-8")
        ctype = _TYPES.get(Path(name).suffix, "application/octet-stream")
        return Response(200, data, ctype, [(b"cache-control", b"public, max-age=31536000")])


def _wants_fragment(request: Request) -> bool:
    return request.arg("fragment") == "1"


def _query(request: Request) -> str:
    from urllib.parse import urlencode

    flat = [(k, v) for k, values in request.query.items() for v in values]
    return "?" + urlencode(flat) if flat else ""


def local_target(text: str, prefix: str) -> str:
    """``text`` if it is a path of this UI (never another site: no ``//host``), else its
    start page."""
    home = prefix + "/"
    if _LOCAL_PATH.match(text) and (text.startswith(home) or text == home):
        return text
    return home


def encode_cookie(token: str) -> str:
    """The token as cookie text (base64url: any character of a key survives)."""
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def decode_cookie(value: str | None) -> str | None:
    if not value or not _COOKIE_TEXT.match(value):
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode() or None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def set_cookie(token: str, prefix: str, secure: bool) -> tuple[bytes, bytes]:
    flags = "; Secure" if secure else ""
    text = (f"{COOKIE}={encode_cookie(token)}; Path={prefix or '/'}; HttpOnly; "
            f"SameSite=Strict; Max-Age=43200{flags}")  # fmt: skip
    return b"set-cookie", text.encode()


def clear_cookie(prefix: str) -> tuple[bytes, bytes]:
    text = f"{COOKIE}=; Path={prefix or '/'}; HttpOnly; SameSite=Strict; Max-Age=0"
    return b"set-cookie", text.encode()
