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

(``ids=[...]``: only the cases whose id contains one of these strings.) The test then must
fail on those engines (strict xfail: if it passes there, the run fails).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from pitstop import FeatureStore
from pitstop.backends import register, unregister
from pitstop.config import OfflineStoreConfig, parse_config
from pitstop.errors import BackendUnavailableError
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
    #: modules whose cases on this engine are marked ``slow`` (they still run in ``make
    #: test``; ``-m 'not slow'`` leaves them out of a quick run)
    slow_modules: frozenset[str] = frozenset()
    #: examples each hypothesis property test runs on this engine
    property_examples = 60

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


class SparkHarness(Harness):
    """The Spark engine on one local SparkSession (``local[2]``) shared by the whole run;
    without pyspark or Java its cases are skipped (with ``CI=true``: failed)."""

    name = "spark"
    slow_modules = frozenset({"test_timestamps"})  # ~140 cases, each a few Spark jobs
    property_examples = 15  # each a few Spark jobs (~1 s)
    conf: ClassVar[dict[str, str]] = {
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        # small frames: compiling generated code costs more than it saves
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.adaptive.enabled": "false",
    }

    def _config(self, **options: Any) -> Any:
        from pitstop.offline.spark import SparkOfflineConfig

        return SparkOfflineConfig(master="local[2]", spark_conf=self.conf, **options)

    def engine(self, tmp_path: Path, **options: Any) -> OfflineEngine:
        from conftest import require_service

        try:
            from pitstop.offline.spark import SparkEngine
            from pitstop.offline.spark.session import spark_session
        except ImportError as exc:  # pragma: no cover - pyspark is a dev dependency
            require_service("pyspark (pip install 'pitstop[spark]')", exc)
        if "batch_size" in options:
            options["batch_rows"] = options.pop("batch_size")
        config = self._config(**options)
        try:
            session = spark_session(config)  # the process's one session, started once
        except BackendUnavailableError as exc:
            require_service("Spark (needs Java 17+)", exc)
        return SparkEngine(config, session=session)

    def offline_store(self) -> dict[str, Any]:
        return {"type": "spark", "master": "local[2]", "spark_conf": self.conf}


#: Every engine, in its default configuration.
ENGINES: list[Harness] = [ReferenceHarness(), DuckDBHarness(), SparkHarness()]
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
    """``notimpl([engines], reason=...)``: a strict xfail on those engines; an engine's
    :attr:`Harness.slow_modules` cases: marked ``slow``."""
    for item in items:
        marker = item.get_closest_marker("notimpl")
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        used = params.get("harness") or params.get("config_harness")
        if isinstance(used, Harness) and item.module.__name__.split(".")[-1] in used.slow_modules:
            item.add_marker(pytest.mark.slow)
        if marker is None or callspec is None or HERE not in item.path.parents:
            continue  # another suite's (the stream sources declare their gaps themselves)
        if used is None:
            raise pytest.UsageError(f"{item.nodeid}: notimpl needs an engine fixture")
        cases = marker.kwargs.get("ids")  # only the cases whose id contains one of these
        if cases is not None and not any(c in callspec.id for c in cases):
            continue
        if used.name in marker.args[0]:
            reason = marker.kwargs.get("reason", "not implemented")
            raises = marker.kwargs.get("raises")
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason, raises=raises))
