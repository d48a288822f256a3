"""The definitions layer: Feast's keywords, defaults, validation messages, projections,
stream aggregation naming and JSON round trips."""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pitstop.definitions
from pitstop import (
    Aggregation,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    RequestSource,
    StreamFeatureView,
    ValueType,
    on_demand_feature_view,
)
from pitstop.definitions.base import Definition
from pitstop.definitions.feature_view import Projection
from pitstop.definitions.serde import from_spec, kind_of
from pitstop.definitions.stream import aggregation_fields, window_label
from pitstop.errors import DefinitionError
from pitstop.types import Array, Float32, Float64, Int64, String

E = re.escape
HOUR = timedelta(hours=1)


def user_source(**kwargs: Any) -> FileSource:
    return FileSource(
        path="data/user_features.parquet", timestamp_field="event_timestamp", **kwargs
    )


def txn_source() -> FileSource:
    return FileSource(path="data/transactions.parquet", timestamp_field="transaction_timestamp")


def push_source() -> PushSource:
    return PushSource(name="txn_push", batch_source=txn_source())


USER = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)


def user_view(**kwargs: Any) -> FeatureView:
    args: dict[str, Any] = {
        "name": "user_features",
        "entities": [USER],
        "ttl": timedelta(days=1),
        "schema": [
            Field(name="total_purchases", dtype=Int64),
            Field(name="avg_purchase_amount", dtype=Float32),
            Field(name="customer_segment", dtype=String),
        ],
        "source": user_source(),
    }
    args.update(kwargs)
    return FeatureView(**args)


def stream_view(
    schema: list[Field], aggregations: list[Aggregation], **kw: Any
) -> StreamFeatureView:
    return StreamFeatureView(
        name="txn_stream",
        entities=[USER],
        source=push_source(),
        schema=schema,
        aggregations=aggregations,
        **kw,
    )


def names(fields: tuple[Field, ...]) -> list[str]:
    return [f.name for f in fields]


# --- on-demand functions (module level, so their source text is retrievable) ----------------

REQUEST = RequestSource(name="txn_request", schema=[Field(name="amount", dtype=Float64)])


