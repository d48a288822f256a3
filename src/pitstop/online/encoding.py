"""The online value encoding, version 1 — documented here, used by every online store.

All encodings are valid msgpack (https://msgpack.org): binary, self-describing, with fast
readers in every language. No Python-specific serialisation (pickle, marshal) is used.

**Entity keys** must be byte-for-byte canonical, so they use fixed-width forms: the key of an
entity is a msgpack array ``[name_1, value_1, name_2, value_2, ...]`` with the join key names
sorted; names and string values are written as ``str 32`` (``0xdb`` + 4-byte length + UTF-8),
integers of any width as ``int 64`` (``0xd3`` + 8 bytes, big-endian), bytes as ``bin 32``
(``0xc6`` + 4-byte length). So ``Int32`` 7 and ``Int64`` 7 are the same key, and ``"7"`` is not.

**Values.** A stored row's value is the version byte ``0x01`` followed by a msgpack map
``{feature_name: value}``: ``nil`` for null, int, float 64 (``Float32`` values are widened
exactly), bool, str, bin, and arrays for ``Array(T)``; ``UnixTimestamp`` values are integers of
microseconds since the Unix epoch (UTC). ``Map`` and ``Struct`` values are msgpack maps (key or
field name to value), ``Json`` values are their JSON text as str. Readers select features by
name, so rows written before a feature was added simply lack it (it reads as null).

**Timestamps** of rows (event and created time) are kept by the store as integers of
microseconds since the epoch.

Writers encode whole Arrow columns at once (:func:`encode_keys`, :func:`encode_values`); the
read path encodes one key at a time (:func:`entity_key`) — both produce the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgpack

from pitstop.errors import PitstopError, RetrievalError

if TYPE_CHECKING:
    import pyarrow as pa

VERSION = 1
_PREFIX = bytes([VERSION])
_packb = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb
_int64 = struct.Struct(">q").pack
_len32 = struct.Struct(">I").pack


@lru_cache(maxsize=4096)
def _str32(text: str) -> bytes:
    data = text.encode()
    return b"\xdb" + _len32(len(data)) + data


def _array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)


def _key_part(value: Any) -> bytes:
    t = type(value)
    if t is int:
        if not -(2**63) <= value < 2**63:
            raise RetrievalError(f"entity key value {value} does not fit in a 64-bit integer")
        return b"\xd3" + _int64(value)
    if t is str:
        data = value.encode()
        return b"\xdb" + _len32(len(data)) + data
    if t is bytes:
        return b"\xc6" + _len32(len(value)) + value
    if hasattr(value, "__index__") and t is not bool:  # numpy integers and the like
        return b"\xd3" + _int64(value.__index__())
    raise RetrievalError(
        f"entity key value {value!r} ({t.__name__}) is not supported; keys are integers, "
        "strings or bytes"
    )


def entity_key(names: Sequence[str], values: Sequence[Any]) -> bytes:
    """The canonical key of one entity; ``names`` must already be sorted."""
    parts = [_array_header(2 * len(names))]
    for name, value in zip(names, values, strict=True):
        parts.append(_str32(name))
        parts.append(_key_part(value))
    return b"".join(parts)


def encode_value(features: dict[str, Any]) -> bytes:
    """Encode one row's features (plain Python values)."""
    return _PREFIX + _packb(features)


def decode_value(data: bytes) -> dict[str, Any]:
    """Decode a stored value written by :func:`encode_value` or :func:`encode_values`.

    Bytes of another encoding version, or not a version-1 value at all (corrupt), raise a
    :class:`~pitstop.errors.PitstopError` saying which."""
    if not data or data[0] != VERSION:
        version = data[0] if data else None
        raise PitstopError(
            f"online value written with encoding version {version}; this pitstop reads version "
            f"{VERSION}. Re-materialize the view with this version of pitstop."
        )
    try:
        value = _unpackb(data[1:], raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        reason = str(exc) or type(exc).__name__
        raise PitstopError(
            f"online value is not valid version-{VERSION} msgpack ({reason})"
        ) from None
    if type(value) is not dict:
        raise PitstopError(
            f"online value is a msgpack {type(value).__name__}, not the map of features of "
            f"encoding version {VERSION}"
        )
    return value


# --- whole columns (write path) ------------------------------------------------------------


def _fixed(prefix: int, payload: Any, width: int) -> pa.Array:
    """Rows of ``prefix`` byte + ``width`` big-endian payload bytes, as a binary array."""
    import numpy as np
    import pyarrow as pa

    n = len(payload)
    out = np.empty((n, width + 1), dtype=np.uint8)
    out[:, 0] = prefix
    out[:, 1:] = payload.view(np.uint8).reshape(n, width)
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width + 1), n, [None, pa.py_buffer(out.tobytes())]
    )
    return fixed.cast(pa.binary())


