"""
features/transaction_features.py - transaction features
"""

from datetime import timedelta

from features.user_features import user
from pitstop import Entity, FeatureView, Field, FileSource, PushSource, StreamFeatureView
from pitstop.aggregation import Aggregation
from pitstop.types import Float32, Int64

__all__ = ["Entity", "push_source", "streaming_features", "transaction_features"]

transaction_source = FileSource(
    path="data/transactions.parquet",
    timestamp_field="transaction_timestamp",
)

transaction_features = FeatureView(
    name="transaction_features",
    entities=[user],
    ttl=timedelta(days=7),
    schema=[
        Field(name="transaction_amount", dtype=Float32),
        Field(name="transaction_count_7d", dtype=Int64),
        Field(name="avg_transaction_7d", dtype=Float32),
    ],
    source=transaction_source,
    online=True,
)

# Applications push raw transaction events here (store.push, POST /push, `pitstop ingest`).
# Offline they are kept in their own file, whose columns every offline push carries, so the
# training data of transaction_features never changes under a push.
transaction_events = FileSource(
    path="data/transaction_events.parquet",
    timestamp_field="transaction_timestamp",
)
push_source = PushSource(name="transaction_push_source", batch_source=transaction_events)

# Windowed aggregations over the last hour
streaming_features = StreamFeatureView(
    name="transaction_streaming_features",
    entities=[user],
    ttl=timedelta(hours=1),
    schema=[
        Field(name="transaction_count_1h", dtype=Int64),
        Field(name="total_amount_1h", dtype=Float32),
    ],
    source=push_source,
    aggregations=[
        Aggregation(column="transaction_amount", function="count", time_window=timedelta(hours=1)),
        Aggregation(column="transaction_amount", function="sum", time_window=timedelta(hours=1)),
    ],
)
