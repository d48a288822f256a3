"""
features/user_features.py - user features
"""

from datetime import timedelta

import pandas as pd

from pitstop import Entity, FeatureView, Field, FileSource, ValueType, on_demand_feature_view
from pitstop.types import Float32, Int64, String

# The entity: features are looked up by user_id
user = Entity(name="user_id", description="Customer ID", value_type=ValueType.INT64)

# Where the rows come from (relative to this repo's root)
user_source = FileSource(
    path="data/user_features.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
)

user_features = FeatureView(
    name="user_features",
    entities=[user],
    ttl=timedelta(days=1),
    schema=[
        Field(name="total_purchases", dtype=Int64),
        Field(name="avg_purchase_amount", dtype=Float32),
        Field(name="days_since_last_purchase", dtype=Int64),
        Field(name="customer_segment", dtype=String),
        Field(name="tenure_months", dtype=Int64),
    ],
    online=True,
    source=user_source,
    tags={"team": "ml-platform", "owner": "data-science"},
)


@on_demand_feature_view(
    sources=[user_features],
    schema=[
        Field(name="purchase_frequency", dtype=Float32),
        Field(name="is_high_value", dtype=Int64),
    ],
)
def user_derived_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """Features computed at request time."""
    df = pd.DataFrame()
    df["purchase_frequency"] = inputs["total_purchases"] / inputs["tenure_months"]
    df["is_high_value"] = (inputs["avg_purchase_amount"] > 100).astype(int)
    return df
