"""
features/user_features.py - 사용자 피처 정의
"""

from datetime import timedelta
from pitstop import Entity, Feature, FeatureView, Field, FileSource, ValueType
from pitstop.types import Float32, Int64, String

# Entity 정의 (피처의 키)
user = Entity(
    name="user_id",
    description="Customer ID",
    value_type=ValueType.INT64
)

# 데이터 소스 정의
user_source = FileSource(
    path="data/user_features.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp"
)

# Feature View 정의
user_features = FeatureView(
    name="user_features",
    entities=[user],
    ttl=timedelta(days=1),  # Time to Live
    schema=[
        Field(name="total_purchases", dtype=Int64),
        Field(name="avg_purchase_amount", dtype=Float32),
        Field(name="days_since_last_purchase", dtype=Int64),
        Field(name="customer_segment", dtype=String),
        Field(name="tenure_months", dtype=Int64),
    ],
    online=True,   # 온라인 스토어 활성화
    source=user_source,
    tags={
        "team": "ml-platform",
        "owner": "data-science"
    }
)

# 집계 피처 (On-Demand Feature)
from pitstop import on_demand_feature_view
import pandas as pd

@on_demand_feature_view(
    sources=[user_features],
    schema=[
        Field(name="purchase_frequency", dtype=Float32),
        Field(name="is_high_value", dtype=Int64),
    ]
)
def user_derived_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """실시간 계산 피처"""
    df = pd.DataFrame()
    df["purchase_frequency"] = inputs["total_purchases"] / inputs["tenure_months"]
    df["is_high_value"] = (inputs["avg_purchase_amount"] > 100).astype(int)
    return df
