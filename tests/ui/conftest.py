"""Browser tests of the web UI: Debian's Chromium driven by Playwright, one browser and one
``pitstop ui`` server per session.

The churn example's repo (examples/churn/feature_repo, with data made by its pipeline) is
served with API keys and an access policy: ``admin-key`` may do everything, ``analyst-key``
may describe and read only objects tagged ``team=ml-platform``. ``user_features`` has a
second version (its TTL changed), and its latest values are materialized.

Screenshots go to ``test-artifacts/ui/`` (gitignored). Chromium is ``/usr/bin/chromium``
(``make test`` installs Debian's package when it is missing); without it the tests are
skipped, and with ``CI=true`` they fail.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
PITSTOP = str(Path(sys.executable).with_name("pitstop"))
ADMIN_KEY, ANALYST_KEY = "admin-key", "analyst-key"


def principal(key: str) -> str:
    return "api-key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass
class Served:
    """A running ``pitstop ui`` and the repo it serves."""

    url: str
    repo: Path
    proc: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_ui(repo: Path, log: Path, env: dict[str, str] | None = None) -> Served:
    """``pitstop ui`` on a free port, once its health page answers."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([PITSTOP, "ui", "-p", str(port)], cwd=repo, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pitstop ui exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return Served(url, repo, proc)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"pitstop ui did not answer within 60 s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def churn_repo(root: Path) -> Path:
    """The churn example's repo with a few weeks of features from its pipeline, applied
    twice (the second time with a longer TTL on user_features) and materialized."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    from churn.data import generate_transactions
    from churn.pipeline import FeatureEngineeringPipeline

    from pitstop import FeatureStore
    from pitstop.repo import load_repo

    repo = root / "feature_repo"
    shutil.copytree(EXAMPLES / "churn" / "feature_repo", repo,
                    ignore=shutil.ignore_patterns("data", "__pycache__"))  # fmt: skip
    now = datetime.now(UTC)
    raw = generate_transactions(80, 60, now=now)
    (root / "raw").mkdir()
    raw.to_parquet(root / "raw" / "transactions.parquet", index=False)
    features = repo / "data" / "user_features.parquet"
    FeatureEngineeringPipeline(root / "raw" / "transactions.parquet", features, now=now,
                               log=None).run()  # fmt: skip
    with FeatureStore(repo_path=repo) as store:
        store.apply(list(load_repo(repo, project=store.project).all()), partial=False)
        views = repo / "features" / "user_features.py"
        views.write_text(views.read_text().replace("timedelta(days=2)", "timedelta(days=3)"))
        store.apply(list(load_repo(repo, project=store.project).all()), partial=False)
        store.materialize_incremental(now)
    return repo


def restrict(repo: Path) -> None:
    """API keys for the UI, and the policy: admins everything, analysts what is tagged
    team=ml-platform (describe and read online)."""
    from pitstop import FeatureStore
    from pitstop.definitions import Permission, Role
    from pitstop.definitions.access import ACTIONS

    config = repo / "feature_store.yaml"
    config.write_text(config.read_text() + "\nfeature_server:\n  auth:\n    type: api_key\n"
                      "    keys_env: PITSTOP_UI_TEST_KEYS\n")  # fmt: skip
    policy = [
        Role(name="admins", principals=[principal(ADMIN_KEY)]),
        Role(name="analysts", principals=[principal(ANALYST_KEY)]),
        Permission(name="admins-all", roles=["admins"], actions=list(ACTIONS)),
        Permission(name="analysts-ml", roles=["analysts"], actions=["describe", "read_online"],
                   required_tags={"team": "ml-platform"}),
    ]  # fmt: skip
    with FeatureStore(repo_path=repo) as store:
        store.apply(policy)


@pytest.fixture(scope="session")
def churn_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``pitstop ui`` over the churn repo, with API keys and the access policy."""
    root = tmp_path_factory.mktemp("churn-ui")
    repo = churn_repo(root)
    restrict(repo)
    keys = f"{ADMIN_KEY}:rw,{ANALYST_KEY}:ro"
    served = start_ui(repo, root / "ui.log", {"PITSTOP_UI_TEST_KEYS": keys})
    try:
        yield served
    finally:
        stop(served.proc)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        require_service("Playwright (pip install playwright)", exc)
    if not Path(CHROMIUM).exists():
        require_service("Chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install chromium)"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


def context(browser: Any, key: str | None = ADMIN_KEY) -> Any:
    """A browser context sending ``key`` in the Authorization header (None: no header)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return browser.new_context(viewport={"width": 1280, "height": 860},
                               extra_http_headers=headers)  # fmt: skip


@pytest.fixture
def admin(browser: Any) -> Iterator[Any]:
    """A page signed in with the admin's key."""
    ctx = context(browser)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture
def analyst(browser: Any) -> Iterator[Any]:
    """A page signed in with the analyst's key."""
    ctx = context(browser, ANALYST_KEY)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot (of the whole page, or what the window shows) as a test artifact.
    Those named ``readme-*`` are the README's pictures (docs/images/)."""
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical accessibility violations on the page."""
    import axe_playwright_python

    page.evaluate(Path(axe_playwright_python.__file__).with_name("axe.min.js").read_text())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] for n in v["nodes"][:3])
            for v in result["violations"] if v["impact"] in ("serious", "critical")]  # fmt: skip
