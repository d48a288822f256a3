"""The plain-Python write shortcut (``pitstop.engine.exact``) against the Arrow path.

For random small inputs, dicts of lists and pandas DataFrames, with values of the declared
types and of many others: whenever the shortcut encodes rows, the Arrow path (``as_table``,
``conform``, ``encode_rows``) accepts the same input and encodes the same rows, byte for byte;
and it does encode the common inputs, so the comparison is not empty.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitstop import Entity, FeatureView, Field, FileSource
from pitstop.engine.exact import exact_rows, python_columns
from pitstop.engine.push import as_table, conform
from pitstop.engine.write import encode_rows
from pitstop.errors import PitstopError
from pitstop.online.base import StoredRow
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

FEATURES = {
    "i32": Int32,
    "i64": Int64,
    "f32": Float32,
    "f64": Float64,
    "s": String,
    "b": Bytes,
    "flag": Bool,
    "when": UnixTimestamp,
    "many": Array(Int64),
}
user = Entity(name="user", join_keys=["user_id"])
shop = Entity(name="shop", join_keys=["shop_id"])


def view(features: list[str], entities: list[Entity], created: bool) -> FeatureView:
    source = FileSource(
        path="data/x.parquet",
        timestamp_field="ts",
        created_timestamp_column="created" if created else "",
    )
    return FeatureView(
        name="v",
        entities=entities,
        source=source,
        schema=[Field(name=f, dtype=FEATURES[f]) for f in features],
    )


def nanos(d: datetime, ns: int) -> pd.Timestamp:
    return pd.Timestamp(d) + pd.Timedelta(nanoseconds=ns)


EDGES = [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
naive = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
aware = st.builds(lambda d, z: d.replace(tzinfo=z), naive, st.sampled_from(ZONES))
stamps = st.one_of(
    naive,
    aware,
    st.builds(nanos, naive, st.sampled_from([0, 0, 1, 999])),
)
values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 16_777_217]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e39, -1e39, 3.4e38, 1.5, 2.0]),
    st.text(max_size=5),
    st.sampled_from(["7", "1.5", "2026-11-26T10:00:00Z", "2026-11-26 10:00:00", "x"]),
    st.binary(max_size=5),
    st.booleans(),
    stamps,
    st.builds(date, st.integers(1970, 2100), st.integers(1, 12), st.integers(1, 28)),
    st.lists(st.integers(-5, 5), max_size=2),  # a list or a dict where a scalar belongs
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-5, 5), max_size=2),
)


def typed(name: str) -> st.SearchStrategy[Any]:
    """Mostly values of the column's own type, sometimes anything."""
    own = {
        "i32": st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from(EDGES)),
        "i64": st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(EDGES)),
        "f32": st.floats(allow_nan=False, width=32),
        "f64": st.floats(allow_nan=False),
        "s": st.text(max_size=5),
        "b": st.binary(max_size=5),
        "flag": st.booleans(),
        "when": stamps,
        "ts": stamps,
        "created": stamps,
        "user_id": st.integers(-(2**63), 2**63 - 1),
        "shop_id": st.text(max_size=3),
        "many": st.lists(st.integers(-5, 5), max_size=2),
    }[name]
    return st.one_of(own, own, own, st.none(), values)


@st.composite
def cases(draw: st.DrawFn) -> tuple[FeatureView, dict[str, Any], Any]:
    features = draw(st.lists(st.sampled_from(list(FEATURES)), unique=True, max_size=4))
    entities = draw(st.sampled_from([[user], [user, shop]]))
    created = draw(st.booleans())
    v = view(features, entities, created)
    key_types = draw(st.sampled_from([{}, {"user_id": Int64}, {"user_id": Int32}]))
    names = [*v.join_keys, "ts", *features, *(["created"] if created else [])]
    if draw(st.booleans()) and len(names) > 2:  # a missing or an extra column
        names = names[1:] if draw(st.booleans()) else [*names, "extra"]
    n = draw(st.integers(1, 4))
    columns = {c: draw(st.lists(typed(c) if c != "extra" else values, min_size=n, max_size=n))
               for c in names}  # fmt: skip
    if draw(st.booleans()):
        return v, key_types, columns
    frame = pd.DataFrame({c: pd.Series(col, dtype=object) for c, col in columns.items()})
    if draw(st.booleans()):  # typed columns where pandas infers them
        frame = frame.infer_objects()
    return v, key_types, frame


