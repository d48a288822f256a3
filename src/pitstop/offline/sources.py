"""Rules about sources every offline engine shares: where pushed data goes, what a source's
columns must be, and how pushed rows are named.

An engine reports a source's columns as an Arrow schema of its stored (raw) column names
(:meth:`pitstop.offline.base.OfflineEngine.schema`, or what it reads at query time); the checks
here compare that schema with a plan entry, so every engine raises the same errors with the same
words. Only the standard library and pyarrow's types are used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pitstop.errors import DataSourceError, RetrievalError, suggest
from pitstop.offline.typemap import time_kind, type_family

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.offline.pit import SourceRef, ViewJoin

__all__ = [
    "PUSHED_SUFFIX",
    "check_appendable",
    "check_key_types",
    "check_time_column",
    "check_view_columns",
    "pushed_location",
    "stored_names",
]

PUSHED_SUFFIX = ".pushed"


def pushed_location(path: str) -> str:
    """Where rows appended to the source at ``path`` go: a directory source takes them inside
    itself (they are read as its own files), any other source in ``<path>.pushed/``.

    >>> pushed_location("/data/driver_stats.parquet")
    '/data/driver_stats.parquet.pushed'
    """
    if os.path.isdir(path):
        return path
    return path.rstrip("/") + PUSHED_SUFFIX


def check_appendable(source: SourceRef, what: str) -> None:
    """Rows can be appended only to a Parquet source (pushed rows are Parquet too), not to a
    catalog table or query."""
    if source.in_catalog:
        raise RetrievalError(
            f"{what}: offline pushes need Parquet files; {source.display_name!r} is a "
            "SparkSource over a Spark table or query: push to it online only (to='online')"
        )
    if source.file_format != "parquet":
        raise RetrievalError(
            f"{what}: offline pushes need a Parquet source; {source.display_name!r} is "
            f"{source.file_format}"
        )


def stored_names(source: SourceRef, names: list[str]) -> list[str]:
    """``names`` (after the field mapping) as the source stores them (before it)."""
    return [source.raw_column(n) for n in names]


def check_view_columns(view: ViewJoin, types: Mapping[str, pa.DataType]) -> None:
    """Every column ``view`` reads (keys, timestamps, features) is among the raw ``types``."""
    src = view.source
    needed = [*view.source_keys, src.timestamp_field, *view.feature_columns]
    if src.created_timestamp_column:
        needed.append(src.created_timestamp_column)
    for column in needed:
        raw = src.raw_column(column)
        if raw not in types:
            mapped = f" (mapped from {raw!r})" if raw != column else ""
            raise DataSourceError(
                f"Source {src.display_name!r} ({src.path}) of view {view.name!r} has no column "
                f"{column!r}{mapped}.{suggest(raw, types)} Columns: {list(types)}."
            )


def check_time_column(view: ViewJoin, raw: str, dtype: pa.DataType, what: str) -> None:
    """The source column ``raw`` (the ``what`` column: ``"timestamp"``, ``"created
    timestamp"``) holds time by :mod:`pitstop.offline.typemap`'s rule."""
    if time_kind(dtype) is None:
        raise DataSourceError(
            f"The {what} column {raw!r} of source {view.source.display_name!r} (view "
            f"{view.name!r}) has type {dtype}; it must hold timestamps, dates or ISO 8601 "
            "strings."
        )


def check_key_types(
    view: ViewJoin, types: Mapping[str, pa.DataType], entity: pa.Schema, rows: int
) -> None:
    """The entity frame's key columns can match the source's (same :func:`type_family`).

    ``entity`` is the frame's schema, ``rows`` its length: an empty frame is not checked (an
    empty pandas column is float64 whatever it would hold)."""
    if rows == 0:
        return
    for ekey, skey in zip(view.entity_keys, view.source_keys, strict=True):
        etype = entity.field(ekey).type
        stype = types[view.source.raw_column(skey)]
        efam, sfam = type_family(etype), type_family(stype)
        if efam not in ("null", sfam):
            raise RetrievalError(
                f"Join key {ekey!r} of view {view.name!r} is {etype} in the entity frame but "
                f"{stype} in source {view.source.display_name!r} (column {skey!r}); convert the "
                f"entity column so both are {sfam}."
            )