def ratio_pandas(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["amount_ratio"] = inputs["amount"] / inputs["avg_purchase_amount"]
    return out


def ratio_python(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {"amount_sqrt": [math.sqrt(v) for v in inputs["amount"]]}


def pandas_odfv() -> OnDemandFeatureView:
    return on_demand_feature_view(
        sources=[user_view(), REQUEST],
        schema=[Field(name="amount_ratio", dtype=Float64)],
    )(ratio_pandas)


def python_odfv() -> OnDemandFeatureView:
    return on_demand_feature_view(
        sources=[REQUEST],
        schema=[Field(name="amount_sqrt", dtype=Float64)],
        mode="python",
    )(ratio_python)


# --- Entity ------------------------------------------------------------------------------------


def test_entity_with_feast_keywords() -> None:
    e = Entity(
        name="user_id",
        join_keys=["user_id"],
        value_type=ValueType.INT64,
        description="Customer ID",
        tags={"team": "ml"},
        owner="ds@example.com",
    )
    assert (e.name, e.join_keys, e.join_key) == ("user_id", ("user_id",), "user_id")
    assert e.dtype == Int64
    assert (e.description, e.tags, e.owner) == ("Customer ID", {"team": "ml"}, "ds@example.com")


def test_entity_join_key_defaults_to_name() -> None:
    assert Entity(name="driver").join_keys == ("driver",)


def test_entity_legacy_join_key_and_single_string() -> None:
    assert Entity(name="user", join_key="user_id").join_keys == ("user_id",)
    assert Entity(name="user", join_keys="user_id").join_keys == ("user_id",)  # type: ignore[arg-type]


def test_entity_join_key_and_join_keys_conflict() -> None:
    with pytest.raises(DefinitionError, match=E("Entity 'user': give join_keys or the legacy")):
        Entity(name="user", join_key="a", join_keys=["b"])


def test_entity_duplicate_join_key() -> None:
    with pytest.raises(DefinitionError, match=E("Entity 'user': duplicate join key in ['a', 'a']")):
        Entity(name="user", join_keys=["a", "a"])


def test_entity_value_type_must_be_a_value_type() -> None:
    with pytest.raises(DefinitionError, match=E("Entity 'user': value_type must be a ValueType")):
        Entity(name="user", value_type=Int64)  # type: ignore[arg-type]


def test_entity_unknown_value_type_means_none() -> None:
    assert Entity(name="user", value_type=ValueType.UNKNOWN).value_type is None


# --- immutability ------------------------------------------------------------------------------


IMMUTABLE = {
    "entity": lambda: USER,
    "file_source": user_source,
    "push_source": push_source,
    "request_source": lambda: REQUEST,
    "field": lambda: Field(name="x", dtype=Int64),
    "feature_view": user_view,
    "projection": lambda: user_view()[["total_purchases"]].with_name("buyer"),
    "stream_feature_view": lambda: stream_view(schema=[], aggregations=[]),
    "on_demand_feature_view": pandas_odfv,
    "feature_service": lambda: FeatureService(name="svc", features=[user_view()]),
    "aggregation": lambda: Aggregation(column="a", function="sum", time_window=HOUR),
}


@pytest.mark.parametrize("make", IMMUTABLE.values(), ids=IMMUTABLE.keys())
def test_definitions_are_immutable(make: Any) -> None:
    obj = make()
    with pytest.raises(AttributeError, match=E(f"{obj.name!r} is immutable; build a new one")):
        obj.name = "other"
    with pytest.raises(AttributeError, match=E("instead of setting 'description'")):
        obj.description = "changed"
    with pytest.raises(AttributeError, match=E("instead of deleting 'name'")):
        del obj.name
    assert obj.name == make().name


def test_immutable_message_names_the_class() -> None:
    view = user_view()
    with pytest.raises(AttributeError, match=E("FeatureView 'user_features' is immutable")):
        view.ttl = None


# --- names and tags ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", None, 7])
def test_missing_name(bad: Any) -> None:
    with pytest.raises(
        DefinitionError, match=E(f"Entity: a name is required (a non-empty string), got {bad!r}")
    ):
        Entity(name=bad)


@pytest.mark.parametrize("bad", ["has space", "-leading", ".hidden", "semi;colon", "ünï"])
def test_bad_names(bad: str) -> None:
    with pytest.raises(DefinitionError, match=E(f"FeatureView {bad!r}: names may use letters")):
        user_view(name=bad)
    with pytest.raises(DefinitionError, match=E(f"Field {bad!r}: names may use letters")):
        Field(name=bad, dtype=Int64)


def test_good_names() -> None:
    for ok in ("a", "user_features", "v1.2", "my-view", "_private", "9lives"):
        assert user_view(name=ok).name == ok


def test_tags_must_be_a_dict() -> None:
    with pytest.raises(
        DefinitionError,
        match=E("FeatureView 'user_features': tags must be a dict of strings, got list"),
    ):
        user_view(tags=["team"])


def test_tag_values_must_be_strings() -> None:
    with pytest.raises(
        DefinitionError, match=E("Entity 'u': tag 'priority': 1 must map a string to a string")
    ):
        Entity(name="u", tags={"priority": 1})  # type: ignore[dict-item]


def test_description_must_be_text() -> None:
    with pytest.raises(
        DefinitionError, match=E("FileSource 'src': description must be a string, got int")
    ):
        FileSource(name="src", path="data/a.parquet", description=3)  # type: ignore[arg-type]


# --- Field and the legacy Feature ----------------------------------------------------------------


def test_field_accepts_dtype_value_type_and_name() -> None:
    assert Field(name="a", dtype=Int64).dtype == Int64
    assert Field(name="a", dtype=ValueType.FLOAT).dtype == Float32
    assert Field(name="a", dtype="Array(String)").dtype == Array(String)


def test_field_unknown_dtype_names_the_field() -> None:
    with pytest.raises(
        DefinitionError, match=E("Field 'amount': unknown dtype 'Decimal'; allowed: Int32")
    ):
        Field(name="amount", dtype="Decimal")


def test_legacy_feature_in_schema_becomes_a_field() -> None:
    view = user_view(schema=[Feature("total_purchases", dtype=ValueType.INT64)])
    (feature,) = view.features
    assert type(feature) is Field
    assert (feature.name, feature.dtype) == ("total_purchases", Int64)


def test_legacy_features_keyword() -> None:
    view = FeatureView(
        name="legacy",
        entities=["user_id"],
        source=user_source(),
        features=[Feature("n", ValueType.INT64), Feature("tags", ValueType.STRING_LIST)],
    )
    assert [(f.name, f.dtype) for f in view.features] == [("n", Int64), ("tags", Array(String))]


def test_schema_and_features_together_is_an_error() -> None:
    with pytest.raises(
        DefinitionError, match=E("FeatureView 'v': give schema or the legacy features, not both")
    ):
        FeatureView(
            name="v",
            source=user_source(),
            schema=[Field(name="a", dtype=Int64)],
            features=[Feature("b", ValueType.INT64)],
        )


def test_schema_must_be_a_list_of_fields() -> None:
    with pytest.raises(
        DefinitionError,
        match=E(
            "FeatureView 'user_features': schema entries must be "
            "Field(name=..., dtype=...), got 'a'"
        ),
    ):
        user_view(schema=["a"])
    with pytest.raises(DefinitionError, match=E("schema must be a list of Field")):
        user_view(schema=Field(name="a", dtype=Int64))


# --- FileSource, PushSource, RequestSource -------------------------------------------------------


def test_file_source_with_feast_keywords() -> None:
    src = FileSource(
        name="users",
        path="data/user_features.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        field_mapping={"uid": "user_id"},
        description="users",
        tags={"t": "v"},
        owner="me",
    )
    assert (src.name, src.timestamp_field, src.created_timestamp_column) == (
        "users",
        "event_timestamp",
        "created_timestamp",
    )
    assert src.field_mapping == {"uid": "user_id"}


def test_file_source_name_defaults_to_the_file_stem() -> None:
    # README: "A FileSource without a name is called <file stem>_source"
    assert user_source().name == "user_features_source"
    assert FileSource(path=Path("s3://bucket/events/")).name == "events_source"
    assert FileSource(path="data/my file.v2.parquet").name == "my_file_source"


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("data/a.parquet", "parquet"),
        ("data/a.csv", "csv"),
        ("data/A.CSV", "csv"),
        ("s3://bucket/a.csv", "csv"),
        ("data/partitioned/", "parquet"),
    ],
)
def test_file_format_is_inferred_from_the_suffix(path: str, fmt: str) -> None:
    assert FileSource(path=path).file_format == fmt


