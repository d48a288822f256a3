"""Constructs of Feast repos as pitstop definitions: the Map, Json and Struct types, Kafka sources,
projects, logging configs and the extra feature view arguments — validated, stored and read back."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from pitstop import Entity, FeatureService, FeatureView, Field, FileSource, KafkaSource, Project
from pitstop.definitions.feature_logging import FileLoggingDestination, LoggingConfig
from pitstop.definitions.formats import AvroFormat, JsonFormat, ParquetFormat
from pitstop.definitions.serde import from_spec, kind_of
from pitstop.engine.write import SMALL, encode_rows
from pitstop.errors import DefinitionError
from pitstop.online.encoding import decode_value
from pitstop.types import (
    Array,
    Float32,
    Int32,
    Int64,
    Json,
    Map,
    String,
    Struct,
    from_arrow,
    parse_dtype,
    to_arrow,
)

PROFILE = Struct({"name": String, "scores": Array(Int64), "home": Struct({"city": String})})


@pytest.mark.parametrize(
    ("dtype", "arrow"),
    [
        (Map, pa.map_(pa.string(), pa.string())),
        (Json, pa.string()),
        (Array(Json), pa.list_(pa.string())),
        (
            PROFILE,
            pa.struct(
                [
                    ("name", pa.string()),
                    ("scores", pa.list_(pa.int64())),
                    ("home", pa.struct([("city", pa.string())])),
                ]
            ),
        ),
    ],
)
def test_new_types_map_to_arrow_and_back_by_name(dtype: object, arrow: pa.DataType) -> None:
    assert to_arrow(dtype) == arrow  # type: ignore[arg-type]
    assert parse_dtype(str(dtype)) == dtype
    if dtype is not Json and dtype != Array(Json):  # JSON text reads as a plain string
        assert from_arrow(arrow) == dtype


def test_struct_names_keep_field_order_and_odd_characters() -> None:
    odd = Struct({'a, "b"': Int32, "z": Map})
    assert str(odd) == 'Struct({"a, \\"b\\"": Int32, "z": Map})'
    assert parse_dtype(str(odd)) == odd
    assert Field(name="p", dtype=str(PROFILE)).dtype == PROFILE


def test_struct_needs_named_typed_fields() -> None:
    with pytest.raises(DefinitionError, match=r"give the fields as a dict of names to types"):
        Struct({})
    with pytest.raises(DefinitionError, match=r"Struct field 'age': unknown dtype 'Years'"):
        Struct({"age": "Years"})


def view_with(fields: list[Field]) -> FeatureView:
    return FeatureView(
        name="drivers",
        entities=[Entity(name="driver", join_keys=["driver_id"])],
        schema=fields,
        source=FileSource(path="data/d.parquet", timestamp_field="ts"),
    )


@pytest.mark.parametrize("rows", [3, SMALL + 1])  # row-by-row and columnar encoding
def test_map_json_and_struct_values_roundtrip_through_the_online_encoding(rows: int) -> None:
    view = view_with(
        [
            Field(name="tags", dtype=Map),
            Field(name="config", dtype=Json),
            Field(name="profile", dtype=PROFILE),
        ]
    )
    tags = [{"colour": "red", "n": str(i)} if i % 3 else None for i in range(rows)]
    profiles = [
        {"name": f"d{i}", "scores": [i, None], "home": {"city": "Porto"}} if i % 2 else None
        for i in range(rows)
    ]
    batch = pa.table(
        {
            "driver_id": pa.array(range(rows), pa.int64()),
            "ts": pa.array(range(rows), pa.timestamp("us", tz="UTC")),
            "tags": pa.array([None if t is None else list(t.items()) for t in tags], to_arrow(Map)),
            "config": pa.array(['{"a": 1}'] * rows),
            "profile": pa.array(profiles, to_arrow(PROFILE)),
        }
    )
    stored = encode_rows(view, batch, "ts", None)
    decoded = [decode_value(r.value) for r in sorted(stored, key=lambda r: r.event_ts)]
    assert [d["tags"] for d in decoded] == tags
    assert [d["profile"] for d in decoded] == profiles
    assert {d["config"] for d in decoded} == {'{"a": 1}'}


def test_kafka_source_is_stored_and_read_back() -> None:
    batch = FileSource(path="data/trips.parquet", timestamp_field="ts")
    topic = KafkaSource(
        name="trips",
        kafka_bootstrap_servers="broker:9092",
        topic="trips",
        timestamp_field="ts",
        message_format=AvroFormat(schema_json='{"type": "record"}'),
        batch_source=batch,
        watermark_delay_threshold=timedelta(minutes=5),
        tags={"team": "fleet"},
    )
    assert kind_of(topic) == "data_source"
    spec = topic.to_spec()
    assert spec["type"] == "kafka" and spec["bootstrap_servers"] == "broker:9092"
    assert spec["message_format"] == {"type": "avro", "schema": '{"type": "record"}'}
    assert spec["watermark_delay_threshold_seconds"] == 300
    assert from_spec("data_source", spec) == topic
    bare = KafkaSource(name="bare", topic="t", message_format=JsonFormat())
    assert from_spec("data_source", bare.to_spec()) == bare


def test_kafka_source_cannot_feed_a_view_and_says_why() -> None:
    topic = KafkaSource(name="trips", topic="trips", timestamp_field="ts")
    with pytest.raises(DefinitionError) as info:
        FeatureView(name="v", entities=["driver"], schema=[], source=topic)  # type: ignore[arg-type]
    assert "KafkaSource 'trips' is kept as a definition only" in str(info.value)
    with pytest.raises(DefinitionError, match="message_format must be JsonFormat"):
        KafkaSource(name="x", message_format="json")  # type: ignore[arg-type]


def test_project_is_a_registered_kind() -> None:
    project = Project(name="fleet", description="Drivers", tags={"team": "fleet"})
    assert kind_of(project) == "project"
    assert from_spec("project", project.to_spec()) == project
    with pytest.raises(DefinitionError, match="Project: a name is required"):
        Project(name="")


def test_feature_service_keeps_its_logging_config() -> None:
    view = view_with([Field(name="rate", dtype=Float32)])
    logging = LoggingConfig(
        destination=FileLoggingDestination(path="data/served", partition_by=["driver_id"]),
        sample_rate=0.25,
    )
    service = FeatureService(name="ranking", features=[view], logging_config=logging)
    back = from_spec("feature_service", service.to_spec())
    assert isinstance(back, FeatureService) and back.logging_config == logging
    plain = FeatureService(name="plain", features=[view])
    assert "logging_config" not in plain.to_spec()  # specs of existing services do not change
    with pytest.raises(DefinitionError, match=r"sample_rate must be in \(0, 1\], got 2"):
        LoggingConfig(destination=FileLoggingDestination(path="x"), sample_rate=2)
    with pytest.raises(DefinitionError, match="logging_config must be a LoggingConfig"):
        FeatureService(name="bad", features=[view], logging_config="data/served")  # type: ignore[arg-type]


def test_feature_view_keeps_validation_and_version_only_when_given() -> None:
    plain = view_with([Field(name="rate", dtype=Float32)])
    assert not {"enable_validation", "version"} & set(plain.to_spec())
    tagged = FeatureView(
        name="drivers",
        entities=["driver"],
        schema=[Field(name="rate", dtype=Float32)],
        source=FileSource(path="data/d.parquet", timestamp_field="ts", file_format=ParquetFormat()),
        enable_validation=True,
        version=2,
    )
    spec = tagged.to_spec()
    assert spec["enable_validation"] is True and spec["version"] == "2"
    back = from_spec("feature_view", spec)
    assert isinstance(back, FeatureView) and back.enable_validation and back.version == "2"
    assert back == tagged
