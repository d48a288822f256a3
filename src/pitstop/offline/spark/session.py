"""The one SparkSession of a process: reused if one is active, else built from the config.

A session pitstop builds gets, before the user's ``spark_conf`` (which wins):

* ``spark.sql.session.timeZone=UTC`` -- pitstop's time is UTC; a session that already exists
  is switched to UTC too, since reading zone-less timestamps depends on it;
* Arrow transfers (``spark.sql.execution.arrow.pyspark.enabled``);
* for a ``local[...]`` master: a few shuffle partitions per core, the driver bound to
  127.0.0.1, no web UI or console progress bars, executors running this Python, and Spark's
  own logging reduced to errors; Python workers run this interpreter (``PYSPARK_PYTHON``,
  unless set).

Example::

    spark = spark_session(SparkOfflineConfig(master="local[2]"))
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.errors import BackendUnavailableError, require
from pitstop.offline.spark.config import SparkOfflineConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["arrow_udfs", "first_line", "session_conf", "spark_session", "stop_session"]

_LOCK = threading.Lock()
_LOCAL = re.compile(r"^local(\[(\*|\d+)(,\s*\d+)?\])?$")
_LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
#: Set on every session pitstop uses. Parquet timestamps stored with nanoseconds (pandas'
#: default) are read as longs, which the source reader converts (Spark refuses such files
#: otherwise); timestamps are written as Parquet TIMESTAMP_MICROS, which every reader takes as
#: UTC instants (Spark's default, INT96, reads back as zone-less nanoseconds elsewhere).
_ALWAYS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def _cores(master: str) -> int:
    found = _LOCAL.match(master)
    count = found.group(2) if found else None
    return int(count) if count and count != "*" else os.cpu_count() or 2


def session_conf(config: SparkOfflineConfig) -> dict[str, str]:
    """The properties a new session is built with: pitstop's defaults, then ``spark_conf``."""
    conf = {"spark.master": config.master, "spark.app.name": config.app_name, **_ALWAYS}
    conf["spark.ui.showConsoleProgress"] = "false"
    if _LOCAL.match(config.master):
        conf.update(
            {
                "spark.sql.shuffle.partitions": str(4 * _cores(config.master)),
                "spark.default.parallelism": str(_cores(config.master)),
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.ui.enabled": "false",
                "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile=file:{_LOG_CONFIG}",
            }
        )
    conf.update(config.spark_conf)
    return conf


def spark_session(config: SparkOfflineConfig | None = None) -> SparkSession:
    """The process's SparkSession: the active one if there is one, else a new one built from
    ``config`` (default: ``local[*]``). Its session time zone is set to UTC."""
    require("pyspark", "spark")
    from pyspark.sql import SparkSession

    with _LOCK:
        session = SparkSession.getActiveSession() or _existing()
        if session is None:
            session = _build(config or SparkOfflineConfig())
        for key, value in _ALWAYS.items():
            session.conf.set(key, value)
        _load_quietly()
        return session


def _load_quietly() -> None:
    """Import, once and without its pandas version warning, the pyspark module that pyspark
    itself imports the first time it converts a Python value for the JVM (a literal, an
    option); under warnings-as-errors that import would otherwise fail, and be retried, on
    every conversion."""
    with arrow_udfs(), contextlib.suppress(ImportError):
        import pyspark.testing.utils  # noqa: F401


def _existing() -> SparkSession | None:
    from pyspark.sql import SparkSession

    found: Any = getattr(SparkSession, "_instantiatedSession", None)
    if found is None or found._sc._jsc is None:  # stopped
        return None
    session: SparkSession = found
    return session


def _build(config: SparkOfflineConfig) -> SparkSession:
    from pyspark.sql import SparkSession

    if _LOCAL.match(config.master):  # local Python workers run this interpreter
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder: Any = SparkSession.builder
    for key, value in session_conf(config).items():
        builder = builder.config(key, value)
    try:
        session: SparkSession = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: no Java, or a bad master URL
        raise BackendUnavailableError(
            f"Spark (master {config.master!r}) could not start: {first_line(exc)}. The Spark "
            "engine needs Java 17 or 21 (java on PATH or JAVA_HOME) and a reachable master; check "
            "offline_store.master and offline_store.spark_conf in feature_store.yaml."
        ) from exc
    if _LOCAL.match(config.master):
        session.sparkContext.setLogLevel("ERROR")
    return session


def stop_session() -> None:
    """Stop the process's SparkSession if there is one (the next use builds a new one)."""
    with _LOCK:
        session = _existing()
        if session is not None:
            session.stop()


@contextmanager
def arrow_udfs() -> Iterator[None]:
    """Around pyspark calls that set up Arrow functions (``mapInArrow``): pyspark checks the
    installed pandas there and warns that pandas 3 is not fully supported, which does not
    concern Arrow-only functions."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
        )
        yield


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (Spark's carry a JVM stack trace after it)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