def test_file_format_accepts_feast_format_objects() -> None:
    class ParquetFormat:  # what `from feast.data_format import ParquetFormat` gives
        pass

    assert FileSource(path="data/a.csv", file_format=ParquetFormat()).file_format == "parquet"
    assert FileSource(path="data/a", file_format="CSV").file_format == "csv"


def test_unsupported_file_format_lists_allowed() -> None:
    with pytest.raises(
        DefinitionError,
        match=E(
            "FileSource 'a_source': file_format 'json' is not supported; allowed: parquet, csv"
        ),
    ):
        FileSource(path="data/a.json", file_format="json")


def test_file_source_requires_a_path() -> None:
    with pytest.raises(
        DefinitionError, match=E("FileSource 'x': path must be a file path, got ''")
    ):
        FileSource(name="x", path="")


def test_legacy_event_timestamp_column_becomes_timestamp_field() -> None:
    src = FileSource(path="data/a.parquet", event_timestamp_column="ts")
    assert src.timestamp_field == "ts"
    assert "event_timestamp_column" not in src.to_spec()
    same = FileSource(path="data/a.parquet", timestamp_field="ts", event_timestamp_column="ts")
    assert same == src


def test_conflicting_timestamp_keywords_are_an_error() -> None:
    with pytest.raises(DefinitionError) as info:
        FileSource(path="data/a.parquet", timestamp_field="ts", event_timestamp_column="event_ts")
    message = str(info.value)
    assert "FileSource 'a_source'" in message
    assert "timestamp_field='ts'" in message
    assert "event_timestamp_column='event_ts' disagree; give only timestamp_field" in message


def test_relative_paths_resolve_against_the_repo_root(tmp_path: Path) -> None:
    assert user_source().resolve_path(tmp_path) == str(tmp_path / "data/user_features.parquet")
    assert FileSource(path="/abs/a.parquet").resolve_path(tmp_path) == "/abs/a.parquet"
    assert FileSource(path="s3://b/a.parquet").resolve_path(tmp_path) == "s3://b/a.parquet"


def test_push_source_reads_through_to_its_batch_source() -> None:
    ps = push_source()
    assert ps.batch_source == txn_source()
    assert ps.timestamp_field == "transaction_timestamp"


def test_push_source_needs_a_file_batch_source() -> None:
    with pytest.raises(
        DefinitionError, match=E("PushSource 'p': batch_source must be a FileSource, got Entity")
    ):
        PushSource(name="p", batch_source=USER)  # type: ignore[arg-type]


def test_request_source_schema() -> None:
    assert names(REQUEST.schema) == ["amount"]
    with pytest.raises(
        DefinitionError, match=E("RequestSource 'r': schema must list at least one Field")
    ):
        RequestSource(name="r", schema=[])
    with pytest.raises(DefinitionError, match=E("RequestSource 'r': duplicate field name 'a'")):
        RequestSource(name="r", schema=[Field(name="a", dtype=Int64), Field(name="a", dtype=Int64)])


# --- FeatureView -------------------------------------------------------------------------------


def test_feature_view_with_feast_keywords() -> None:
    view = FeatureView(
        name="user_features",
        entities=[USER],
        ttl=timedelta(days=1),
        schema=[Field(name="total_purchases", dtype=Int64)],
        online=True,
        offline=True,
        source=user_source(),
        description="d",
        tags={"team": "ml-platform"},
        owner="o",
    )
    assert (view.entities, view.join_keys) == (("user",), ("user_id",))
    assert view.ttl == timedelta(days=1)
    assert (view.online, view.offline) == (True, True)
    assert view.timestamp_field == "event_timestamp"
    assert view.batch_source == user_source()


def test_feature_view_defaults() -> None:
    view = FeatureView(name="v", source=user_source())
    assert view.entities == view.join_keys == ()
    assert view.features == ()
    assert view.ttl == timedelta(0)
    assert (view.online, view.offline) == (True, False)
    assert view.projection == Projection(name="v")


def test_entities_as_names_or_objects() -> None:
    by_name = user_view(entities=["user"])
    by_object = user_view(entities=[USER])
    single = user_view(entities=USER)
    assert by_name.entities == by_object.entities == single.entities == ("user",)
    assert by_name.join_keys == ("user",)  # a bare name is its own join key until resolved
    assert by_object.join_keys == single.join_keys == ("user_id",)


def test_entities_must_be_entities_or_names() -> None:
    with pytest.raises(
        DefinitionError,
        match=E("FeatureView 'user_features': entities must be Entity objects or names, got 3"),
    ):
        user_view(entities=[3])
    with pytest.raises(
        DefinitionError, match=E("FeatureView 'user_features': duplicate entity name 'user'")
    ):
        user_view(entities=[USER, "user"])


