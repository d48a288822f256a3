"""The churn-prediction repo of ``pitstop init``: definitions plus synthetic data."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pitstop.errors import RepoError

TEMPLATE = Path(__file__).parent / "repo"
SEGMENTS = ("bronze", "silver", "gold", "platinum")


def create_repo(path: Path, *, project: str, users: int = 1000, seed: int = 7) -> Path:
    """Copy the template to ``path`` and generate its data; ``path`` must be new or empty."""
    if path.exists() and any(path.iterdir()):
        raise RepoError(f"{path} already exists and is not empty; choose a new folder")
    shutil.copytree(
        TEMPLATE, path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    yaml_file = path / "feature_store.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("{project}", project))
    generate_data(path / "data", users=users, seed=seed)
    return path.resolve()


def generate_data(folder: Path, *, users: int, seed: int = 7, days: int = 30) -> None:
    """Daily user snapshots and raw transactions over the last ``days`` days, in Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=days)
    snap: dict[str, list[object]] = {
        k: []
        for k in (
            "user_id",
            "total_purchases",
            "avg_purchase_amount",
            "days_since_last_purchase",
            "customer_segment",
            "tenure_months",
            "event_timestamp",
            "created_timestamp",
        )
    }
    tx: dict[str, list[object]] = {
        k: []
        for k in (
            "user_id",
            "transaction_amount",
            "transaction_count_7d",
            "avg_transaction_7d",
            "transaction_timestamp",
        )
    }
    for user_id in range(1001, 1001 + users):
        spend = rng.lognormvariate(4.0, 0.6)
        rate = rng.uniform(0.05, 1.5)  # purchases a day
        tenure = rng.randint(0, 48)
        purchases = rng.randint(0, 40)
        times: list[datetime] = []
        for day in range(days):
            ts = start + timedelta(days=day, hours=rng.randint(0, 23))
            bought = sum(1 for _ in range(3) if rng.random() < rate / 3)
            for _ in range(bought):
                t = ts + timedelta(minutes=rng.randint(0, 59))
                times.append(t)
                recent = [x for x in times if t - x <= timedelta(days=7)]
                amount = round(rng.gauss(spend, spend / 4), 2)
                tx["user_id"].append(user_id)
                tx["transaction_amount"].append(max(amount, 1.0))
                tx["transaction_count_7d"].append(len(recent))
                tx["avg_transaction_7d"].append(spend)
                tx["transaction_timestamp"].append(t)
            purchases += bought
            last = (ts - times[-1]).days if times else day + 30
            snap["user_id"].append(user_id)
            snap["total_purchases"].append(purchases)
            snap["avg_purchase_amount"].append(round(spend, 2))
            snap["days_since_last_purchase"].append(last)
            snap["customer_segment"].append(SEGMENTS[min(int(spend // 40), 3)])
            snap["tenure_months"].append(tenure + day // 30)
            snap["event_timestamp"].append(ts)
            snap["created_timestamp"].append(ts + timedelta(minutes=5))
    ts_type = pa.timestamp("us", tz="UTC")
    snap_schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("total_purchases", pa.int64()),
            ("avg_purchase_amount", pa.float32()),
            ("days_since_last_purchase", pa.int64()),
            ("customer_segment", pa.string()),
            ("tenure_months", pa.int64()),
            ("event_timestamp", ts_type),
            ("created_timestamp", ts_type),
        ]
    )
    tx_schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("transaction_amount", pa.float32()),
            ("transaction_count_7d", pa.int64()),
            ("avg_transaction_7d", pa.float32()),
            ("transaction_timestamp", ts_type),
        ]
    )
    pq.write_table(pa.table(snap, schema=snap_schema), folder / "user_features.parquet")
    transactions = pa.table(tx, schema=tx_schema)
    pq.write_table(transactions, folder / "transactions.parquet")
    events = ["user_id", "transaction_amount", "transaction_timestamp"]  # what apps push
    pq.write_table(transactions.select(events), folder / "transaction_events.parquet")
