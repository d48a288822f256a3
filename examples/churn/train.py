"""Train the churn model on point-in-time correct features (tutorial section 4.2).

Each label row says whether a customer churned after a moment ``event_timestamp``.
``get_historical_features`` joins to every row the features *as they were at that moment* — the
latest daily snapshot at or before it — so the model never learns from the future.

Run from ``examples/``, after ``pitstop apply`` in ``churn/feature_repo/``:
``python -m churn.train`` reads ``churn/data/labels.parquet`` and writes the model to
``churn/models/churn_model.pkl``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from pitstop import FeatureStore

from . import FEATURE_REPO, FEATURE_SERVICE, LABELS, MODEL

LABEL = "churned"


def training_set(store: FeatureStore, labels: pd.DataFrame) -> pd.DataFrame:
    """``labels`` (user_id, event_timestamp, churned) with the service's features joined."""
    service = store.get_feature_service(FEATURE_SERVICE)
    return store.get_historical_features(entity_df=labels, features=service).to_df()


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model and how well it does on customers it has not seen."""

    model: Pipeline
    features: list[str]
    train_rows: int
    test_rows: int
    dropped_rows: int  # label rows with no features yet (before the customer's first snapshot)
    roc_auc: float
    accuracy: float
    baseline_accuracy: float  # always predicting the most common class

    def weights(self) -> dict[str, float]:
        """The logistic regression's weight per (standardised) feature: + means more churn."""
        coef = self.model[-1].coef_[0]
        return dict(zip(self.features, (float(c) for c in coef), strict=True))


def train_model(training_df: pd.DataFrame, *, seed: int = 0) -> TrainedModel:
    """Fit a logistic regression and score it on a quarter of the customers, held out."""
    features = [c for c in training_df.columns if c not in ("user_id", "event_timestamp", LABEL)]
    complete = training_df.dropna(subset=features)
    # pitstop keeps integer features with nulls as nullable Int64; the model wants floats
    x = complete[features].astype("float64")
    y = complete[LABEL].astype("int64")
    # Hold out whole customers, so no customer is in both the training and the test rows
    split = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
    train, test = next(split.split(x, y, groups=complete["user_id"]))

    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(x.iloc[train], y.iloc[train])
    churn_probability = model.predict_proba(x.iloc[test])[:, 1]
    y_test = y.iloc[test]
    return TrainedModel(
        model=model,
        features=features,
        train_rows=len(train),
        test_rows=len(test),
        dropped_rows=len(training_df) - len(complete),
        roc_auc=float(roc_auc_score(y_test, churn_probability)),
        accuracy=float(accuracy_score(y_test, churn_probability >= 0.5)),
        baseline_accuracy=float(max(y_test.mean(), 1 - y_test.mean())),
    )


def save_model(model: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the churn model.")
    parser.add_argument("--repo", type=Path, default=FEATURE_REPO)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--model", type=Path, default=MODEL)
    args = parser.parse_args()
    with FeatureStore(repo_path=args.repo) as store:
        df = training_set(store, pd.read_parquet(args.labels))
    print(f"Training set: {df.shape[0]:,} rows x {df.shape[1]} columns")
    trained = train_model(df)
    save_model(trained.model, args.model)
    print(
        f"ROC AUC {trained.roc_auc:.3f}, accuracy {trained.accuracy:.3f} "
        f"(baseline {trained.baseline_accuracy:.3f}) on {trained.test_rows:,} held-out rows"
    )
    print(f"Model saved to {args.model}")


if __name__ == "__main__":
    main()