def test_schema_fields_named_like_a_join_key_are_entity_columns() -> None:
    view = user_view(schema=[Field(name="user_id", dtype=Int64), Field(name="n", dtype=Int64)])
    assert names(view.entity_columns) == ["user_id"]
    assert names(view.features) == ["n"]
    assert names(view.schema) == ["user_id", "n"]


def test_resolve_entities_uses_the_registered_join_key() -> None:
    view = user_view(
        entities=["user"], schema=[Field(name="user_id", dtype=Int64), Field(name="n", dtype=Int64)]
    )
    assert names(view.features) == ["user_id", "n"]  # unresolved: 'user' is the key
    resolved = view.resolve_entities({"user": USER})
    assert resolved.join_keys == ("user_id",)
    assert names(resolved.features) == ["n"]
    assert names(resolved.entity_columns) == ["user_id"]
    assert view.join_keys == ("user",)  # the original is unchanged
    assert resolved.resolve_entities({"user": USER}) is resolved


def test_resolve_entities_unknown_entity_suggests() -> None:
    view = user_view(entities=["usr"])
    with pytest.raises(DefinitionError) as info:
        view.resolve_entities({"user": USER})
    message = str(info.value)
    assert "FeatureView 'user_features' uses entity 'usr', which is not defined." in message
    assert "Did you mean 'user'?" in message
    assert "Define it with Entity(name='usr')" in message


def test_duplicate_field_names() -> None:
    with pytest.raises(
        DefinitionError,
        match=E("FeatureView 'user_features': duplicate field name 'a'; names must be unique"),
    ):
        user_view(schema=[Field(name="a", dtype=Int64), Field(name="a", dtype=Float32)])


def test_negative_ttl() -> None:
    with pytest.raises(
        DefinitionError,
        match=E("FeatureView 'user_features': ttl must not be negative, got -1 day"),
    ):
        user_view(ttl=timedelta(days=-1))


def test_ttl_forms() -> None:
    assert user_view(ttl=None).ttl is None
    assert user_view(ttl=3600).ttl == HOUR
    with pytest.raises(
        DefinitionError, match=E("FeatureView 'user_features': ttl must be a timedelta, got str")
    ):
        user_view(ttl="1h")


def test_request_source_cannot_back_a_feature_view() -> None:
    with pytest.raises(DefinitionError) as info:
        user_view(source=REQUEST)
    message = str(info.value)
    assert "FeatureView 'user_features': a RequestSource holds request data" in message
    assert "use it in an @on_demand_feature_view" in message


def test_feature_view_source_must_be_a_source() -> None:
    with pytest.raises(
        DefinitionError,
        match=E(
            "FeatureView 'user_features': source must be a FileSource or PushSource, "
            "got Entity(name='user')"
        ),
    ):
        user_view(source=USER)


def test_feature_view_over_a_push_source() -> None:
    view = user_view(source=push_source())
    assert view.batch_source == txn_source()
    assert view.timestamp_field == "transaction_timestamp"


# --- projections -------------------------------------------------------------------------------


def test_selection() -> None:
    view = user_view()
    sub = view[["customer_segment", "total_purchases"]]
    assert names(sub.projected_features) == ["customer_segment", "total_purchases"]
    assert sub.projection == Projection(
        name="user_features", features=("customer_segment", "total_purchases")
    )
    assert names(view["total_purchases"].projected_features) == ["total_purchases"]


def test_selection_of_unknown_feature_suggests_the_close_name() -> None:
    with pytest.raises(
        DefinitionError,
        match=E(
            "FeatureView 'user_features' has no feature 'total_purchase'. "
            "Did you mean 'total_purchases'"
        ),
    ):
        user_view()[["total_purchase"]]


def test_with_name() -> None:
    buyer = user_view().with_name("buyer")
    assert buyer.projection.name_to_use == "buyer"
    assert buyer.name == "user_features"
    with pytest.raises(
        DefinitionError, match=E("FeatureView 'user_features'.with_name 'bad name': names may use")
    ):
        user_view().with_name("bad name")


def test_with_join_key_map() -> None:
    remapped = user_view().with_join_key_map({"user_id": "buyer_id"})
    assert dict(remapped.projection.join_key_map) == {"user_id": "buyer_id"}


def test_with_join_key_map_unknown_key() -> None:
    with pytest.raises(DefinitionError) as info:
        user_view().with_join_key_map({"user": "buyer_id"})
    message = str(info.value)
    assert "FeatureView 'user_features'.with_join_key_map: 'user' is not a join key" in message
    assert "join keys: ['user_id']" in message


def test_projections_compose_and_do_not_mutate_the_original() -> None:
    view = user_view()
    before = view.to_spec()
    projected = view[["total_purchases"]].with_name("buyer").with_join_key_map({"user_id": "b"})
    assert projected.projection == Projection(
        name="user_features",
        alias="buyer",
        features=("total_purchases",),
        join_key_map={"user_id": "b"},
    )
    assert view.projection == Projection(name="user_features")
    assert names(view.projected_features) == names(view.features)
    assert view.to_spec() == before
    assert projected is not view


# --- Aggregation and StreamFeatureView --------------------------------------------------------


