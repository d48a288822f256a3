"""Fresh features the moment a customer buys something (tutorial section 6.2).

The batch pipeline refreshes every customer once a day. In between, a stream job handles each
purchase event: it takes the customer's current features from the online store, folds the
purchase in — the same definitions as the pipeline, one event at a time — and pushes the new row.
The next prediction sees it at once, with no materialization in between.

Only the online store gets the row (``PushMode.ONLINE``, the default): the raw transaction also
lands in the raw data, so the next pipeline run recomputes it for training.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from pitstop import FeatureStore

from .pipeline import segment_of

PUSH_SOURCE = "user_features_push"
USER_FEATURES = [
    "user_features:total_purchases",
    "user_features:avg_purchase_amount",
    "user_features:tenure_months",
]


def process_purchase_event(store: FeatureStore, event: dict[str, Any]) -> dict[str, Any] | None:
    """Update the features of ``event["user_id"]`` with a purchase of ``event["amount"]``.

    ``event`` may carry its ``timestamp`` (UTC); without it the purchase happened now.
    Returns the row that was pushed, or None when the customer's online values are too old to
    build on (the next pipeline run will count the purchase).
    """
    user_id = int(event["user_id"])
    amount = float(event["amount"])
    when = event.get("timestamp") or datetime.now(UTC)
    response = store.get_online_features(USER_FEATURES, [{"user_id": user_id}])
    current = response.to_dict()
    status = {response.statuses[ref.split(":")[1]][0] for ref in USER_FEATURES}

    before = current["total_purchases"][0]
    if status == {"NOT_FOUND"}:  # a new customer: this is their first purchase
        total, average, tenure = 1, amount, 0
    elif status != {"PRESENT"}:
        return None
    else:
        total = before + 1
        average = (current["avg_purchase_amount"][0] * before + amount) / total
        tenure = current["tenure_months"][0]
    row = {
        "user_id": user_id,
        "total_purchases": total,
        "avg_purchase_amount": round(average, 2),
        "days_since_last_purchase": 0,
        "tenure_months": tenure,
        "customer_segment": segment_of(average),
        "event_timestamp": when,
        "created_timestamp": datetime.now(UTC),
    }
    store.push(PUSH_SOURCE, pd.DataFrame([row]))
    return row
