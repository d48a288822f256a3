"""User features of the churn model (tutorial section 3.1).

``data/user_features.parquet`` holds one row per user and day, written by the batch pipeline
(``../pipeline.py``). Between two pipeline runs a streaming job can push fresher rows for a user
through ``user_features_push`` (tutorial section 6.2).
"""

from datetime import timedelta

import pandas as pd

from pitstop import (
    Entity,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    ValueType,
    between,
    in_set,
    not_in_future,
    not_null,
    on_demand_feature_view,
    unique,
)
from pitstop.types import Float32, Int64, String

# The entity: every feature here is looked up by user_id
user = Entity(name="user_id", description="Customer ID", value_type=ValueType.INT64)

# The pipeline's output; paths are relative to the repo root
user_source = FileSource(
    name="user_features_source",
    path="data/user_features.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
)

# Rows pushed by applications go straight to the online store; training reads user_source
user_push_source = PushSource(name="user_features_push", batch_source=user_source)

user_features = FeatureView(
    name="user_features",
    entities=[user],
    # the pipeline runs daily; a value older than two days is not served
    ttl=timedelta(days=2),
    schema=[
        Field(name="total_purchases", dtype=Int64),
        Field(name="avg_purchase_amount", dtype=Float32),
        Field(name="days_since_last_purchase", dtype=Int64),
        Field(name="tenure_months", dtype=Int64),
        Field(name="customer_segment", dtype=String),
    ],
    source=user_push_source,
    online=True,
    tags={"team": "ml-platform", "owner": "data-science"},
    # What every row must hold, checked by the pipeline before it writes, and by pitstop on
    # every push and materialization: a batch that breaks one is rejected whole
    expectations=[
        not_null("user_id"),
        between("user_id", min=1),
        not_null("total_purchases"),
        between("total_purchases", min=1),
        not_null("avg_purchase_amount"),
        between("avg_purchase_amount", min=0.0),
        not_null("days_since_last_purchase"),
        between("days_since_last_purchase", min=0),
        not_null("tenure_months"),
        between("tenure_months", min=0),
        not_null("customer_segment"),
        in_set("customer_segment", ["bronze", "silver", "gold", "platinum"]),
        not_null("event_timestamp"),
        not_in_future("event_timestamp"),
        unique("user_id", "event_timestamp"),
    ],
    expectation_policy="reject",
)


@on_demand_feature_view(
    sources=[user_features],
    schema=[Field(name="purchase_frequency", dtype=Float32)],
)
def user_derived_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """Purchases per month of tenure, computed when the features are read."""
    df = pd.DataFrame()
    # a customer in their first month has tenure 0: count it as one month, not divide by zero
    df["purchase_frequency"] = inputs["total_purchases"] / inputs["tenure_months"].clip(lower=1)
    return df