def test_aggregation_with_feast_arguments() -> None:
    agg = Aggregation(
        column="amount", function="sum", time_window=HOUR, slide_interval=timedelta(minutes=5)
    )
    assert (agg.column, agg.function, agg.time_window) == ("amount", "sum", HOUR)
    assert agg.slide_interval == timedelta(minutes=5)
    assert Aggregation("amount", "max", HOUR) == Aggregation(
        column="amount", function="max", time_window=HOUR
    )


@pytest.mark.parametrize("function", ["median", "SUM", "", "stddev"])
def test_unsupported_aggregation_function_lists_allowed(function: str) -> None:
    with pytest.raises(DefinitionError) as info:
        Aggregation(column="amount", function=function, time_window=HOUR)
    message = str(info.value)
    assert f"function {function!r} is not supported" in message
    assert "'amount'" in message
    assert "allowed: count, sum, mean, avg, min, max, count_distinct, last" in message


@pytest.mark.parametrize("window", [timedelta(0), timedelta(hours=-1), None, 3600])
def test_time_window_must_be_positive(window: Any) -> None:
    with pytest.raises(
        DefinitionError,
        match=E("Aggregation('sum' of 'amount'): time_window must be a positive timedelta"),
    ):
        Aggregation(column="amount", function="sum", time_window=window)


def test_slide_interval_longer_than_window() -> None:
    with pytest.raises(
        DefinitionError,
        match=E("slide_interval must be a positive timedelta no longer than time_window"),
    ):
        Aggregation(column="a", function="sum", time_window=HOUR, slide_interval=timedelta(hours=2))
    with pytest.raises(DefinitionError, match=E("slide_interval must be a positive")):
        Aggregation(column="a", function="sum", time_window=HOUR, slide_interval=timedelta(0))
    assert (
        Aggregation(
            column="a", function="sum", time_window=HOUR, slide_interval=HOUR
        ).slide_interval
        == HOUR
    )


def test_aggregation_needs_a_column() -> None:
    with pytest.raises(DefinitionError, match=E("Aggregation('sum' of ''): column is required")):
        Aggregation(function="sum", time_window=HOUR)


@pytest.mark.parametrize(
    ("function", "column", "window", "expected"),
    [
        ("sum", "amount", HOUR, "sum_amount_1h"),
        ("count", "x", timedelta(minutes=30), "count_x_30m"),
        ("max", "y", timedelta(days=7), "max_y_7d"),
        ("mean", "z", timedelta(seconds=90), "mean_z_90s"),
        ("min", "w", timedelta(hours=36), "min_w_36h"),
    ],
)
def test_default_aggregation_names(
    function: str, column: str, window: timedelta, expected: str
) -> None:
    assert Aggregation(column=column, function=function, time_window=window).output_name == expected


def test_window_labels() -> None:
    assert [window_label(timedelta(seconds=s)) for s in (1, 60, 3600, 86400, 90000)] == [
        "1s",
        "1m",
        "1h",
        "1d",
        "25h",
    ]


def test_explicit_aggregation_name_wins() -> None:
    view = stream_view(
        schema=[],
        aggregations=[
            Aggregation(column="amount", function="count", time_window=HOUR, name="n_1h")
        ],
    )
    assert [(f.name, f.dtype) for f in view.features] == [("n_1h", Int64)]


def test_schema_fields_name_aggregations_in_order_when_counts_match() -> None:
    view = stream_view(
        schema=[
            Field(name="transaction_count_1h", dtype=Int64),
            Field(name="total_amount_1h", dtype=Float32),
        ],
        aggregations=[
            Aggregation(column="amount", function="count", time_window=HOUR),
            Aggregation(column="amount", function="sum", time_window=HOUR),
        ],
    )
    assert [(f.name, f.dtype) for f in view.features] == [
        ("transaction_count_1h", Int64),
        ("total_amount_1h", Float32),
    ]


def test_default_names_when_counts_differ() -> None:
    view = stream_view(
        schema=[Field(name="amount", dtype=Float32)],
        aggregations=[
            Aggregation(column="amount", function="sum", time_window=HOUR),
            Aggregation(column="amount", function="count", time_window=timedelta(minutes=30)),
            Aggregation(column="amount", function="max", time_window=timedelta(days=7)),
        ],
    )
    assert [(f.name, f.dtype) for f in view.features] == [
        ("sum_amount_1h", Float64),
        ("count_amount_30m", Int64),
        ("max_amount_7d", Float32),  # max keeps the declared dtype of its column
    ]


def test_mixed_explicit_and_positional_names() -> None:
    schema = [Field(name="cnt", dtype=Int64), Field(name="total", dtype=Float32)]
    aggs = [
        Aggregation(column="amount", function="count", time_window=HOUR, name="cnt"),
        Aggregation(column="amount", function="sum", time_window=HOUR),
    ]
    assert [(f.name, f.dtype) for f in aggregation_fields(aggs, schema)] == [
        ("cnt", Int64),
        ("total", Float32),
    ]


def test_last_of_a_string_column_keeps_its_dtype() -> None:
    aggs = [
        Aggregation(column="segment", function="last", time_window=HOUR),
        Aggregation(column="segment", function="count_distinct", time_window=HOUR),
    ]
    fields = aggregation_fields(
        aggs,
        [
            Field(name="segment", dtype=String),
            Field(name="x", dtype=Int64),
            Field(name="y", dtype=Int64),
        ],
    )
    assert [(f.name, f.dtype) for f in fields] == [
        ("last_segment_1h", String),
        ("count_distinct_segment_1h", Int64),
    ]


