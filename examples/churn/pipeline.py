"""Batch feature pipeline (tutorial section 6.1), made to run for real.

    raw transactions  →  one row of user features per user and day  →  user_features.parquet

Bad data stops the run before it can reach the feature store: the raw transactions are checked
before anything is computed and the features before anything is written, with pitstop's
expectations (:mod:`pitstop.quality`) — the features against those declared on the
``user_features`` view. A failed check raises :class:`~pitstop.errors.DataQualityError`, which
lists every broken rule — the column, how many rows, example rows and values — and nothing is
written. When all checks pass the output file is replaced atomically (written next to it, then
renamed), so readers see the old file or the new one, never half.

Run from ``examples/``: ``python -m churn.pipeline`` reads ``churn/data/raw_transactions.parquet``
and writes ``churn/feature_repo/data/user_features.parquet``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pitstop import FeatureView, between, not_in_future, not_null, of_type
from pitstop.errors import DataQualityError
from pitstop.quality import validate
from pitstop.repo import load_repo

from . import FEATURE_REPO, RAW_TRANSACTIONS, USER_FEATURES

# Customer segments by average basket, upper bounds exclusive
SEGMENTS = {"bronze": 30.0, "silver": 60.0, "gold": 100.0, "platinum": math.inf}


def segment_of(avg_purchase_amount: float) -> str:
    return next(name for name, bound in SEGMENTS.items() if avg_purchase_amount < bound)


# The output's columns and types: what feature_repo/features/user_features.py declares
FEATURES_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("total_purchases", pa.int64()),
        ("avg_purchase_amount", pa.float32()),
        ("days_since_last_purchase", pa.int64()),
        ("tenure_months", pa.int64()),
        ("customer_segment", pa.string()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("created_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)


# --- validation ------------------------------------------------------------------------------

# What the raw transactions must hold (they feed no feature view, so their rules live here;
# the features' rules are declared with the view, in feature_repo/features/user_features.py)
RAW_EXPECTATIONS = [
    of_type("transaction_id", "integer"),
    not_null("transaction_id"),
    of_type("user_id", "integer"),
    not_null("user_id"),
    between("user_id", min=1),
    of_type("transaction_amount", "number"),
    not_null("transaction_amount"),
    between("transaction_amount", 0.01, 100_000.0),
    of_type("transaction_timestamp", "timestamp"),
    not_null("transaction_timestamp"),
    not_in_future("transaction_timestamp"),  # nothing from the future
]


def feature_view(repo: Path = FEATURE_REPO) -> FeatureView:
    """The ``user_features`` view as the feature repo defines it (read from its files: the
    pipeline runs before ``pitstop apply``)."""
    found = [o for o in load_repo(repo).all() if isinstance(o, FeatureView)]
    return next(v for v in found if v.name == "user_features")


# --- the pipeline ----------------------------------------------------------------------------


class FeatureEngineeringPipeline:
    """Raw transactions → daily user feature snapshots, validated, written atomically.

    >>> pipeline = FeatureEngineeringPipeline(
    ...     "data/raw_transactions.parquet", "feature_repo/data/user_features.parquet"
    ... )
    >>> features = pipeline.run()  # doctest: +SKIP
    """

    def __init__(
        self,
        raw_data_path: str | Path,
        output_path: str | Path,
        *,
        now: datetime | None = None,
        history_days: int | None = None,
        log: Callable[[str], None] | None = print,
        feature_repo: str | Path = FEATURE_REPO,
    ) -> None:
        self.raw_data_path = Path(raw_data_path)
        self.output_path = Path(output_path)
        self.now = pd.Timestamp(now or datetime.now(UTC)).tz_convert(UTC).floor("s")
        self.history_days = history_days  # None: as far back as the raw data goes
        self.log = log or (lambda _: None)
        self.feature_repo = Path(feature_repo)

    def load_raw_data(self) -> pd.DataFrame:
        df = pd.read_parquet(self.raw_data_path).reset_index(drop=True)
        ts = df.get("transaction_timestamp")
        if ts is not None and pd.api.types.is_datetime64_any_dtype(ts) and ts.dt.tz is None:
            df["transaction_timestamp"] = ts.dt.tz_localize(UTC)  # naive times are UTC
        return df

    def validate_raw_data(self, df: pd.DataFrame) -> None:
        report = validate(df, RAW_EXPECTATIONS, keys=["transaction_id"], now=self.now)
        report.raise_for_failures(f"raw transactions ({self.raw_data_path})",
                                  note="nothing was written")  # fmt: skip

    def snapshot_times(self, raw: pd.DataFrame) -> pd.DatetimeIndex:
        """One snapshot a day, ending now."""
        days = self.history_days
        if days is None:
            first = raw["transaction_timestamp"].min()
            days = (self.now - first).days + 1 if len(raw) else 1
        return pd.date_range(end=self.now, periods=days, freq="D", unit="us")

    def compute_user_features(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Per user and snapshot time ``t``: features from every transaction up to ``t``."""
        snapshots = self.snapshot_times(raw)
        # Bucket k holds the transactions in (snapshot k-1, snapshot k]: bucket 0 everything
        # up to the first snapshot (validation made sure nothing is later than the last one)
        bucket = snapshots.searchsorted(raw["transaction_timestamp"], side="left")
        per_bucket = (
            raw.assign(k=bucket)
            .groupby(["user_id", "k"], as_index=False)
            .agg(
                purchases=("transaction_amount", "size"),
                amount=("transaction_amount", "sum"),
                first_purchase=("transaction_timestamp", "min"),
                last_purchase=("transaction_timestamp", "max"),
            )
        )
        # One row per user and snapshot, from the user's first purchase on
        first_k = per_bucket.groupby("user_id")["k"].min()
        grid = pd.DataFrame(
            {
                "user_id": np.repeat(first_k.index.to_numpy(), len(snapshots) - first_k),
                "k": np.concatenate([np.arange(k, len(snapshots)) for k in first_k]),
            }
        ).merge(per_bucket, on=["user_id", "k"], how="left")

        # Running totals per user (rows are in time order within each user)
        by_user = grid.groupby("user_id")
        purchases = grid["purchases"].fillna(0).groupby(grid["user_id"]).cumsum()
        amount = grid["amount"].fillna(0.0).groupby(grid["user_id"]).cumsum()
        last_purchase = by_user["last_purchase"].ffill()
        first_purchase = by_user["first_purchase"].transform("first")
        as_of = pd.Series(snapshots[grid["k"].to_numpy()], index=grid.index)

        avg = amount / purchases
        bounds = list(SEGMENTS.values())
        segment = np.array(list(SEGMENTS))[np.searchsorted(bounds, avg.to_numpy(), side="right")]
        return pd.DataFrame(
            {
                "user_id": grid["user_id"],
                "total_purchases": purchases.astype("int64"),
                "avg_purchase_amount": avg.round(2).astype("float32"),
                "days_since_last_purchase": (as_of - last_purchase).dt.days.astype("int64"),
                "tenure_months": ((as_of - first_purchase).dt.days // 30).astype("int64"),
                "customer_segment": segment,
                "event_timestamp": as_of,
                "created_timestamp": self.now,
            }
        )

    def validate_features(self, df: pd.DataFrame) -> None:
        """Check the features against the expectations of the view that serves them."""
        report = validate(df, feature_view(self.feature_repo), now=self.now)
        report.raise_for_failures(f"user features (for {self.output_path})",
                                  note="nothing was written")  # fmt: skip

    def save_features(self, df: pd.DataFrame) -> None:
        """Write ``df`` to a temporary file beside the output, then rename it into place."""
        table = pa.Table.from_pandas(df, schema=FEATURES_SCHEMA, preserve_index=False)
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.output_path.with_name(f".{self.output_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.output_path)
        finally:
            tmp.unlink(missing_ok=True)

    def run(self) -> pd.DataFrame:
        self.log(f"Loading raw data from {self.raw_data_path}")
        raw = self.load_raw_data()
        self.log(f"Validating {len(raw):,} raw transactions")
        self.validate_raw_data(raw)
        self.log("Computing daily user feature snapshots")
        features = self.compute_user_features(raw)
        self.log(f"Validating {len(features):,} feature rows")
        self.validate_features(features)
        self.save_features(features)
        self.log(f"Saved {len(features):,} rows to {self.output_path}")
        return features


def main() -> None:
    parser = argparse.ArgumentParser(description="Raw transactions → user feature snapshots.")
    parser.add_argument("--raw", type=Path, default=RAW_TRANSACTIONS)
    parser.add_argument("--out", type=Path, default=USER_FEATURES)
    parser.add_argument("--history-days", type=int, default=None)
    args = parser.parse_args()
    try:
        FeatureEngineeringPipeline(args.raw, args.out, history_days=args.history_days).run()
    except DataQualityError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