def arrow_rows(v: FeatureView, key_types: dict[str, Any], data: Any) -> list[StoredRow]:
    table = conform(as_table(data, "test"), v, key_types, "test")
    created = v.batch_source.created_timestamp_column
    created = created if created and created in table.column_names else None
    return encode_rows(v, table, v.timestamp_field, created)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_shortcut_writes_what_the_arrow_path_writes(case: Any) -> None:
    v, key_types, data = case
    columns = python_columns(data)
    assert columns is not None
    fast = exact_rows(v, key_types, columns)
    if fast is None:
        return  # the Arrow path decides; nothing to compare
    try:
        reference = arrow_rows(v, key_types, data)
    except (PitstopError, pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        pytest.fail(f"the shortcut accepted what the Arrow path rejects ({exc!r}): {data!r}")
    assert fast == reference


NOW = datetime(2026, 11, 26, 10, 0, 0, 123456)


class OtherDatetime(datetime):
    pass


@pytest.mark.parametrize(
    "data",
    [
        {"user_id": [1], "ts": [NOW], "created": [NOW], "i64": [5], "f32": [0.1], "s": ["a"]},
        {"user_id": [1, 1], "ts": [NOW, NOW - timedelta(1)], "created": [None, NOW],
         "i64": [5, 6], "f32": [0.1, None], "s": ["a", "b"]},
        {"user_id": [2], "ts": [NOW.replace(tzinfo=UTC)], "created": [NOW], "i64": [5],
         "f32": [None], "s": ["é"]},
    ],
    ids=["one row", "older row second", "aware"],
)  # fmt: skip
@pytest.mark.parametrize("as_frame", [False, True], ids=["dict", "DataFrame"])
def test_common_pushes_take_the_shortcut(data: dict[str, list[Any]], as_frame: bool) -> None:
    v = view(["i64", "f32", "s"], [user], created=True)
    given_data: Any = pd.DataFrame(data) if as_frame else data
    columns = python_columns(given_data)
    assert columns is not None
    fast = exact_rows(v, {"user_id": Int64}, columns)
    assert fast is not None
    assert fast == arrow_rows(v, {"user_id": Int64}, given_data)
    assert len(fast) == len(set(data["user_id"]))


@pytest.mark.parametrize(
    "change",
    [
        {"i64": ["5"]},  # text for a number: Arrow parses it
        {"i64": [2.0]},  # a float for an integer
        {"f32": [float("nan")]},  # NaN in a dict (in a DataFrame: a null)
        {"ts": [pd.Timestamp(NOW) + pd.Timedelta(nanoseconds=1)]},  # Arrow refuses to truncate
        {"ts": ["2026-11-26T10:00:00Z"]},  # text for a timestamp
        {"ts": [OtherDatetime(2026, 11, 26)]},  # a datetime subclass pandas did not make
        {"user_id": [None]},  # a row without a key is dropped
        {"extra": [1]},  # a column the view does not read
        {"i64": [1, 2]},  # columns of unequal length
    ],
)
def test_values_that_need_a_conversion_take_the_arrow_path(change: dict[str, Any]) -> None:
    v = view(["i64", "f32", "s"], [user], created=False)
    data = {"user_id": [1], "ts": [NOW], "i64": [5], "f32": [0.1], "s": ["a"], **change}
    assert exact_rows(v, {"user_id": Int64}, data) is None


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize("feature", ["i32", "i64"])
def test_integer_limits_are_the_arrow_paths(feature: str, value: int) -> None:
    v = view([feature], [user], created=False)
    data = {"user_id": [1], "ts": [NOW], feature: [value]}
    fast = exact_rows(v, {}, data)
    try:
        reference = arrow_rows(v, {}, data)
    except PitstopError as exc:
        assert fast is None
        assert feature in str(exc) or "user_id" in str(exc)
    else:
        assert fast == reference


@pytest.mark.parametrize(
    ("change", "column"),
    [
        ({"user_id": [None]}, "user_id"),  # a row without a key
        ({"ts": [None]}, "ts"),  # a row without an event time
        ({"i64": [1.5]}, "i64"),  # a fraction for an integer
        ({"i64": ["seven"]}, "i64"),  # text that is no number
        ({"i64": [[1, 2]]}, "i64"),  # a list for a scalar
        ({"s": [{"a": 1}]}, "s"),  # a dict for a scalar
        ({"ts": ["not a time"]}, "ts"),
    ],
)
@pytest.mark.parametrize("as_frame", [False, True], ids=["dict", "DataFrame"])
def test_what_the_arrow_path_rejects_the_shortcut_leaves_to_it(
    change: dict[str, Any], column: str, as_frame: bool
) -> None:
    v = view(["i64", "f32", "s"], [user], created=False)
    data = {"user_id": [1], "ts": [NOW], "i64": [5], "f32": [0.1], "s": ["a"], **change}
    given_data: Any = pd.DataFrame({k: pd.Series(c, dtype=object) for k, c in data.items()})
    given_data = given_data if as_frame else data
    columns = python_columns(given_data)
    assert columns is not None
    assert exact_rows(v, {"user_id": Int64}, columns) is None
    with pytest.raises(PitstopError, match=rf"column '{column}' .*row 0"):
        arrow_rows(v, {"user_id": Int64}, given_data)


@pytest.mark.parametrize("as_frame", [False, True], ids=["dict", "DataFrame"])
def test_an_undeclared_key_of_mixed_types_is_left_to_the_arrow_path(as_frame: bool) -> None:
    v = view(["i64"], [user], created=False)
    data = {"user_id": [0, ""], "ts": [NOW, NOW], "i64": [1, 2]}
    given_data: Any = pd.DataFrame({k: pd.Series(c, dtype=object) for k, c in data.items()})
    columns = python_columns(given_data if as_frame else data)
    assert columns is not None
    assert exact_rows(v, {}, columns) is None
    with pytest.raises(PitstopError, match=r"column 'user_id' .*row 1"):
        arrow_rows(v, {}, given_data if as_frame else data)