def test_duplicate_aggregation_outputs_are_an_error() -> None:
    with pytest.raises(
        DefinitionError,
        match=E("StreamFeatureView 'txn_stream': duplicate field name 'sum_amount_1h'"),
    ):
        stream_view(
            schema=[],
            aggregations=[
                Aggregation(column="amount", function="sum", time_window=HOUR),
                Aggregation(column="amount", function="sum", time_window=timedelta(minutes=60)),
            ],
        )


def test_stream_view_join_key_columns_are_not_aggregation_outputs() -> None:
    view = stream_view(
        schema=[Field(name="user_id", dtype=Int64), Field(name="n", dtype=Int64)],
        aggregations=[Aggregation(column="amount", function="count", time_window=HOUR)],
    )
    assert names(view.entity_columns) == ["user_id"]
    assert names(view.features) == ["n"]


def test_stream_view_timestamp_field_defaults_to_the_batch_source() -> None:
    view = stream_view(schema=[], aggregations=[])
    assert view.timestamp_field == "transaction_timestamp"
    explicit = stream_view(schema=[], aggregations=[], timestamp_field="event_ts")
    assert explicit.timestamp_field == "event_ts"


def test_stream_view_without_aggregations_is_a_plain_view() -> None:
    view = stream_view(schema=[Field(name="amount", dtype=Float32)], aggregations=[])
    assert names(view.features) == ["amount"]
    assert view.aggregations == ()


def test_stream_view_rejects_a_file_source() -> None:
    with pytest.raises(DefinitionError) as info:
        StreamFeatureView(name="s", entities=[USER], source=txn_source())
    message = str(info.value)
    assert "StreamFeatureView 's': source must be a PushSource" in message
    assert "got FileSource" in message


def test_stream_view_rejects_udf_and_non_aggregations() -> None:
    with pytest.raises(
        DefinitionError,
        match=E(
            "StreamFeatureView 'txn_stream': stream transformations (udf) are not supported yet"
        ),
    ):
        stream_view(schema=[], aggregations=[], udf=len)
    with pytest.raises(
        DefinitionError,
        match=E("StreamFeatureView 'txn_stream': aggregations must be Aggregation objects"),
    ):
        stream_view(schema=[], aggregations=[("amount", "sum")])  # type: ignore[list-item]


def test_stream_view_resolve_entities_recomputes_outputs() -> None:
    view = StreamFeatureView(
        name="s",
        entities=["user"],
        source=push_source(),
        schema=[Field(name="user_id", dtype=Int64), Field(name="n", dtype=Int64)],
        aggregations=[Aggregation(column="amount", function="count", time_window=HOUR)],
    )
    assert names(view.features) == ["count_amount_1h"]  # 2 fields, 1 aggregation
    resolved = view.resolve_entities({"user": USER})
    assert isinstance(resolved, StreamFeatureView)
    assert names(resolved.features) == ["n"]  # 'user_id' is now a key: 1 field, 1 aggregation


# --- OnDemandFeatureView -----------------------------------------------------------------------


def test_on_demand_view_from_the_decorator() -> None:
    view = pandas_odfv()
    assert isinstance(view, OnDemandFeatureView)
    assert view.name == "ratio_pandas"
    assert view.mode == "pandas"
    assert view.sources == (Projection(name="user_features"),)
    assert view.request_sources == (REQUEST,)
    assert names(view.features) == ["amount_ratio"]


def test_on_demand_view_keeps_projections_and_stream_views_as_sources() -> None:
    stream = stream_view(
        schema=[], aggregations=[Aggregation(column="a", function="sum", time_window=HOUR)]
    )
    view = on_demand_feature_view(
        sources=[user_view()[["total_purchases"]].with_name("u"), stream, REQUEST],
        schema=[Field(name="amount_sqrt", dtype=Float64)],
        mode="python",
    )(ratio_python)
    assert view.sources == (
        Projection(name="user_features", alias="u", features=("total_purchases",)),
        Projection(name="txn_stream"),
    )


@pytest.mark.parametrize("bad", [USER, user_source()], ids=["entity", "file_source"])
def test_on_demand_sources_must_be_views_or_request_sources(bad: Definition) -> None:
    with pytest.raises(DefinitionError) as info:
        on_demand_feature_view(sources=[bad], schema=[Field(name="x", dtype=Int64)])(ratio_python)
    message = str(info.value)
    assert (
        f"OnDemandFeatureView 'ratio_python': source {bad!r} is not a feature view "
        "or a RequestSource" in message
    )
    assert "FeatureView/StreamFeatureView" in message


def test_on_demand_sources_must_not_be_empty() -> None:
    with pytest.raises(
        DefinitionError,
        match=E("OnDemandFeatureView 'ratio_python': sources must be a non-empty list"),
    ):
        on_demand_feature_view(sources=[], schema=[Field(name="x", dtype=Int64)])(ratio_python)


