"""Templates: Jinja2 with autoescaping, loaded from the package, compiled once per process.

Every template sees ``request``, ``url`` (:meth:`Request.url`), ``nav`` (the navigation),
``collections`` (kinds and their list pages), ``principal`` and ``project``, plus what the
page passes. Filters: ``duration`` (``86400`` → ``1d``), ``when`` (ISO time, UTC, to the
second), ``ago`` (``3h ago``), ``label`` (a registry kind as prose), ``collection`` (a kind's
list page name), ``json`` (pretty JSON text).
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitstop.errors import require
from pitstop.ui.http import Request, Response
from pitstop.ui.pages import nav

TEMPLATES = Path(__file__).with_name("templates")


@functools.cache
def environment() -> Any:
    jinja2: Any = require("jinja2", "ui")
    from pitstop.catalog.kinds import COLLECTIONS
    from pitstop.cli.output import duration
    from pitstop.definitions.serde import kind_for
    from pitstop.registry.snapshot import LABELS

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    by_kind = {kind_for(cls): name for name, cls in COLLECTIONS.items()}
    env.filters.update(
        duration=duration,
        when=when,
        ago=ago,
        label=lambda kind: LABELS.get(kind, kind),
        collection=lambda kind: by_kind.get(kind, kind),
        json=lambda value: json.dumps(value, indent=2, sort_keys=True, default=str),
    )
    env.globals["collections"] = [(name, LABELS[kind_for(cls)]) for name, cls in
                                  COLLECTIONS.items()]  # fmt: skip
    return env


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """The page ``template`` filled with ``context``, as an HTML response."""
    page = environment().get_template(template)
    ui = request.ui
    html = page.render(request=request, url=request.url, nav=nav(), project=ui.project,
                       principal=request.principal, signed_in=request.signed_in,
                       auth=ui.auth_kind, **context)  # fmt: skip
    return Response(status, html.encode())


def when(value: datetime | str | None) -> str:
    """``2026-12-03 10:15:02 UTC``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long before ``now``: ``45s ago``, ``3h ago``, ``2d ago`` (``in 5m`` if later)."""
    if value is None:
        return "-"
    now = now or datetime.now(UTC)
    seconds = (now - (value if value.tzinfo else value.replace(tzinfo=UTC))).total_seconds()
    later, seconds = seconds < 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)}{unit}"
            break
    else:
        text = f"{int(seconds)}s"
    return f"in {text}" if later else f"{text} ago"
