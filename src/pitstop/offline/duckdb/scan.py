"""Running DuckDB queries for the engine: reading a source's columns, executing, mapping errors.

DuckDB is imported only when a function here runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from pitstop.errors import DataSourceError, PitstopError, RetrievalError
from pitstop.offline import files
from pitstop.offline.duckdb import sql as dsql
from pitstop.offline.sources import check_view_columns

if TYPE_CHECKING:
    import duckdb

    from pitstop.offline.pit import ViewJoin

__all__ = ["execute", "guarded", "scan_source", "wrap_error"]


def wrap_error(exc: Exception, what: str) -> Exception:
    """A DuckDB error as ours: bad data is a :class:`DataSourceError`, anything else a
    :class:`RetrievalError`; ``what`` says what was running."""
    import duckdb

    data_errors = (duckdb.IOException, duckdb.ConversionException, duckdb.InvalidInputException)
    if isinstance(exc, data_errors):
        return DataSourceError(f"{what}: {exc}")
    return RetrievalError(f"{what}: {exc}")


def execute(
    cur: duckdb.DuckDBPyConnection, sql: str, batch_size: int, what: str
) -> pa.RecordBatchReader:
    """Start ``sql`` on ``cur`` as an Arrow stream (``cur`` is closed if it fails)."""
    try:
        return cur.sql(sql).to_arrow_reader(batch_size)
    except Exception as exc:
        cur.close()
        raise wrap_error(exc, what) from exc


def guarded(
    reader: pa.RecordBatchReader, cur: duckdb.DuckDBPyConnection, what: str
) -> Iterator[pa.RecordBatch]:
    """Yield ``reader``'s batches, map DuckDB errors to ours, close ``cur`` at the end."""
    try:
        yield from reader
    except PitstopError:
        raise
    except Exception as exc:
        raise wrap_error(exc, what) from exc
    finally:
        cur.close()


def scan_source(cur: duckdb.DuckDBPyConnection, view: ViewJoin) -> dsql.ScanInfo:
    """How to read ``view``'s source and its raw columns' types; checks the columns exist.

    The types are the Arrow types DuckDB gives the columns (the schema of an empty result,
    read from the files' metadata), so they are compared as types, never by name.
    """
    source = view.source
    path, many = files.resolve_path(source)
    relation = dsql.source_relation(path, source.file_format, many_files=many)
    try:
        schema = cur.sql(f"SELECT * FROM {relation} LIMIT 0").to_arrow_table().schema
    except Exception as exc:
        raise DataSourceError(
            f"Cannot read source {source.display_name!r} of view {view.name!r} at "
            f"{source.path!r} as {source.file_format}: {exc}"
        ) from exc
    scan = dsql.ScanInfo(relation, {f.name: f.type for f in schema})
    check_view_columns(view, scan.types)
    return scan