def test_on_demand_mode_schema_and_udf_are_checked() -> None:
    with pytest.raises(
        DefinitionError,
        match=E(
            "OnDemandFeatureView 'ratio_python': mode 'spark' is not supported; "
            "allowed: pandas, python"
        ),
    ):
        on_demand_feature_view(
            sources=[REQUEST], schema=[Field(name="x", dtype=Int64)], mode="spark"
        )(ratio_python)
    with pytest.raises(
        DefinitionError,
        match=E(
            "OnDemandFeatureView 'ratio_python': schema must list the Fields the function returns"
        ),
    ):
        on_demand_feature_view(sources=[REQUEST], schema=[])(ratio_python)
    with pytest.raises(
        DefinitionError, match=E("OnDemandFeatureView 'v': udf must be a function, got None")
    ):
        OnDemandFeatureView(name="v", sources=[REQUEST], schema=[Field(name="x", dtype=Int64)])


def test_on_demand_view_class_with_feast_keywords() -> None:
    view = OnDemandFeatureView(
        name="sqrt_view",
        sources=[REQUEST],
        schema=[Field(name="amount_sqrt", dtype=Float64)],
        udf=ratio_python,
        mode="python",
        description="square roots",
        tags={"team": "ml"},
        owner="o",
        write_to_online_store=False,
    )
    assert (view.name, view.udf_name, view.mode) == ("sqrt_view", "ratio_python", "python")
    assert view({"amount": [9.0]}) == {"amount_sqrt": [3.0]}
    with pytest.raises(DefinitionError, match=E("singleton=True is not supported")):
        OnDemandFeatureView(
            name="s", sources=[REQUEST], schema=view.schema, udf=ratio_python, singleton=True
        )


def test_on_demand_spec_stores_source_text_and_only_the_used_imports() -> None:
    pandas_udf = pandas_odfv().to_spec()["udf"]
    assert pandas_udf["name"] == "ratio_pandas"
    assert pandas_udf["source"].startswith(
        "def ratio_pandas(inputs: pd.DataFrame) -> pd.DataFrame:\n"
    )
    assert (
        'out["amount_ratio"] = inputs["amount"] / inputs["avg_purchase_amount"]'
        in pandas_udf["source"]
    )
    assert pandas_udf["imports"] == "import pandas as pd"
    python_udf = python_odfv().to_spec()["udf"]
    # Any (in the annotation) counts as used; json, re, pytest and pitstop do not
    assert python_udf["imports"] == "import math\nfrom typing import Any"
    assert "@" not in python_udf["source"]  # the decorator is not part of the stored text


def test_rebuilt_pandas_function_gives_the_same_result() -> None:
    original = pandas_odfv()
    rebuilt = from_spec("on_demand_feature_view", json.loads(original.to_json()))
    assert isinstance(rebuilt, OnDemandFeatureView)
    assert rebuilt.udf is not original.udf
    inputs = pd.DataFrame({"amount": [10.0, 3.0], "avg_purchase_amount": [4.0, 0.0]})
    expected = original.udf(inputs)
    pd.testing.assert_frame_equal(rebuilt.udf(inputs), expected)
    assert expected["amount_ratio"].tolist() == [2.5, math.inf]


def test_rebuilt_python_function_gives_the_same_result() -> None:
    original = python_odfv()
    rebuilt = from_spec("on_demand_feature_view", json.loads(original.to_json()))
    assert isinstance(rebuilt, OnDemandFeatureView)
    inputs = {"amount": [4.0, 2.25]}
    assert rebuilt(inputs) == original(inputs) == {"amount_sqrt": [2.0, 1.5]}


def test_function_without_source_cannot_be_stored() -> None:
    namespace: dict[str, Any] = {
        "on_demand_feature_view": on_demand_feature_view,
        "REQUEST": REQUEST,
        "Field": Field,
        "Float64": Float64,
    }
    exec(
        "@on_demand_feature_view(\n"
        "    sources=[REQUEST], schema=[Field(name='y', dtype=Float64)], mode='python'\n"
        ")\n"
        "def made_by_exec(inputs):\n"
        "    return {'y': inputs['amount']}\n",
        namespace,
    )
    view = namespace["made_by_exec"]
    assert view({"amount": [1.0]}) == {"y": [1.0]}  # it runs; it just cannot be stored
    with pytest.raises(DefinitionError) as info:
        view.to_spec()
    message = str(info.value)
    assert "OnDemandFeatureView 'made_by_exec'" in message
    assert "source text of function 'made_by_exec' is not available" in message
    assert "define the function in a .py file of the feature repo" in message


def test_broken_stored_function_names_the_view() -> None:
    spec = python_odfv().to_spec()
    spec["udf"]["source"] = "def ratio_python(inputs):\n    return (\n"
    rebuilt = from_spec("on_demand_feature_view", spec)
    assert isinstance(rebuilt, OnDemandFeatureView)
    with pytest.raises(
        DefinitionError,
        match=E(
            "on-demand feature view 'ratio_python': its stored function 'ratio_python' "
            "cannot be rebuilt (SyntaxError"
        ),
    ):
        rebuilt.udf  # noqa: B018 - the property rebuilds the function


# --- FeatureService ----------------------------------------------------------------------------


