"""JSON at the wire: request fields checked and converted, responses in Feast's shapes.

Values leave the server as Feast's feature server writes them: numbers, strings, booleans and
lists as themselves, ``Bytes`` as base64 (protobuf's JSON form), ``UnixTimestamp`` values as
integer seconds since the epoch (Feast's ``unix_timestamp_val``), NaN and ±inf as ``null``
(JSON has no such numbers). Event timestamps are RFC 3339 UTC strings with ``Z``, fractional
seconds only when non-zero (3 or 6 digits), and ``"1970-01-01T00:00:00Z"`` where there is none
(entity key columns, on-demand outputs, keys not found) — exactly protobuf's ``Timestamp`` JSON.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pitstop.errors import RetrievalError
from pitstop.types import (
    Array,
    Bool,
    Bytes,
    Float32,
    Float64,
    Int32,
    Int64,
    String,
    UnixTimestamp,
)

EPOCH = "1970-01-01T00:00:00Z"
_gmtime = time.gmtime
_strftime = time.strftime


def iso(us: int | None) -> str:
    """Microseconds since the epoch as protobuf's Timestamp JSON string."""
    if us is None:
        return EPOCH
    secs, frac = divmod(us, 1_000_000)
    try:
        text = _strftime("%Y-%m-%dT%H:%M:%S", _gmtime(secs))
    except (OverflowError, OSError, ValueError):
        return EPOCH
    if frac:
        text += f".{frac // 1000:03d}" if frac % 1000 == 0 else f".{frac:06d}"
    return text + "Z"


def stamps(values: list[int | None], memo: dict[int | None, str]) -> list[str]:
    """:func:`iso` of each value; ``memo`` is shared by the columns of one response."""
    out = []
    for us in values:
        text = memo.get(us)
        if text is None:
            text = memo[us] = iso(us)
        out.append(text)
    return out


# --- feature values -------------------------------------------------------------------------


def _bytes(v: Any) -> Any:
    return base64.b64encode(v).decode() if isinstance(v, bytes | bytearray) else v


def _seconds(v: Any) -> Any:
    if type(v) is int:
        return v // 1_000_000
    if isinstance(v, datetime):
        return int((v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp())
    return v


_SCALAR: dict[Any, Callable[[Any], Any]] = {Bytes: _bytes, UnixTimestamp: _seconds}


def converter(dtype: Any) -> Callable[[list[Any]], list[Any]] | None:
    """How to turn a column of ``dtype`` into JSON-ready values (``None``: as it is)."""
    if isinstance(dtype, Array):
        inner = _SCALAR.get(dtype.base_type)
        if inner is None:
            return None
        return lambda col: [None if v is None else [inner(x) for x in v] for v in col]
    scalar = _SCALAR.get(dtype)
    if scalar is None:
        return None
    return lambda col: [scalar(v) for v in col]


def fallback(value: Any) -> Any:
    """orjson's ``default``: numpy scalars and anything else a function may return."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# --- request fields -------------------------------------------------------------------------

_JSON_TYPES: dict[Any, tuple[type, ...]] = {
    Int32: (int,), Int64: (int,), Float32: (int, float), Float64: (int, float),
    String: (str,), Bytes: (str,), Bool: (bool,), UnixTimestamp: (int, str),
}  # fmt: skip


def fits(value: Any, dtype: Any) -> bool:
    """Whether a JSON value can stand for a value of ``dtype`` (``None`` always can)."""
    if value is None:
        return True
    if isinstance(dtype, Array):
        return isinstance(value, list) and all(fits(v, dtype.base_type) for v in value)
    want = _JSON_TYPES.get(dtype)
    if want is None:
        return True
    if type(value) is bool:
        return dtype == Bool
    return isinstance(value, want)


def check_request_field(name: str, dtype: Any, values: list[Any]) -> None:
    for v in values:
        if not fits(v, dtype):
            raise RetrievalError(
                f"request field {name!r} is declared {dtype}, got {v!r} "
                f"({type(v).__name__}) in 'entities'"
            )


def field(body: dict[str, Any], name: str, kinds: type | tuple[type, ...], default: Any) -> Any:
    """``body[name]`` if it has the JSON type ``kinds`` (``default`` when absent)."""
    value = body.get(name, default)
    if value is default:
        return value
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        want = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in _tuple(kinds))
        raise RetrievalError(f"{name!r} must be {want}, got {_describe(value)}")
    return value


def required(body: dict[str, Any], name: str, kinds: type | tuple[type, ...]) -> Any:
    value = field(body, name, kinds, None)
    if value is None:
        raise RetrievalError(f"the request body needs {name!r}")
    return value


def columns(body: dict[str, Any], name: str) -> dict[str, list[Any]]:
    """``body[name]`` as a dict of equally long lists (``entities``, ``df``)."""
    value = required(body, name, dict)
    for key, col in value.items():
        if not isinstance(col, list):
            raise RetrievalError(
                f"{name}[{key!r}] must be a list of values (one per row), got {_describe(col)}"
            )
    return value


def string_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = field(body, name, list, None)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise RetrievalError(f"{name!r} must be a list of strings, got {_describe(value)}")
    return value


def timestamp(body: dict[str, Any], name: str) -> datetime:
    """An ISO 8601 string field (``2024-01-15T10:00:00Z``) as UTC; naive means UTC."""
    text = required(body, name, str)
    try:
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise RetrievalError(
            f"{name!r}: {text!r} is not an ISO 8601 timestamp such as 2024-01-15T10:00:00Z"
        ) from None


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}  # fmt: skip


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{_JSON_NAMES.get(type(value), type(value).__name__)} {text[:80]}"
