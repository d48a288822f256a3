"""The DuckDB engine's config model (``offline_store: {type: duckdb}``; Feast's ``file`` too).

Light on purpose: parsing ``feature_store.yaml`` imports this module, and
:meth:`DuckDBOfflineConfig.open` imports the engine (and DuckDB) only when it is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from pitstop.config import OfflineStoreConfig

if TYPE_CHECKING:
    from pitstop.offline.duckdb import DuckDBEngine


class DuckDBOfflineConfig(OfflineStoreConfig):
    """The DuckDB engine over Parquet/CSV files; Feast's ``type: file`` means the same.

    ``temp_directory`` (where joins larger than ``memory_limit`` spill) is relative to the repo
    root."""

    type: Literal["duckdb", "file"] = "duckdb"
    threads: int | None = Field(default=None, ge=1)
    memory_limit: str | None = None
    temp_directory: str | None = None

    def open(self, repo_path: Path) -> DuckDBEngine:
        from pitstop.offline.duckdb import DuckDBEngine

        temp = self.temp_directory
        return DuckDBEngine(
            threads=self.threads,
            memory_limit=self.memory_limit,
            temp_directory=str(Path(repo_path) / temp) if temp else None,
        )
