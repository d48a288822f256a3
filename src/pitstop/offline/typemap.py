"""Column types of sources and entity frames: the one place their meaning is decided.

Every type here is a ``pyarrow.DataType``. An engine describes a source's columns as Arrow types
too (DuckDB: the schema of the Arrow result it would produce, see
:func:`pitstop.offline.duckdb.scan.scan_source`), so no code compares an engine's type names.

**Time.** Inside pitstop a row's time is a UTC instant with microsecond precision (tz-naive UTC
``TIMESTAMP`` inside DuckDB, ``timestamp[us, tz=UTC]`` in Arrow results). Each encoding maps
onto it by one rule, :func:`time_kind`:

===================================  =========================================================
column type                          meaning
===================================  =========================================================
timestamp without a zone (s...ns)    wall time in UTC (Parquet INT96 arrives as this)
timestamp with a zone (any zone)     the instant it stores, converted to UTC -- never relabelled
date                                 midnight UTC
text                                 ISO 8601: with an offset the instant, without one UTC
===================================  =========================================================

Digits below the microsecond are dropped (truncated toward zero). :func:`to_utc` applies the
rule to Arrow columns (entity frames, pushed rows); engines apply the same rule to source
columns in their own dialect (DuckDB: :func:`pitstop.offline.duckdb.sql.utc_sql`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from pitstop.errors import RetrievalError

__all__ = [
    "UTC_TIMESTAMP",
    "TimeKind",
    "is_binary",
    "is_string",
    "time_kind",
    "to_utc",
    "type_family",
]

#: pitstop's time type in Arrow results.
UTC_TIMESTAMP = pa.timestamp("us", "UTC")


class TimeKind(enum.Enum):
    """How a column encodes time (see the module's table)."""

    NAIVE = "timestamp without a zone"
    ZONED = "timestamp with a zone"
    DATE = "date"
    TEXT = "ISO 8601 text"


def is_string(t: pa.DataType) -> bool:
    """Whether ``t`` holds text (any Arrow string layout)."""
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def is_binary(t: pa.DataType) -> bool:
    """Whether ``t`` holds bytes (any Arrow binary layout)."""
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t))


def time_kind(t: pa.DataType) -> TimeKind | None:
    """How ``t`` encodes time, ``None`` if it cannot hold a row's time."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_timestamp(t):
        return TimeKind.ZONED if t.tz else TimeKind.NAIVE
    if pa.types.is_date(t):
        return TimeKind.DATE
    if is_string(t):
        return TimeKind.TEXT
    return None


def type_family(arrow_type: pa.DataType) -> str:
    """A coarse type family used to check that join keys can match (e.g. ``"number"``).

    Integers, floats and decimals are one family: pandas turns integer keys with missing
    values into floats, and DuckDB compares them fine.
    """
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    checks = (
        (pa.types.is_null, "null"),
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_integer, "number"),
        (pa.types.is_floating, "number"),
        (pa.types.is_decimal, "number"),
        (is_string, "string"),
        (is_binary, "binary"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
    )
    for check, family in checks:
        if check(t):
            return family
    return str(t)


def to_utc(
    column: pa.ChunkedArray | pa.Array, what: str, *, keep_unit: bool = False
) -> pa.ChunkedArray:
    """``column`` as ``timestamp[us, tz=UTC]`` by the module's rule (``keep_unit``: a
    timestamp column keeps its unit, so nothing is truncated).

    ``what`` names the column in errors, e.g. ``"timestamp column 't' of the entity frame"``.
    An all-null column of any type and an empty column of any type convert too (pandas makes
    an empty column float64).
    """
    col = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    kind = time_kind(col.type)
    if kind is TimeKind.NAIVE or kind is TimeKind.ZONED:
        if col.type == UTC_TIMESTAMP or (keep_unit and col.type.tz == "UTC"):
            return col
        # a zoned value stores its UTC instant: relabelling it UTC converts it; nanoseconds
        # are truncated (the only lossy step; s and ms widen exactly, out of range fails)
        unit = col.type.unit
        utc = pc.cast(col, pa.timestamp(unit, "UTC"))
        return utc if unit == "us" or keep_unit else utc.cast(UTC_TIMESTAMP, safe=unit != "ns")
    if kind is TimeKind.DATE:
        return col.cast(pa.timestamp("us")).cast(UTC_TIMESTAMP)
    if kind is TimeKind.TEXT:
        return _parse_iso(col, what)
    if pa.types.is_null(col.type) or len(col) == col.null_count:
        return pa.chunked_array([pa.nulls(len(col), UTC_TIMESTAMP)])
    raise RetrievalError(
        f"The {what} has type {col.type}; use timestamps (with or without a zone), dates or "
        "ISO 8601 text such as '2024-05-01T12:00:00Z'."
    )


def _parse_iso(col: pa.ChunkedArray, what: str) -> pa.ChunkedArray:
    try:  # every value carries an offset ("Z", "+09:00")
        return col.cast(UTC_TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # no value carries an offset: UTC wall time
        return col.cast(pa.timestamp("us")).cast(UTC_TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = [None if text is None else _parse_one(text, what) for text in col.to_pylist()]
    return pa.chunked_array([pa.array(values, UTC_TIMESTAMP)])


def _parse_one(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RetrievalError(
            f"Cannot parse {text!r} in the {what}; use ISO 8601 such as '2024-05-01T12:00:00Z'."
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
