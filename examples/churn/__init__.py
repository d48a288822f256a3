"""The churn scenario of the pitstop tutorial, end to end (all of it: ``make demo``).

Run a step on its own from ``examples/``, e.g. ``python -m churn.pipeline``:

- ``data.py``      synthetic raw transactions, and churn labels derived from them
- ``pipeline.py``  batch feature pipeline: raw transactions → validated daily user features
- ``train.py``     labels + point-in-time features → a scikit-learn model
- ``app.py``       ``ModelWithFeatureStore`` and the FastAPI prediction service
- ``streaming.py`` push a customer's fresh features when they buy something
- ``feature_repo/`` the feature definitions (``pitstop apply`` registers them)

Files are read from and written to this folder by default (``data/``, ``models/``,
``feature_repo/data/``).
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW_TRANSACTIONS = HERE / "data" / "raw_transactions.parquet"
LABELS = HERE / "data" / "labels.parquet"
FEATURE_REPO = HERE / "feature_repo"
USER_FEATURES = FEATURE_REPO / "data" / "user_features.parquet"
MODEL = HERE / "models" / "churn_model.pkl"

# The model's inputs, listed once in the feature repo; training and serving both read it
FEATURE_SERVICE = "churn_model_v1"
