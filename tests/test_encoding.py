"""The online encoding: row-by-row and columnar encoders agree; keys are canonical."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pitstop.errors import PitstopError, RetrievalError
from pitstop.online.encoding import (
    decode_value,
    encode_keys,
    encode_value,
    encode_values,
    entity_key,
    python_values,
)

COLUMNS = {
    "i": pa.array([1, -(2**40), None], pa.int64()),
    "i32": pa.array([7, None, 3], pa.int32()),
    "f": pa.array([1.5, None, float("inf")], pa.float32()),
    "s": pa.array(["a", "", None]),
    "b": pa.array([True, None, False]),
    "by": pa.array([b"\x00}{", None, b""], pa.binary()),
    "l": pa.array([[1, None], None, []], pa.list_(pa.int64())),
}


def test_columnar_values_decode_like_row_values() -> None:
    names = list(COLUMNS)
    columnar = encode_values(names, list(COLUMNS.values()))
    rows = pa.table(COLUMNS).to_pylist()
    for encoded, row in zip(columnar, rows, strict=True):
        assert decode_value(encoded) == row
        assert decode_value(encode_value(row)) == row


def test_keys_are_byte_identical_and_canonical() -> None:
    ints = encode_keys(["a", "b"], [pa.array([7, 8], pa.int32()), pa.array(["x", "}"])])
    assert ints == [entity_key(["a", "b"], [7, "x"]), entity_key(["a", "b"], [8, "}"])]
    assert entity_key(["k"], [7]) == encode_keys(["k"], [pa.array([7], pa.int64())])[0]
    assert entity_key(["k"], [7]) != entity_key(["k"], ["7"])
    assert entity_key(["k"], [b"7"]) != entity_key(["k"], ["7"])


def test_unsupported_keys_and_versions_are_errors() -> None:
    with pytest.raises(RetrievalError, match=r"entity key value 1.5 \(float\) is not supported"):
        entity_key(["k"], [1.5])
    with pytest.raises(PitstopError, match="encoding version 9"):
        decode_value(b"\x09\x80")


MAP_CASES = [
    (
        pa.array(
            [[("a", "b")], None, [], [("x", "1"), ("y", "2")]], pa.map_(pa.string(), pa.string())
        ),
        [{"a": "b"}, None, {}, {"x": "1", "y": "2"}],
    ),
    (
        pa.array(
            [{"m": [("a", 1)], "n": 3}, None, {"m": None, "n": 1}],
            pa.struct([("m", pa.map_(pa.string(), pa.int64())), ("n", pa.int64())]),
        ),
        [{"m": {"a": 1}, "n": 3}, None, {"m": None, "n": 1}],
    ),
    (
        pa.array([[[("a", 1)], None], None], pa.list_(pa.map_(pa.string(), pa.int64()))),
        [[{"a": 1}, None], None],
    ),
    (
        pa.array([[("k", [("i", 1)])]], pa.map_(pa.string(), pa.map_(pa.string(), pa.int64()))),
        [{"k": {"i": 1}}],
    ),
    (pa.array([1, None, 3]), [1, None, 3]),
]


@pytest.mark.parametrize(("array", "expected"), MAP_CASES)
def test_python_values_turn_maps_into_dicts_at_any_depth(array: pa.Array, expected: list) -> None:
    # the same on every supported pyarrow (maps_as_pydicts exists only from pyarrow 20)
    assert python_values(array) == expected
    assert python_values(pa.chunked_array([array])) == expected
