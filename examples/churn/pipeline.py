"""Batch feature pipeline (tutorial section 6.1), made to run for real.

    raw transactions  →  one row of user features per user and day  →  user_features.parquet

Bad data stops the run before it can reach the feature store: the raw transactions are checked
before anything is computed and the features before anything is written. A failed check raises
:class:`DataValidationError`, which lists every problem — the column, how many rows, example
values — and nothing is written. When all checks pass the output file is replaced atomically
(written next to it, then renamed), so readers see the old file or the new one, never half.

Run from ``examples/``: ``python -m churn.pipeline`` reads ``churn/data/raw_transactions.parquet``
and writes ``churn/feature_repo/data/user_features.parquet``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import RAW_TRANSACTIONS, USER_FEATURES

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


@dataclass(frozen=True)
class Rule:
    """What one column must hold: a kind of value, no nulls, values within bounds."""

    column: str
    kind: str  # "integer", "number", "timestamp" or "text"
    nullable: bool = False
    min: Any = None
    max: Any = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Problem:
    """One failed check: which column, what is wrong, in how many rows, with examples."""

    column: str
    issue: str
    rows: int | None = None  # None: the whole column is wrong
    total: int = 0
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.rows is None:
            return f"{self.column}: {self.issue}"
        text = f"{self.column}: {self.rows:,} of {self.total:,} rows {self.issue}"
        return f"{text} (e.g. {'; '.join(self.examples)})" if self.examples else text


class DataValidationError(ValueError):
    """Data failed its checks; ``problems`` says where. The message is a readable report."""

    def __init__(self, what: str, problems: Sequence[Problem]) -> None:
        self.what = what
        self.problems = list(problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}"
        lines = [f"{what} failed validation ({count}); nothing was written:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def _is_integer(col: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(col.dtype):
        return True
    # integers with nulls among them often arrive as floats: fine while the values are whole
    return pd.api.types.is_float_dtype(col.dtype) and bool((col.dropna() % 1 == 0).all())


def _is_number(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)


def _is_timestamp(col: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(col.dtype)


def _is_text(col: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(col.dtype) or isinstance(col.dtype, pd.CategoricalDtype)


_KINDS: dict[str, Callable[[pd.Series], bool]] = {
    "integer": _is_integer,
    "number": _is_number,
    "timestamp": _is_timestamp,
    "text": _is_text,
}


def check(df: pd.DataFrame, rules: Sequence[Rule], *, key: str, examples: int = 3) -> list[Problem]:
    """Every rule broken by ``df``; examples name the row and its ``key`` value."""
    problems: list[Problem] = []
    total = len(df)

    def problem(column: str, issue: str, bad: pd.Series) -> Problem:
        rows = np.flatnonzero(bad.to_numpy(dtype=bool))
        shown = []
        for i in rows[:examples]:
            who = f"{key} {df[key].iloc[i]}" if key in df.columns and key != column else ""
            value = df[column].iloc[i]
            shown.append(f"row {i}{f' ({who})' if who else ''}: {_show(value)}")
        return Problem(column, issue, len(rows), total, tuple(shown))

    for rule in rules:
        if rule.column not in df.columns:
            problems.append(Problem(rule.column, "the column is missing"))
            continue
        col = df[rule.column]
        if not _KINDS[rule.kind](col):
            issue = f"the column holds {col.dtype} values, expected {rule.kind}"
            problems.append(Problem(rule.column, issue))
            continue
        null = col.isna()
        if not rule.nullable and null.any():
            problems.append(problem(rule.column, "are null", null))
        present = col.where(~null)
        below, above = ("before", "after") if rule.kind == "timestamp" else ("below", "above")
        if rule.min is not None and (low := (present < rule.min) & ~null).any():
            problems.append(problem(rule.column, f"are {below} {_show(rule.min)}", low))
        if rule.max is not None and (high := (present > rule.max) & ~null).any():
            problems.append(problem(rule.column, f"are {above} {_show(rule.max)}", high))
        if rule.allowed is not None and (odd := ~col.isin(rule.allowed) & ~null).any():
            allowed = ", ".join(rule.allowed)
            problems.append(problem(rule.column, f"are not one of {allowed}", odd))
    return problems


def _show(value: Any) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return repr(value.item() if isinstance(value, np.generic) else value)


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
    ) -> None:
        self.raw_data_path = Path(raw_data_path)
        self.output_path = Path(output_path)
        self.now = pd.Timestamp(now or datetime.now(UTC)).tz_convert(UTC).floor("s")
        self.history_days = history_days  # None: as far back as the raw data goes
        self.log = log or (lambda _: None)

    def raw_rules(self) -> list[Rule]:
        return [
            Rule("transaction_id", "integer"),
            Rule("user_id", "integer", min=1),
            Rule("transaction_amount", "number", min=0.01, max=100_000.0),
            Rule("transaction_timestamp", "timestamp", max=self.now),  # nothing from the future
        ]

    def feature_rules(self) -> list[Rule]:
        return [
            Rule("user_id", "integer", min=1),
            Rule("total_purchases", "integer", min=1),
            Rule("avg_purchase_amount", "number", min=0.0),
            Rule("days_since_last_purchase", "integer", min=0),
            Rule("tenure_months", "integer", min=0),
            Rule("customer_segment", "text", allowed=tuple(SEGMENTS)),
            Rule("event_timestamp", "timestamp", max=self.now),
            Rule("created_timestamp", "timestamp"),
        ]

    def load_raw_data(self) -> pd.DataFrame:
        df = pd.read_parquet(self.raw_data_path).reset_index(drop=True)
        ts = df.get("transaction_timestamp")
        if ts is not None and pd.api.types.is_datetime64_any_dtype(ts) and ts.dt.tz is None:
            df["transaction_timestamp"] = ts.dt.tz_localize(UTC)  # naive times are UTC
        return df

    def validate_raw_data(self, df: pd.DataFrame) -> None:
        problems = check(df, self.raw_rules(), key="transaction_id")
        if problems:
            raise DataValidationError(f"raw transactions ({self.raw_data_path})", problems)

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
        problems = check(df, self.feature_rules(), key="user_id")
        if problems:
            raise DataValidationError(f"user features (for {self.output_path})", problems)

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
    except DataValidationError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
