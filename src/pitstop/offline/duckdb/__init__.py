"""The default offline engine: DuckDB over Parquet and CSV files (:class:`DuckDBEngine`).

:mod:`.engine` holds the engine, :mod:`.sql` the point-in-time SQL, :mod:`.aggregate` the SQL of
windowed aggregations and :mod:`.scan` the query helpers. DuckDB itself is imported only when a
query runs.
"""

from __future__ import annotations

from pitstop.offline.duckdb.engine import DuckDBEngine

__all__ = ["DuckDBEngine"]
