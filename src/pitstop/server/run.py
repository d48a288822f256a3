"""Building the app for a store and running it on uvicorn (one process or several workers)."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from pitstop.errors import ConfigError, require

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore
    from pitstop.server.app import FeatureServer
    from pitstop.server.auth import ApiKeys, JwtAuth

DEFAULT_PORT = 6566
DEFAULT_REGISTRY_TTL_SEC = 5  # Feast's `feast serve` default
GRACEFUL_SHUTDOWN_S = 30
_WORKER_ENV = "PITSTOP_SERVER_WORKER_STATE"


def registry_ttl(store: FeatureStore, registry_ttl_sec: float | None) -> float:
    """The option, else ``feature_server.registry_ttl_sec``, else 5 seconds."""
    if registry_ttl_sec is None:
        registry_ttl_sec = store.config.feature_server.registry_ttl_sec
    ttl = DEFAULT_REGISTRY_TTL_SEC if registry_ttl_sec is None else registry_ttl_sec
    if ttl < 0:
        raise ConfigError(f"registry TTL must be 0 or more seconds, got {ttl}")
    return ttl


def load_auth(store: FeatureStore) -> ApiKeys | JwtAuth | None:
    """The API keys or JWT checker ``feature_server.auth`` configures (None: no auth)."""
    from pitstop.server.auth import ApiKeys, JwtAuth

    auth = store.config.feature_server.auth
    if auth is not None and auth.type == "jwt":
        return JwtAuth.load(auth, store.repo_path)
    if auth is not None:
        return ApiKeys.load(auth, store.repo_path)
    return None


def create_app(
    store: FeatureStore,
    *,
    registry_ttl_sec: float | None = None,
    owns_store: bool = False,
    ui: bool = False,
) -> FeatureServer:
    """The ASGI app serving ``store`` (``pip install 'pitstop[server]'``).

    Definitions applied while the server runs are served at most ``registry_ttl_sec`` seconds
    later: a background task re-reads the registry that often (requests never wait for it, and
    keep the last definitions while the registry is down); 0 re-reads it on every request.
    ``owns_store`` closes the store at shutdown; ``ui`` serves the web UI under ``/ui``
    (``pip install 'pitstop[ui]'``).

    >>> app = create_app(FeatureStore(repo_path="feature_repo"))     # doctest: +SKIP
    >>> # uvicorn.run(app, port=6566)
    """
    from pitstop.server.app import FeatureServer

    ttl = registry_ttl(store, registry_ttl_sec)
    keys = load_auth(store)
    server = FeatureServer(store, registry_ttl_sec=ttl, keys=keys, owns_store=owns_store)
    if ui:
        require("jinja2", "ui")
        from pitstop.ui.app import UIApp

        server.ui = UIApp(store, keys=keys, prefix="/ui", endpoints=server.endpoints)
    return server


def serve(
    store: FeatureStore,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    workers: int = 1,
    registry_ttl_sec: float | None = None,
    *,
    access_log: bool = False,
    ui: bool = False,
) -> None:
    """Serve ``store`` over HTTP until SIGINT/SIGTERM (in-flight requests are finished first).

    With ``workers > 1`` uvicorn starts that many processes sharing the port; each opens its
    own store from the configuration, which reaches them through an environment variable of
    this process (readable by the same user only).
    """
    uvicorn: Any = require("uvicorn", "server")
    require("orjson", "server")
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, got {workers}")
    from pitstop.server.transport import http_protocol

    configure_logging()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "auto",  # uvloop when installed (pitstop[server] installs it)
        "http": http_protocol(),  # httptools, one write per response (see .transport)
        "ws": "none",
        "lifespan": "on",
        "access_log": access_log,
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "log_level": "info",
    }
    if workers == 1:
        app = create_app(store, registry_ttl_sec=registry_ttl_sec, ui=ui)
        uvicorn.Server(uvicorn.Config(app, **options)).run()
        return
    ttl = registry_ttl(store, registry_ttl_sec)
    create_app(store, registry_ttl_sec=ttl, ui=ui)  # fail here, not in every worker
    state = {"config": store.config.model_dump(mode="json"), "registry_ttl_sec": ttl, "ui": ui}
    os.environ[_WORKER_ENV] = json.dumps(state)
    try:
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **options)
    finally:
        os.environ.pop(_WORKER_ENV, None)


def worker_app() -> FeatureServer:
    """The app of one worker process, from the state :func:`serve` left in the environment."""
    from pitstop.config import RepoConfig
    from pitstop.feature_store import FeatureStore

    configure_logging()
    state = json.loads(os.environ[_WORKER_ENV])
    store = FeatureStore(config=RepoConfig.model_validate(state["config"]))
    return create_app(store, registry_ttl_sec=state["registry_ttl_sec"], owns_store=True,
                      ui=state.get("ui", False))  # fmt: skip


def configure_logging() -> None:
    """Error lines (JSON) of the ``pitstop.server`` logger go to stderr as they are."""
    logger = logging.getLogger("pitstop.server")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
