"""Feature value types, and their one mapping to Arrow.

``pitstop.types`` offers the names Feast users write (``Int64``, ``Float32``, ``Array(String)``…)
and the legacy :class:`ValueType` enum. Every conversion between these types and Arrow lives here.

Besides scalars and arrays: ``Map`` (string keys to string values, Arrow ``map<string,
string>``), ``Json`` (JSON text, Arrow ``string``) and ``Struct({"name": String, ...})`` (named,
typed fields, Arrow ``struct``).

>>> from pitstop.types import Array, Int64
>>> str(Array(Int64))
'Array(Int64)'
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Union

from pitstop.errors import DefinitionError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Array",
    "Bool",
    "Bytes",
    "ComplexType",
    "FeastType",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "Json",
    "Map",
    "PrimitiveType",
    "String",
    "Struct",
    "UnixTimestamp",
    "ValueType",
    "can_hold",
    "from_arrow",
    "from_value_type",
    "holds_timestamps",
    "parse_dtype",
    "to_arrow",
]


class ValueType(enum.Enum):
    """Legacy value types (Feast's numbering), accepted wherever a dtype is."""

    UNKNOWN = 0
    BYTES = 1
    STRING = 2
    INT32 = 3
    INT64 = 4
    DOUBLE = 5
    FLOAT = 6
    BOOL = 7
    UNIX_TIMESTAMP = 8
    BYTES_LIST = 11
    STRING_LIST = 12
    INT32_LIST = 13
    INT64_LIST = 14
    DOUBLE_LIST = 15
    FLOAT_LIST = 16
    BOOL_LIST = 17
    UNIX_TIMESTAMP_LIST = 18
    NULL = 19


@dataclass(frozen=True)
class PrimitiveType:
    """A scalar feature type such as ``Int64``."""

    name: str

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Array:
    """A list of values of one primitive type: ``Array(Int64)``."""

    base_type: PrimitiveType

    def __post_init__(self) -> None:
        if not isinstance(self.base_type, PrimitiveType):
            raise DefinitionError(
                f"Array({self.base_type!r}): the element type must be a primitive type such as "
                "Int64 or String; nested arrays are not supported"
            )

    @property
    def name(self) -> str:
        return f"Array({self.base_type.name})"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name


class Struct:
    """Named, typed fields: ``Struct({"name": String, "age": Int32})`` (Arrow ``struct``)."""

    __slots__ = ("fields",)
    fields: tuple[tuple[str, FeastType], ...]

    def __init__(self, fields: Mapping[str, Any]) -> None:
        if not isinstance(fields, Mapping) or not fields:
            raise DefinitionError(
                f"Struct({fields!r}): give the fields as a dict of names to types, "
                'e.g. Struct({"name": String, "age": Int32})'
            )
        items: list[tuple[str, FeastType]] = []
        for key, dtype in fields.items():
            if not isinstance(key, str) or not key:
                raise DefinitionError(f"Struct: field names must be non-empty strings, got {key!r}")
            items.append((key, parse_dtype(dtype, what=f"Struct field {key!r}")))
        object.__setattr__(self, "fields", tuple(items))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Struct types are immutable")

    @property
    def name(self) -> str:
        inner = ", ".join(f"{json.dumps(k)}: {t}" for k, t in self.fields)
        return f"Struct({{{inner}}})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Struct) and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name


ComplexType = Array
FeastType = Union[PrimitiveType, Array, Struct]  # noqa: UP007 - a runtime alias users may import

Int32 = PrimitiveType("Int32")
Int64 = PrimitiveType("Int64")
Float32 = PrimitiveType("Float32")
Float64 = PrimitiveType("Float64")
String = PrimitiveType("String")
Bytes = PrimitiveType("Bytes")
Bool = PrimitiveType("Bool")
UnixTimestamp = PrimitiveType("UnixTimestamp")
Map = PrimitiveType("Map")
Json = PrimitiveType("Json")

PRIMITIVES: dict[str, PrimitiveType] = {
    t.name: t
    for t in (Int32, Int64, Float32, Float64, String, Bytes, Bool, UnixTimestamp, Map, Json)
}

_SCALAR_VALUE_TYPES: dict[ValueType, PrimitiveType] = {
    ValueType.BYTES: Bytes,
    ValueType.STRING: String,
    ValueType.INT32: Int32,
    ValueType.INT64: Int64,
    ValueType.DOUBLE: Float64,
    ValueType.FLOAT: Float32,
    ValueType.BOOL: Bool,
    ValueType.UNIX_TIMESTAMP: UnixTimestamp,
}
_LIST_VALUE_TYPES: dict[ValueType, PrimitiveType] = {
    ValueType.BYTES_LIST: Bytes,
    ValueType.STRING_LIST: String,
    ValueType.INT32_LIST: Int32,
    ValueType.INT64_LIST: Int64,
    ValueType.DOUBLE_LIST: Float64,
    ValueType.FLOAT_LIST: Float32,
    ValueType.BOOL_LIST: Bool,
    ValueType.UNIX_TIMESTAMP_LIST: UnixTimestamp,
}


def from_value_type(value_type: ValueType) -> FeastType:
    """Map a legacy :class:`ValueType` to a dtype (``ValueType.INT64`` -> ``Int64``)."""
    if value_type in _SCALAR_VALUE_TYPES:
        return _SCALAR_VALUE_TYPES[value_type]
    if value_type in _LIST_VALUE_TYPES:
        return Array(_LIST_VALUE_TYPES[value_type])
    raise DefinitionError(f"ValueType.{value_type.name} has no feature dtype; use e.g. Int64")


def parse_dtype(value: object, *, what: str = "dtype") -> FeastType:
    """Accept a dtype, a :class:`ValueType` or a dtype name (``"Array(Int64)"``)."""
    if isinstance(value, PrimitiveType | Array | Struct):
        return value
    if isinstance(value, ValueType):
        try:
            return from_value_type(value)
        except DefinitionError as exc:
            raise DefinitionError(f"{what}: {exc}") from None
    if isinstance(value, str):
        try:
            return _parse_name(value.strip())
        except (DefinitionError, ValueError):
            pass
    allowed = ", ".join(PRIMITIVES) + ", Array(<type>), Struct({<name>: <type>, ...})"
    raise DefinitionError(f"{what}: unknown dtype {value!r}; allowed: {allowed}")


def _parse_name(text: str) -> FeastType:
    """The dtype written ``text`` (what ``str(dtype)`` gives); raises ValueError if none."""
    if text in PRIMITIVES:
        return PRIMITIVES[text]
    if text.startswith("Array(") and text.endswith(")"):
        inner = _parse_name(text[6:-1].strip())
        if not isinstance(inner, PrimitiveType):
            raise ValueError(text)
        return Array(inner)
    if text.startswith("Struct({") and text.endswith("})"):
        return Struct(_struct_fields(text[8:-2]))
    raise ValueError(text)


def _struct_fields(body: str) -> dict[str, FeastType]:
    """``"a": Int64, "b": Struct({...})`` -> fields, splitting on top-level commas only."""
    fields: dict[str, FeastType] = {}
    decoder = json.JSONDecoder()
    pos = 0
    while pos < len(body):
        while pos < len(body) and body[pos] in " ,":
            pos += 1
        if pos == len(body):
            break
        key, pos = decoder.raw_decode(body, pos)
        colon = body.index(":", pos)
        depth, end = 0, colon + 1
        while end < len(body) and not (depth == 0 and body[end] == ","):
            if body[end] == '"':
                end = decoder.raw_decode(body, end)[1]
                continue
            depth += body[end] in "({"
            depth -= body[end] in ")}"
            end += 1
        fields[str(key)] = _parse_name(body[colon + 1 : end].strip())
        pos = end
    return fields


@lru_cache(maxsize=1)
def _arrow_scalars() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "Int32": pa.int32(),
        "Int64": pa.int64(),
        "Float32": pa.float32(),
        "Float64": pa.float64(),
        "String": pa.string(),
        "Bytes": pa.binary(),
        "Bool": pa.bool_(),
        "UnixTimestamp": pa.timestamp("us", tz="UTC"),
        "Map": pa.map_(pa.string(), pa.string()),
        "Json": pa.string(),
    }


