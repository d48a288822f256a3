"""The offline conformance suite: every test here runs on every offline engine.

Each engine has a small harness (:class:`Harness`): how to make the engine in a temporary
directory, and, through :func:`feature_store` (the one place that wires an engine into a
store), a :class:`~pitstop.FeatureStore` that uses it. Adding an engine is adding a harness to
:data:`ENGINES` (and, if it has join configurations worth pinning, to :data:`CONFIGS`).

Fixtures: ``engine`` runs a test once per engine (default configuration), ``config_engine``
once per configuration (the DuckDB engine's hash, sort and split strategies), ``harness`` and
``config_harness`` give the harness itself. All engines are compared with the pure-Python
reference engine (:mod:`.reference`).

A gap is declared on the test, never by branching on an engine's name inside it::

    @pytest.mark.notimpl(["reference"], reason="takes no SQL entity queries")

The test then must fail on those engines (strict xfail: if it passes there, the run fails).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from pitstop import FeatureStore
from pitstop.backends import register, unregister
from pitstop.config import OfflineStoreConfig, parse_config
from pitstop.offline.base import OfflineEngine

from .reference import ReferenceEngine

HERE = Path(__file__).resolve().parent


class ReferenceOfflineConfig(OfflineStoreConfig):
    """``offline_store: {type: reference}``: the reference engine, for stores in this suite."""

    type: Literal["reference"] = "reference"

    def open(self, repo_path: Path) -> ReferenceEngine:
        return ReferenceEngine()


class Harness:
    """How the suite makes one engine (in one configuration)."""

    #: the engine's name, as ``notimpl`` markers name it
    name = ""

    def __init__(self, config: str = "") -> None:
        self.config = config

    def __str__(self) -> str:
        return f"{self.name}-{self.config}" if self.config else self.name

    def engine(self, tmp_path: Path, **options: Any) -> OfflineEngine:
        """A new engine whose scratch files go under ``tmp_path``; ``options``: ``batch_size``
        (rows per streamed batch)."""
        raise NotImplementedError

    def offline_store(self) -> dict[str, Any]:
        """The ``offline_store`` section of ``feature_store.yaml`` that selects this engine."""
        raise NotImplementedError


class ReferenceHarness(Harness):
    name = "reference"

    def offline_store(self) -> dict[str, Any]:
        return {"type": "reference"}

    def engine(self, tmp_path: Path, **options: Any) -> OfflineEngine:
        return ReferenceEngine(**options)


class DuckDBHarness(Harness):
    name = "duckdb"

    def __init__(self, config: str = "", hash_max_rows_per_key: int | None = None) -> None:
        super().__init__(config)
        self.hash_max_rows_per_key = hash_max_rows_per_key

    def engine(self, tmp_path: Path, **options: Any) -> OfflineEngine:
        from pitstop.offline import DuckDBEngine

        if self.hash_max_rows_per_key is not None:
            options["hash_max_rows_per_key"] = self.hash_max_rows_per_key
        return DuckDBEngine(threads=2, temp_directory=str(tmp_path / ".duckdb"), **options)

    def offline_store(self) -> dict[str, Any]:
        return {"type": "duckdb", "threads": 2, "temp_directory": ".scratch/.duckdb"}


#: Every engine, in its default configuration.
ENGINES: list[Harness] = [ReferenceHarness(), DuckDBHarness()]
#: Every configuration worth pinning: the DuckDB engine joins by hashing every key, sorting
#: every key, or both (keys with more than one entity row sorted).
CONFIGS: list[Harness] = [
    ReferenceHarness(),
    DuckDBHarness("hash", 10_000),
    DuckDBHarness("sort", 0),
    DuckDBHarness("split", 1),
]


def feature_store(harness: Harness, repo_path: Path, **settings: Any) -> FeatureStore:
    """A :class:`FeatureStore` over the repo at ``repo_path`` (a project of its own; more
    ``feature_store.yaml`` settings in ``settings``) whose offline engine is ``harness``'s."""
    settings = {"project": f"t{uuid.uuid4().hex[:10]}", **settings}
    settings.setdefault("offline_store", harness.offline_store())
    # the reference engine is a backend only while its store's config is read
    register("offline_store", "reference", ReferenceOfflineConfig)
    try:
        config = parse_config(settings, repo_path=repo_path)
    finally:
        unregister("offline_store", "reference")
    return FeatureStore(config=config)


@pytest.fixture(scope="session", params=ENGINES, ids=str)
def harness(request: pytest.FixtureRequest) -> Harness:
    """Each engine's harness."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session", params=CONFIGS, ids=str)
def config_harness(request: pytest.FixtureRequest) -> Harness:
    """Each engine configuration's harness."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def engine(harness: Harness, tmp_path: Path) -> Iterator[OfflineEngine]:
    """Each engine."""
    made = harness.engine(tmp_path)
    yield made
    made.close()


@pytest.fixture
def config_engine(config_harness: Harness, tmp_path: Path) -> Iterator[OfflineEngine]:
    """Each engine configuration."""
    made = config_harness.engine(tmp_path)
    yield made
    made.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``notimpl([engines], reason=...)``: a strict xfail on those engines."""
    for item in items:
        marker = item.get_closest_marker("notimpl")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or HERE not in item.path.parents:
            continue  # another suite's (the stream sources declare their gaps themselves)
        params = callspec.params
        used = params.get("harness") or params.get("config_harness")
        if used is None:
            raise pytest.UsageError(f"{item.nodeid}: notimpl needs an engine fixture")
        if used.name in marker.args[0]:
            reason = marker.kwargs.get("reason", "not implemented")
            raises = marker.kwargs.get("raises")
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason, raises=raises))
