"""Watching what the model is served: feature logs, a shift, ``pitstop monitor``.

The ``churn_model_v1`` service has a ``logging_config``, so every feature vector the model
server looks up is logged (``feature_repo/data/feature_logs/``). ``serve_traffic`` plays
prediction traffic through ``ModelWithFeatureStore``; ``shift_features`` simulates a change in
the world — a price increase: customers buy bigger baskets, less often — by writing shifted
values online. ``pitstop monitor`` then compares the traffic after the change with the traffic
before it and names the features that moved.

Run from ``examples/`` after ``python -m churn.train`` and a materialization::

    python -m churn.monitoring     # traffic, shift, traffic; then the pitstop monitor command
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pitstop import FeatureStore

if TYPE_CHECKING:
    from .app import ModelWithFeatureStore

VIEW = "user_features"
COLUMNS = ["total_purchases", "avg_purchase_amount", "days_since_last_purchase",
           "tenure_months", "customer_segment"]  # fmt: skip


def serve_traffic(server: ModelWithFeatureStore, users: list[int], *, passes: int = 2,
                  batch: int = 10, seed: int = 0) -> int:  # fmt: skip
    """Look up the features of every customer ``passes`` times, in random batches of
    ``batch`` (a batch-scoring job); returns the lookups made."""
    rng = np.random.default_rng(seed)
    lookups = 0
    for _ in range(passes):
        order = [int(u) for u in rng.permutation(users)]
        for start in range(0, len(order), batch):
            server.online_features(order[start : start + batch])
            lookups += 1
    return lookups


def shift_features(store: FeatureStore, users: list[int], *, seed: int = 0) -> int:
    """A price increase: average baskets 50% bigger, purchases 20 days further apart.
    Writes the customers' shifted rows online; returns how many were written."""
    from .pipeline import segment_of

    rng = np.random.default_rng(seed)
    refs = [f"{VIEW}:{c}" for c in COLUMNS]
    current = store.get_online_features(refs, [{"user_id": u} for u in users]).to_df().dropna()
    n = len(current)
    amount = current["avg_purchase_amount"].astype("float64") * rng.normal(1.5, 0.05, n)
    shifted = current.assign(
        avg_purchase_amount=amount.round(2),
        days_since_last_purchase=current["days_since_last_purchase"] + 20,
        customer_segment=[segment_of(a) for a in amount],
        event_timestamp=datetime.now(UTC),
    )
    store.write_to_online_store(VIEW, pd.DataFrame(shifted))
    return n


if __name__ == "__main__":
    import subprocess

    from . import FEATURE_REPO, FEATURE_SERVICE, MODEL
    from .app import ModelWithFeatureStore

    server = ModelWithFeatureStore(MODEL, FEATURE_REPO)
    customers = list(range(1001, 1301))
    serve_traffic(server, customers, seed=1)
    server.store.flush_feature_logs()
    changed_at = datetime.now(UTC).isoformat()
    shift_features(server.store, customers, seed=2)
    serve_traffic(server, customers, seed=3)
    server.close()
    subprocess.run(["pitstop", "monitor", "--service", FEATURE_SERVICE, "--reference-until",
                    changed_at, "--since", changed_at, "--report", "monitoring_report"],
                   cwd=FEATURE_REPO)  # fmt: skip