def test_feature_service_with_feast_keywords() -> None:
    view = user_view()
    svc = FeatureService(
        name="churn_v1",
        features=[view[["total_purchases"]], pandas_odfv()],
        description="d",
        tags={"model": "churn"},
        owner="o",
    )
    assert svc.projections == (
        Projection(name="user_features", features=("total_purchases",)),
        Projection(name="ratio_pandas"),
    )


def test_feature_service_listing_a_view_twice() -> None:
    view = user_view()
    with pytest.raises(DefinitionError) as info:
        FeatureService(name="svc", features=[view, view[["total_purchases"]]])
    message = str(info.value)
    assert "FeatureService 'svc': view 'user_features' is listed twice" in message
    assert "use view.with_name('other_name')" in message
    svc = FeatureService(name="svc", features=[view, view.with_name("buyer")])
    assert [p.name_to_use for p in svc.projections] == ["user_features", "buyer"]


def test_feature_service_needs_views() -> None:
    with pytest.raises(
        DefinitionError, match=E("FeatureService 'svc': features must list at least one view")
    ):
        FeatureService(name="svc", features=[])
    with pytest.raises(
        DefinitionError, match=E("FeatureService 'svc': features must be a list of feature views")
    ):
        FeatureService(name="svc", features=user_view())  # type: ignore[arg-type]
    with pytest.raises(
        DefinitionError, match=E("FeatureService 'svc': Entity(name='user') is not a feature view")
    ):
        FeatureService(name="svc", features=[USER])  # type: ignore[list-item]


# --- JSON serialisation ------------------------------------------------------------------------


def windowed_stream_view() -> StreamFeatureView:
    return stream_view(
        schema=[
            Field(name="transaction_count_1h", dtype=Int64),
            Field(name="total_amount_1h", dtype=Float32),
        ],
        aggregations=[
            Aggregation(column="amount", function="count", time_window=HOUR),
            Aggregation(
                column="amount",
                function="sum",
                time_window=HOUR,
                slide_interval=timedelta(minutes=5),
            ),
        ],
        ttl=HOUR,
    )


def every_kind() -> list[tuple[str, Definition]]:
    view = user_view(ttl=None, tags={"team": "ml"}, description="users", owner="o")
    stream = windowed_stream_view()
    return [
        ("entity", USER),
        ("entity", Entity(name="plain")),
        ("data_source", user_source(created_timestamp_column="created", field_mapping={"a": "b"})),
        ("data_source", FileSource(path="data/t.csv", name="csv_src", tags={"k": "v"})),
        ("data_source", push_source()),
        ("data_source", REQUEST),
        ("feature_view", view),
        ("feature_view", user_view(entities=["user"], source=push_source(), ttl=timedelta(0))),
        (
            "feature_view",
            user_view(
                schema=[
                    Field(name="user_id", dtype=Int64),
                    Field(name="a", dtype=Array(Float64), description="d", tags={"x": "y"}),
                ]
            ),
        ),
        ("stream_feature_view", stream),
        (
            "stream_feature_view",
            stream_view(
                schema=[],
                aggregations=[
                    Aggregation(column="a", function="last", time_window=HOUR, name="last_a")
                ],
                timestamp_field="ts",
            ),
        ),
        ("on_demand_feature_view", pandas_odfv()),
        ("on_demand_feature_view", python_odfv()),
        (
            "feature_service",
            FeatureService(
                name="svc",
                features=[
                    view[["total_purchases"]],
                    view.with_name("b").with_join_key_map({"user_id": "buyer_id"}),
                    stream,
                    python_odfv(),
                ],
            ),
        ),
    ]


@pytest.mark.parametrize(
    ("kind", "obj"), every_kind(), ids=lambda v: v if isinstance(v, str) else v.name
)
def test_json_round_trip(kind: str, obj: Definition) -> None:
    assert kind_of(obj) == kind
    text = json.dumps(obj.to_spec())
    spec = json.loads(text)
    assert spec == obj.to_spec()  # the spec is plain JSON (no tuples, objects or bytes)
    rebuilt = from_spec(kind, spec)
    assert type(rebuilt) is type(obj)
    assert rebuilt == obj
    assert rebuilt.to_json() == obj.to_json()


def test_round_trip_keeps_derived_attributes() -> None:
    stream = windowed_stream_view()
    rebuilt = from_spec("stream_feature_view", json.loads(stream.to_json()))
    assert isinstance(rebuilt, StreamFeatureView)
    assert rebuilt.features == stream.features
    assert rebuilt.join_keys == ("user_id",)
    assert rebuilt.timestamp_field == "transaction_timestamp"
    assert rebuilt.aggregations[1].slide_interval == timedelta(minutes=5)
    view = user_view(entities=[USER])
    rebuilt_view = from_spec("feature_view", json.loads(view.to_json()))
    assert isinstance(rebuilt_view, FeatureView)
    assert (rebuilt_view.entities, rebuilt_view.join_keys) == (("user",), ("user_id",))


def test_no_pickle_in_the_definitions_layer() -> None:
    package = Path(pitstop.definitions.__file__).parent
    for path in package.glob("*.py"):
        imports = re.findall(r"^\s*(?:import|from)\s+(\w+)", path.read_text(), re.MULTILINE)
        assert not {"pickle", "cloudpickle", "dill", "marshal", "shelve"} & set(imports), path
