"""pitstop.types: dtype names, legacy ValueType, and the one mapping to Arrow."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from pitstop.errors import DefinitionError
from pitstop.types import (
    Array,
    Bool,
    Bytes,
    ComplexType,
    Float32,
    Float64,
    Int32,
    Int64,
    Json,
    Map,
    PrimitiveType,
    String,
    Struct,
    UnixTimestamp,
    ValueType,
    can_hold,
    from_arrow,
    from_value_type,
    holds_timestamps,
    parse_dtype,
    to_arrow,
)

PRIMITIVES = [Int32, Int64, Float32, Float64, String, Bytes, Bool, UnixTimestamp]
ALL_TYPES = [*PRIMITIVES, *(Array(t) for t in PRIMITIVES)]


@pytest.mark.parametrize("dtype", ALL_TYPES, ids=str)
def test_parse_dtype_of_its_name(dtype: PrimitiveType | Array) -> None:
    assert parse_dtype(dtype.name) == dtype
    assert parse_dtype(dtype) is dtype


def test_parse_dtype_ignores_surrounding_space() -> None:
    assert parse_dtype("  Int64 ") == Int64


@pytest.mark.parametrize(
    ("value_type", "dtype"),
    [
        (ValueType.INT32, Int32),
        (ValueType.INT64, Int64),
        (ValueType.FLOAT, Float32),
        (ValueType.DOUBLE, Float64),
        (ValueType.STRING, String),
        (ValueType.BYTES, Bytes),
        (ValueType.BOOL, Bool),
        (ValueType.UNIX_TIMESTAMP, UnixTimestamp),
        (ValueType.INT64_LIST, Array(Int64)),
        (ValueType.STRING_LIST, Array(String)),
        (ValueType.FLOAT_LIST, Array(Float32)),
        (ValueType.UNIX_TIMESTAMP_LIST, Array(UnixTimestamp)),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_parse_dtype_of_value_type(value_type: ValueType, dtype: object) -> None:
    assert parse_dtype(value_type) == dtype
    assert from_value_type(value_type) == dtype


@pytest.mark.parametrize("value_type", [ValueType.UNKNOWN, ValueType.NULL])
def test_value_type_without_dtype_is_an_error_naming_the_owner(value_type: ValueType) -> None:
    with pytest.raises(DefinitionError, match=rf"Field 'x': ValueType\.{value_type.name} has no"):
        parse_dtype(value_type, what="Field 'x'")


@pytest.mark.parametrize("bad", ["Int65", "int64", "Array(Int65)", "Array(Array(Int64))", 5, None])
def test_unknown_dtype_lists_allowed_values(bad: object) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_dtype(bad, what="Field 'amount'")
    message = str(info.value)
    assert message.startswith(f"Field 'amount': unknown dtype {bad!r}")
    assert "allowed: Int32, Int64, Float32, Float64, String, Bytes, Bool, UnixTimestamp" in message
    assert "Array(<type>)" in message


def test_array_name_and_alias() -> None:
    assert str(Array(Int64)) == "Array(Int64)"
    assert repr(Array(String)) == "Array(String)"
    assert ComplexType is Array
    assert Array(Int64) == Array(Int64)
    assert Array(Int64) != Array(Int32)


def test_nested_array_is_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"nested arrays are not supported"):
        Array(Array(Int64))  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ALL_TYPES, ids=str)
def test_arrow_round_trip(dtype: PrimitiveType | Array) -> None:
    assert from_arrow(to_arrow(dtype)) == dtype


@pytest.mark.parametrize(
    ("dtype", "arrow_type"),
    [
        (Int32, pa.int32()),
        (Int64, pa.int64()),
        (Float32, pa.float32()),
        (Float64, pa.float64()),
        (String, pa.string()),
        (Bytes, pa.binary()),
        (Bool, pa.bool_()),
        (UnixTimestamp, pa.timestamp("us", tz="UTC")),
        (Array(Int64), pa.list_(pa.int64())),
        (Array(String), pa.list_(pa.string())),
    ],
    ids=lambda v: str(v),
)
def test_to_arrow(dtype: PrimitiveType | Array, arrow_type: pa.DataType) -> None:
    assert to_arrow(dtype) == arrow_type


@pytest.mark.parametrize(
    ("arrow_type", "dtype"),
    [
        (pa.int8(), Int32),
        (pa.int16(), Int32),
        (pa.uint64(), Int64),
        (pa.float16(), Float64),
        (pa.large_string(), String),
        (pa.large_binary(), Bytes),
        (pa.timestamp("ns"), UnixTimestamp),
        (pa.date32(), UnixTimestamp),
        (pa.dictionary(pa.int32(), pa.string()), String),
        (pa.large_list(pa.float32()), Array(Float32)),
    ],
    ids=str,
)
def test_from_arrow_widens_related_types(arrow_type: pa.DataType, dtype: object) -> None:
    assert from_arrow(arrow_type) == dtype


def test_from_arrow_rejects_nested_lists() -> None:
    with pytest.raises(DefinitionError, match=r"nested list type .* is not supported"):
        from_arrow(pa.list_(pa.list_(pa.int64())))


def test_from_arrow_rejects_types_without_dtype() -> None:
    with pytest.raises(DefinitionError, match=r"decimal128\(10, 2\) has no feature dtype"):
        from_arrow(pa.decimal128(10, 2))


# -- which stored columns a declared dtype can read ---------------------------------------------

HOLDS = [
    (Int32, pa.int8(), True),
    (Int32, pa.uint16(), True),
    (Int32, pa.int32(), True),
    (Int32, pa.int64(), False),  # narrowing
    (Int32, pa.uint32(), False),
    (Int32, pa.float32(), False),  # float -> integer
    (Int64, pa.int32(), True),
    (Int64, pa.uint32(), True),
    (Int64, pa.uint64(), False),
    (Int64, pa.float64(), False),
    (Int64, pa.string(), False),
    (Float32, pa.float64(), True),
    (Float64, pa.int64(), True),
    (Float64, pa.decimal128(10, 2), True),
    (Float64, pa.string(), False),
    (String, pa.string(), True),
    (String, pa.large_string(), True),
    (String, pa.dictionary(pa.int32(), pa.string()), True),
    (String, pa.int64(), False),
    (String, pa.binary(), False),
    (Bytes, pa.binary(), True),
    (Bytes, pa.string(), False),
    (Bool, pa.bool_(), True),
    (Bool, pa.int8(), False),
    (UnixTimestamp, pa.timestamp("ns"), True),
    (UnixTimestamp, pa.date32(), True),
    (UnixTimestamp, pa.int64(), False),
    (Array(Int64), pa.list_(pa.int16()), True),
    (Array(Int64), pa.large_list(pa.float64()), False),
    (Array(String), pa.string(), False),
    (Int64, pa.null(), True),  # an all-null column holds nothing that could not fit
    (Map, pa.map_(pa.string(), pa.string()), True),
    (Map, pa.string(), False),
    (Json, pa.string(), True),
    (Json, pa.int64(), False),
    (Struct({"a": Int64}), pa.struct([("a", pa.int32()), ("b", pa.string())]), True),
    (Struct({"a": Int64}), pa.struct([("a", pa.float64())]), False),
    (Struct({"a": Int64}), pa.struct([("b", pa.int64())]), False),
]


@pytest.mark.parametrize(("dtype", "arrow_type", "ok"), HOLDS)
def test_can_hold(dtype: Any, arrow_type: pa.DataType, ok: bool) -> None:
    assert can_hold(dtype, arrow_type) is ok


def test_holds_timestamps() -> None:
    fits = [pa.timestamp("us", "UTC"), pa.date32(), pa.string(), pa.timestamp("s")]
    assert all(holds_timestamps(t) for t in fits)
    assert not any(holds_timestamps(t) for t in [pa.int64(), pa.float64(), pa.bool_()])