def to_arrow(dtype: FeastType) -> pa.DataType:
    """The Arrow type that stores values of ``dtype``."""
    import pyarrow as pa

    scalars = _arrow_scalars()
    if isinstance(dtype, Array):
        return pa.list_(scalars[dtype.base_type.name])
    if isinstance(dtype, Struct):
        return pa.struct([(key, to_arrow(t)) for key, t in dtype.fields])
    return scalars[dtype.name]


def from_arrow(arrow_type: Any) -> FeastType:
    """The dtype for an Arrow type (used to infer schemas from data)."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = from_arrow(t.value_type)
        if not isinstance(inner, PrimitiveType):
            raise DefinitionError(f"nested list type {arrow_type} is not supported")
        return Array(inner)
    if pa.types.is_map(t) and from_arrow(t.key_type) == String:
        return Map
    if pa.types.is_struct(t):
        return Struct({t.field(i).name: from_arrow(t.field(i).type) for i in range(t.num_fields)})
    checks: list[tuple[Any, PrimitiveType]] = [
        (pa.types.is_boolean, Bool),
        (lambda x: pa.types.is_integer(x) and x.bit_width <= 32, Int32),
        (pa.types.is_integer, Int64),
        (pa.types.is_float32, Float32),
        (pa.types.is_floating, Float64),
        (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x), String),
        (lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x), Bytes),
        (pa.types.is_timestamp, UnixTimestamp),
        (pa.types.is_date, UnixTimestamp),
    ]
    for check, dtype in checks:
        if check(t):
            return dtype
    raise DefinitionError(f"Arrow type {arrow_type} has no feature dtype")


# -- which stored columns a declared dtype can read --------------------------------------------
#
# A column can back a feature when every value it can hold keeps its meaning in the declared
# type. Integers widen (int8 -> Int32, int32/uint32 -> Int64) and become floats; floats never
# become integers (Float64 data declared Int64 is refused), but float64 data declared Float32 is
# accepted (precision, not meaning, is lost; pandas writes float64 by default). Only string
# columns back String, only binary ones Bytes, only booleans Bool. Timestamps and dates back
# UnixTimestamp. Dictionary columns count as their values; an all-null column backs any dtype.


@lru_cache(maxsize=1)
def _holders() -> dict[str, Callable[[pa.DataType], bool]]:
    import pyarrow as pa

    t = pa.types

    def integers(bits: int) -> Callable[[pa.DataType], bool]:
        return lambda x: (
            (t.is_signed_integer(x) and x.bit_width <= bits)
            or (t.is_unsigned_integer(x) and x.bit_width < bits)
        )

    def numbers(x: pa.DataType) -> bool:
        return bool(t.is_floating(x) or t.is_integer(x) or t.is_decimal(x))

    return {
        "Int32": integers(32),
        "Int64": integers(64),
        "Float32": numbers,
        "Float64": numbers,
        "String": lambda x: t.is_string(x) or t.is_large_string(x) or t.is_string_view(x),
        "Bytes": lambda x: any(
            f(x) for f in (t.is_binary, t.is_large_binary, t.is_fixed_size_binary, t.is_binary_view)
        ),
        "Bool": t.is_boolean,
        "UnixTimestamp": lambda x: t.is_timestamp(x) or t.is_date(x),
        "Map": t.is_map,
        "Json": lambda x: t.is_string(x) or t.is_large_string(x) or t.is_string_view(x),
    }


def can_hold(dtype: FeastType, arrow_type: pa.DataType) -> bool:
    """Whether a stored column of ``arrow_type`` can be read as features of ``dtype``.

    >>> import pyarrow as pa
    >>> can_hold(Int64, pa.int32()), can_hold(Int32, pa.float64()), can_hold(String, pa.int64())
    (True, False, False)
    """
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return True
    if isinstance(dtype, Array):
        lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list,
                 pa.types.is_list_view, pa.types.is_large_list_view)  # fmt: skip
        return any(f(t) for f in lists) and can_hold(dtype.base_type, t.value_type)
    if isinstance(dtype, Struct):
        if not pa.types.is_struct(t):
            return False
        stored = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        return all(k in stored and can_hold(v, stored[k]) for k, v in dtype.fields)
    return _holders()[dtype.name](t)


def holds_timestamps(arrow_type: pa.DataType) -> bool:
    """Whether a column of ``arrow_type`` can serve as an event or created timestamp:
    timestamps, dates, or text in ISO 8601 (parsed when read), by the offline engines' one
    rule (:func:`pitstop.offline.typemap.time_kind`); an all-null column too."""
    import pyarrow as pa

    from pitstop.offline.typemap import time_kind

    return time_kind(arrow_type) is not None or pa.types.is_null(arrow_type)
