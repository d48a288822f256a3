"""A shortcut for small online writes whose values already have their declared types.

A push of one row spends most of its time in Arrow's per-call overhead (building a table,
casting a few one-value columns, turning them back into Python values), not in any work. This
module encodes such rows from the Python values directly, but only when every value is one
that :func:`pitstop.engine.push.conform` would pass through unchanged: an ``int`` in range
for an integer column, a ``float`` for a float column (rounded to single precision for
``Float32``, as Arrow's cast does), a ``str``, ``bytes`` or ``bool`` for those types, a
``datetime`` (``pandas.Timestamp`` without nanoseconds) for a timestamp, ``None`` for a
null feature. Anything else (text for a number, a NaN, a missing or extra column, a null key)
makes :func:`exact_rows` return ``None`` and the caller takes the Arrow path, which stays the
one place that converts values and words the errors. ``tests/test_push_exact.py`` checks,
on random inputs, that both paths write the same bytes and that this one never accepts what
the other rejects.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.stream import StreamFeatureView
from pitstop.online.base import StoredRow, newest_per_key
from pitstop.online.encoding import encode_value, entity_key
from pitstop.types import PrimitiveType

MAX_ROWS = 64  # larger inputs go through Arrow, where per-call overhead no longer dominates


class _Unsure(Exception):
    """A value this shortcut does not convert: the Arrow path decides."""


_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FLOAT32 = struct.Struct("<f")


def _micros(value: Any) -> int:
    if not isinstance(value, datetime) or value != value:  # value != value: NaT
        raise _Unsure
    v: Any = value
    if type(v) is not datetime:
        if type(v).__name__ != "Timestamp" or v.nanosecond:  # pandas.Timestamp only, and
            raise _Unsure  # without nanoseconds (Arrow refuses to drop them)
        v = v.to_pydatetime()
    return (v - (_EPOCH if v.tzinfo is None else _EPOCH_UTC)) // _MICROSECOND


def _integer(bits: int) -> Callable[[Any], Any]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1)

    def convert(v: Any) -> Any:
        if v is None or (type(v) is int and low <= v < high):
            return v
        raise _Unsure

    return convert


def _float64(v: Any) -> Any:
    if v is None or (type(v) is float and v == v):
        return v
    raise _Unsure


def _float32(v: Any) -> Any:
    if v is None:
        return v
    if type(v) is float and v == v:
        try:
            return _FLOAT32.unpack(_FLOAT32.pack(v))[0]
        except OverflowError:  # beyond float32: Arrow makes it infinite
            pass
    raise _Unsure


def _of_type(*types: type) -> Callable[[Any], Any]:
    def convert(v: Any) -> Any:
        if v is None or type(v) in types:
            return v
        raise _Unsure

    return convert


def _timestamp(v: Any) -> Any:
    return None if v is None else _micros(v)


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "Int32": _integer(32),
    "Int64": _integer(64),
    "Float32": _float32,
    "Float64": _float64,
    "String": _of_type(str),
    "Bytes": _of_type(bytes),
    "Bool": _of_type(bool),
    "UnixTimestamp": _timestamp,
}
_INT64 = _CONVERT["Int64"]


def _key(v: Any) -> Any:
    """A key without a declared type: kept as Arrow would infer it (int64, string, binary)."""
    return v if type(v) in (str, bytes) else _INT64(v)


def _converter(dtype: Any) -> Callable[[Any], Any]:
    if dtype is None:
        return _key
    if not isinstance(dtype, PrimitiveType) or dtype.name not in _CONVERT:
        raise _Unsure  # lists and the like: Arrow
    return _CONVERT[dtype.name]


def python_columns(data: Any) -> dict[str, list[Any]] | None:
    """``data`` as columns of Python values if it is a small dict of lists or pandas
    DataFrame, else ``None``."""
    if type(data) is dict:
        if all(type(v) is list for v in data.values()) and all(type(k) is str for k in data):
            return data
        return None
    if type(data).__name__ == "DataFrame" and type(data).__module__.startswith("pandas"):
        if len(data) > MAX_ROWS or data.columns.has_duplicates:
            return None
        values = data.to_numpy(dtype=object).T.tolist()  # the first step of push.as_table
        # as_table reads NaN and NaT in a DataFrame as nulls (pandas' missing values)
        columns = [[None if _missing(v) else v for v in col] for col in values]
        return dict(zip([str(c) for c in data.columns], columns, strict=True))
    return None


def _missing(v: Any) -> bool:
    return (type(v) is float and v != v) or type(v).__name__ == "NaTType"


def exact_rows(
    view: FeatureView, key_types: Mapping[str, Any], columns: Mapping[str, Sequence[Any]]
) -> list[StoredRow] | None:
    """The rows ``encode_rows(view, conform(table))`` would write, or ``None`` if unsure."""
    if isinstance(view, StreamFeatureView) and view.aggregations:
        return None
    created = view.batch_source.created_timestamp_column
    keys = sorted(view.join_keys)
    feats = [f.name for f in view.features]
    ts = view.timestamp_field
    allowed = {*keys, ts, *feats, *([created] if created else [])}
    lengths = {len(c) for c in columns.values()}
    if not columns.keys() <= allowed or len(lengths) != 1 or not 0 < min(lengths) <= MAX_ROWS:
        return None
    if not {*keys, ts, *feats} <= columns.keys():
        return None  # the Arrow path names what is missing
    try:
        key_convert = [_converter(key_types.get(k)) for k in keys]
        feat_convert = [_converter(f.dtype) for f in view.features]
        key_cols = [list(map(c, columns[k])) for c, k in zip(key_convert, keys, strict=True)]
        if any(v is None for col in key_cols for v in col):
            return None  # a null key is an error, worded by the Arrow path
        if any(len(set(map(type, col))) > 1 for col in key_cols):
            return None  # an undeclared key of mixed types (0 and ''): Arrow rejects it
        feat_cols = [list(map(c, columns[f])) for c, f in zip(feat_convert, feats, strict=True)]
        events = list(map(_micros, columns[ts]))
        stamps = columns.get(created) if created else None
        made = [0 if v is None else _micros(v) for v in stamps] if stamps else [0] * len(events)
        values = [
            encode_value(dict(zip(feats, row, strict=True))) for row in zip(*feat_cols, strict=True)
        ]
        if not feats:
            values = [encode_value({}) for _ in events]
        names = [entity_key(keys, row) for row in zip(*key_cols, strict=True)]
    except (_Unsure, TypeError, ValueError, OverflowError, UnicodeError):
        return None
    rows = list(map(StoredRow, names, events, made, values))
    return newest_per_key(rows)
