"""``offline_store: {type: spark}``: the Spark engine's settings in ``feature_store.yaml``.

Only pydantic is imported here, so the configuration loads without pyspark::

    offline_store:
      type: spark
      master: spark://spark-master:7077      # or yarn, k8s://..., local[*] (the default)
      spark_conf:
        spark.executor.memory: 8g
        spark.sql.shuffle.partitions: "400"
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from pitstop.config import OfflineStoreConfig

if TYPE_CHECKING:
    from pitstop.offline.spark.engine import SparkEngine

__all__ = ["SparkOfflineConfig"]


class SparkOfflineConfig(OfflineStoreConfig):
    """The Spark offline engine: where Spark runs and how it is configured.

    Attributes:
        master: the Spark master URL (``local[*]``, ``local[2]``, ``spark://host:7077``,
            ``yarn``, ``k8s://...``). Ignored when the process already has an active Spark
            session (a notebook's, a ``spark-submit`` job's): that session is used.
        app_name: the Spark application name.
        spark_conf: Spark properties set when the session is built (Feast's key), e.g.
            ``spark.driver.memory``; they override pitstop's defaults for a local master.
        batch_rows: rows per Arrow record batch streamed back to this process.
        staging_location, region: accepted so that a Feast ``feature_store.yaml`` loads as
            is; pitstop writes results where ``to_parquet`` is told to and does not use them.
    """

    type: Literal["spark"] = "spark"
    master: str = "local[*]"
    app_name: str = "pitstop"
    spark_conf: dict[str, str] = Field(default_factory=dict)
    batch_rows: int = Field(default=250_000, ge=1)
    staging_location: str | None = None
    region: str | None = None

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        """YAML numbers and booleans (``spark.sql.shuffle.partitions: 8``) become text, as
        Spark takes every property."""
        if isinstance(value, dict):
            return {
                str(k): (str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in value.items()
            }
        return value

    @field_validator("master")
    @classmethod
    def _check_master(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("names no Spark master; write e.g. local[*] or spark://host:7077")
        return value

    def open(self, repo_path: Path) -> SparkEngine:
        from pitstop.offline.spark.engine import SparkEngine

        return SparkEngine(self)
