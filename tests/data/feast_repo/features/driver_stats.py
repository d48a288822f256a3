# Hourly statistics of delivery drivers, declared with Feast's classes.

from datetime import timedelta

import pandas as pd
from feast import (
    Entity,
    FeatureView,
    Field,
    FileSource,
    KafkaSource,
    Project,
    PushSource,
    RequestSource,
)
from feast.data_format import JsonFormat, ParquetFormat
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float32, Float64, Int64, Json, Map, String, Struct
from feast.value_type import ValueType

fleet = Project(
    name="fleet_stats", description="Delivery driver statistics", tags={"team": "fleet"}
)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

hourly_source = FileSource(
    name="driver_hourly_source",
    path="data/driver_stats.parquet",
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

metrics_schema = [
    Field(name="trip_rate", dtype=Float32),
    Field(name="accept_rate", dtype=Float32),
    Field(name="daily_trips", dtype=Int64, description="Trips completed in the last day"),
    Field(name="vehicle_tags", dtype=Map, description="Free-form labels of the vehicle"),
    Field(name="shift_config", dtype=Json, description="Shift settings as JSON text"),
    Field(name="profile", dtype=Struct({"name": String, "city": String})),
]

hourly_metrics = FeatureView(
    name="driver_hourly_metrics",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=metrics_schema,
    online=True,
    source=hourly_source,
    tags={"team": "fleet"},
    owner="fleet@example.com",
    description="Hourly driver metrics",
    enable_validation=True,
)

bonus_request = RequestSource(
    name="bonus_request",
    schema=[Field(name="bonus", dtype=Int64), Field(name="bonus_2", dtype=Int64)],
)


@on_demand_feature_view(
    sources=[hourly_metrics, bonus_request],
    schema=[
        Field(name="trip_rate_plus_bonus", dtype=Float64),
        Field(name="trip_rate_plus_bonus_2", dtype=Float64),
    ],
)
def boosted_rate(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["trip_rate_plus_bonus"] = inputs["trip_rate"] + inputs["bonus"]
    out["trip_rate_plus_bonus_2"] = inputs["trip_rate"] + inputs["bonus_2"]
    return out


live_push = PushSource(name="driver_live_push", batch_source=hourly_source)

live_metrics = FeatureView(
    name="driver_live_metrics",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=metrics_schema[:3],
    source=live_push,
    tags={"team": "fleet"},
)

# Kept as a definition: pitstop registers it but reads no Kafka topic.
trips_topic = KafkaSource(
    name="driver_trips_topic",
    kafka_bootstrap_servers="localhost:9092",
    topic="driver_trips",
    timestamp_field="event_timestamp",
    message_format=JsonFormat(schema_json="driver_id integer, event_timestamp timestamp"),
    batch_source=hourly_source,
    watermark_delay_threshold=timedelta(minutes=5),
)
