"""Synthetic raw data for the churn example: transactions, and churn labels derived from them.

Every customer signs up at some point, buys at their own pace (a few times a month on average)
and, at a random moment, stops buying for good. A customer *churned* at time ``t`` when they
make no purchase in the 30 days after ``t``. Customers who buy rarely, or have not bought for a
while, are the likely churners — which is what the model has to learn from the features.

Run from ``examples/``: ``python -m churn.data`` writes ``churn/data/raw_transactions.parquet``
and ``churn/data/labels.parquet``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from . import LABELS, RAW_TRANSACTIONS

FIRST_USER_ID = 1001
CHURN_HORIZON = timedelta(days=30)


def generate_transactions(
    users: int = 2000, days: int = 365, *, now: datetime | None = None, seed: int = 7
) -> pd.DataFrame:
    """Raw transactions of ``users`` customers over the ``days`` days before ``now``.

    Columns: ``transaction_id``, ``user_id``, ``transaction_amount``, ``transaction_timestamp``
    (UTC), sorted by time.
    """
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(now) - pd.Timedelta(days=days)
    user_ids = np.arange(FIRST_USER_ID, FIRST_USER_ID + users)

    # Per customer: sign-up day, purchases per day, typical basket, and when they stop buying
    signup_day = rng.uniform(0, days - 7, users)
    rate = rng.lognormal(mean=np.log(0.12), sigma=0.7, size=users)  # ~3.6 purchases a month
    basket = rng.lognormal(mean=np.log(50), sigma=0.5, size=users)
    lifetime = rng.exponential(scale=150, size=users)  # days until they leave
    active_until = np.minimum(signup_day + lifetime, days)

    # The first purchase happens at sign-up; the others follow a Poisson process
    counts = rng.poisson(rate * (active_until - signup_day))
    owner = np.repeat(np.arange(users), counts)
    later = signup_day[owner] + rng.uniform(0, 1, owner.size) * (active_until - signup_day)[owner]
    owner = np.concatenate([np.arange(users), owner])
    day = np.concatenate([signup_day, later])
    amount = rng.lognormal(mean=np.log(basket[owner]), sigma=0.3)

    df = pd.DataFrame(
        {
            "user_id": user_ids[owner],
            "transaction_amount": np.round(amount, 2),
            "transaction_timestamp": start + pd.to_timedelta(day, unit="D"),
        }
    )
    df["transaction_timestamp"] = df["transaction_timestamp"].dt.as_unit("us").dt.floor("s")
    df = df.sort_values("transaction_timestamp", ignore_index=True)
    df.insert(0, "transaction_id", np.arange(1, len(df) + 1))
    return df


def make_labels(
    transactions: pd.DataFrame,
    *,
    per_user: int = 4,
    now: datetime | None = None,
    horizon: timedelta = CHURN_HORIZON,
    seed: int = 11,
) -> pd.DataFrame:
    """Labelled rows ``user_id, event_timestamp, churned`` at ``per_user`` times per customer.

    The times are random between a customer's first purchase and ``now - horizon`` (so the
    outcome is known); ``churned`` is 1 when the customer buys nothing in the ``horizon`` after.
    """
    now_ts = pd.Timestamp(now or datetime.now(UTC))
    rng = np.random.default_rng(seed)
    first = transactions.groupby("user_id")["transaction_timestamp"].min()
    first = first[first < now_ts - horizon - pd.Timedelta(days=1)].repeat(per_user)
    when = first + (now_ts - horizon - first) * rng.uniform(0, 1, first.size)
    labels = pd.DataFrame({"user_id": first.index.to_numpy(), "event_timestamp": when.to_numpy()})
    labels["event_timestamp"] = labels["event_timestamp"].dt.floor("s")

    # churned: no purchase in (t, t + horizon]
    pairs = labels.reset_index().merge(
        transactions[["user_id", "transaction_timestamp"]], on="user_id"
    )
    ts = pairs["transaction_timestamp"]
    bought = pairs[(ts > pairs["event_timestamp"]) & (ts <= pairs["event_timestamp"] + horizon)]
    labels["churned"] = (~labels.index.isin(bought["index"])).astype("int64")
    return labels.sort_values(["event_timestamp", "user_id"], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--transactions", type=Path, default=RAW_TRANSACTIONS)
    parser.add_argument("--labels", type=Path, default=LABELS)
    args = parser.parse_args()
    now = datetime.now(UTC)
    transactions = generate_transactions(args.users, args.days, now=now)
    labels = make_labels(transactions, now=now)
    for df, path in ((transactions, args.transactions), (labels, args.labels)):
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path, index=False)
        print(f"{len(df):,} rows written to {path}")
    print(f"{labels['churned'].mean():.0%} of the labelled rows churned")


if __name__ == "__main__":
    main()
