"""The web UI: search, browse and look up a feature store's registry in a browser.

``pitstop ui`` serves it on its own (http://127.0.0.1:8888/); ``pitstop serve --ui`` serves
it beside the feature server's API, under ``/ui``. Pages are rendered on the server
(Jinja2 templates, ``pip install 'pitstop[ui]'``) with one stylesheet and one small script;
nothing is built or downloaded. Which pages exist is :mod:`pitstop.ui.pages`.

Nothing here is imported by ``import pitstop``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pitstop.errors import require

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore
    from pitstop.ui.app import UIApp

__all__ = ["DEFAULT_PORT", "create_ui", "serve_ui"]

DEFAULT_PORT = 8888


def create_ui(store: FeatureStore, *, prefix: str = "", owns_store: bool = False) -> UIApp:
    """The UI's ASGI app for ``store``, signing in like the feature server
    (``feature_server.auth``). ``prefix``: the path it is served under (``""`` or ``/ui``).

    >>> app = create_ui(FeatureStore(repo_path="feature_repo"))    # doctest: +SKIP
    >>> # uvicorn.run(app, port=8888)
    """
    require("jinja2", "ui")
    from pitstop.server.run import load_auth
    from pitstop.ui.app import UIApp

    return UIApp(store, keys=load_auth(store), prefix=prefix, owns_store=owns_store)


def serve_ui(store: FeatureStore, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve the UI until SIGINT/SIGTERM (``pip install 'pitstop[ui]'``)."""
    uvicorn: Any = require("uvicorn", "ui")
    from pitstop.server.run import configure_logging

    app = create_ui(store)
    configure_logging()
    print(f"pitstop UI of project {store.project!r}: http://{_host(host)}:{port}/", flush=True)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="on", ws="none",
                                  access_log=False, server_header=False,
                                  log_level="warning")).run()  # fmt: skip


def _host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