def _sized(prefix: int, data: pa.Array) -> pa.Array:
    """``prefix`` + 4-byte length + the bytes of each (non-null) value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = data.cast(pa.binary())
    lengths = pc.binary_length(data).fill_null(0).to_numpy(zero_copy_only=False)
    header = _fixed(prefix, lengths.astype(">u4"), 4)
    return pc.binary_join_element_wise(header, data.fill_null(b""), b"")


def _encode_column(col: pa.Array, *, key: bool) -> pa.Array:
    """One column as msgpack-encoded binary values (nulls as ``nil``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_timestamp(t):
        col = col.cast(pa.timestamp("us", tz=t.tz)).cast(pa.int64())
        t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_integer(t):
        ints = col.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        enc = _fixed(0xD3, ints.astype(">i8"), 8)
    elif pa.types.is_floating(t) and not key:
        floats = col.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        enc = _fixed(0xCB, floats.astype(">f8"), 8)
    elif pa.types.is_boolean(t) and not key:
        enc = pc.if_else(col.fill_null(False), b"\xc3", b"\xc2")
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        enc = _sized(0xDB, col)
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        enc = _sized(0xC6, col)
    elif key:
        raise RetrievalError(f"entity key columns must be integers, strings or bytes, got {t}")
    else:  # lists, maps, structs and anything rare: one msgpack call per value
        return pa.array([_packb(v) for v in python_values(col)], pa.binary())
    if col.null_count:
        enc = pc.if_else(col.is_valid(), enc, b"\xc0")
    return enc


def python_values(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """``col``'s values as Python objects, with Arrow maps (at any depth) as dicts."""
    values = col.to_pylist()
    return _as_dicts(values, col.type) if _has_map(col.type) else values


def _has_map(t: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_map(t):
        return True
    return any(_has_map(t.field(i).type) for i in range(t.num_fields))


def _as_dicts(values: list[Any], t: pa.DataType) -> list[Any]:
    """Arrow's Python values of type ``t`` with its maps' key-value pairs made dicts."""
    import pyarrow as pa

    if pa.types.is_map(t):
        items = _as_dicts([v for pairs in values if pairs for _, v in pairs], t.item_type)
        out, it = [], iter(items)
        for pairs in values:
            out.append(None if pairs is None else {k: next(it) for k, _ in pairs})
        return out
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            name, ft = t.field(i).name, t.field(i).type
            if _has_map(ft):
                inner = _as_dicts([v[name] for v in values if v is not None], ft)
                for v, new in zip((v for v in values if v is not None), inner, strict=True):
                    v[name] = new
        return values
    if hasattr(t, "value_type") and not pa.types.is_dictionary(t):  # lists
        return [None if v is None else _as_dicts(v, t.value_type) for v in values]
    return values


def encode_keys(names: Sequence[str], columns: Sequence[pa.Array]) -> list[bytes]:
    """Canonical keys of many entities; ``names`` sorted, ``columns`` in the same order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts: list[Any] = [pa.scalar(_array_header(2 * len(names)), pa.binary())]
    for name, col in zip(names, columns, strict=True):
        parts.append(pa.scalar(_str32(name), pa.binary()))
        parts.append(_encode_column(col, key=True))
    return pc.binary_join_element_wise(*parts, b"").to_pylist()


def encode_values(names: Sequence[str], columns: Sequence[pa.Array]) -> list[bytes]:
    """Encoded values of many rows: ``{names[i]: columns[i][row]}`` each."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not names:
        n = len(columns[0]) if columns else 0
        return [_PREFIX + _map_header(0)] * n
    parts: list[Any] = [pa.scalar(_PREFIX + _map_header(len(names)), pa.binary())]
    for name, col in zip(names, columns, strict=True):
        parts.append(pa.scalar(_packb(name), pa.binary()))
        parts.append(_encode_column(col, key=False))
    return pc.binary_join_element_wise(*parts, b"").to_pylist()
