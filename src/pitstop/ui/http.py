"""Requests, responses and routes of the web UI: the little of HTTP it needs, over ASGI.

Routes are path patterns with ``{name}`` segments (``/{collection}/{name}``), matched in the
order they were added; a handler takes a :class:`Request` and returns a :class:`Response`.
Every HTML response carries a strict Content-Security-Policy (scripts, styles and images from
the UI itself only), so that text from the registry can never run as script even if it
slipped past the templates' escaping.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode

from pitstop.errors import RetrievalError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_FORM = 64 * 1024
HTML = "text/html; charset=utf-8"
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
     b"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
     b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]  # fmt: skip


@dataclass
class Request:
    """One request: path (below the UI's prefix), query and form fields, headers."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[bytes, bytes]
    base: str = ""  # the UI's prefix ("" or "/ui")
    client: str = ""  # "http <address>", for the audit trail
    scheme: str = "http"
    form: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # from the route's {segments}
    ui: Any = None  # the UIApp serving the request
    principal: str = "anonymous"  # who the request acts as (access control, audit trail)
    signed_in: bool = False  # the principal comes from a token (so there is a sign-out)

    def arg(self, name: str, default: str = "") -> str:
        """A query (or form) field's first value, stripped."""
        values = self.query.get(name) or self.form.get(name)
        return values[0].strip() if values else default

    def args(self, name: str) -> list[str]:
        """All non-empty values of a query field."""
        return [v.strip() for v in self.query.get(name, []) if v.strip()]

    def cookie(self, name: str) -> str | None:
        raw = self.headers.get(b"cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw.decode("latin-1"))
        except Exception:  # a malformed cookie header is no cookie
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None

    def url(self, path: str, **query: Any) -> str:
        """A URL of the UI: ``request.url("/search", q="x")`` → ``/ui/search?q=x``."""
        pairs = [(k, v) for k, v in query.items() if v not in (None, "", [])]
        flat = [(k, x) for k, v in pairs for x in (v if isinstance(v, list) else [v])]
        return self.base + path + ("?" + urlencode(flat) if flat else "")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = HTML
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def redirect(cls, location: str, status: int = 303) -> Response:
        return cls(status, b"", "text/plain", [(b"location", location.encode())])


Handler = Callable[[Request], Response]


class Router:
    """Path patterns to handlers; ``{name}`` matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], str, Handler]] = []
        self._fixed = 0  # how many routes (first in the list) have no {segments}

    def add(self, pattern: str, handler: Handler, method: str = "GET") -> None:
        """Route ``pattern``; patterns without ``{segments}`` are tried before the others."""
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
        at = len(self._routes) if "{" in pattern else self._fixed
        self._routes.insert(at, (re.compile(regex + r"\Z"), method, handler))
        self._fixed += "{" not in pattern

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | str | None:
        """The handler and its path parameters; the allowed methods (``"GET, POST"``) if
        only the method is wrong; None if no pattern matches."""
        owner, allowed = None, []
        for regex, want, handler in self._routes:
            found = regex.match(path)
            if found is None or (owner is not None and regex.pattern != owner):
                continue
            if want == method or (method == "HEAD" and want == "GET"):
                return handler, found.groupdict()
            owner = regex.pattern  # the most specific pattern owns the path
            allowed.append(want)
        return ", ".join(sorted(set(allowed))) or None


async def read_form(receive: Receive, headers: dict[bytes, bytes]) -> dict[str, list[str]]:
    """The url-encoded form in the request body (the only kind of body the UI takes)."""
    ctype = headers.get(b"content-type", b"").split(b";")[0].strip()
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            raise RetrievalError(f"forms are limited to {MAX_FORM // 1024} KiB")
        chunks.append(chunk)
        more = message.get("more_body", False)
    if ctype != b"application/x-www-form-urlencoded":
        return {}
    try:
        return parse_qs(b"".join(chunks).decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise RetrievalError("the form is not UTF-8") from None


def parse_query(raw: bytes) -> dict[str, list[str]]:
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise RetrievalError("the query string is not UTF-8") from None


async def send(send: Send, response: Response, head_only: bool = False) -> None:
    own = {name for name, _ in response.headers}
    headers = [(b"content-type", response.content_type.encode()),
               (b"content-length", str(len(response.body)).encode()),
               *[h for h in SECURITY_HEADERS if h[0] not in own], *response.headers]  # fmt: skip
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else response.body})
