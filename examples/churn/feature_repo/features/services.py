"""The features the churn model reads, in one place for training and serving alike."""

from features.user_features import user_derived_features, user_features

from pitstop import FeatureService
from pitstop.definitions.feature_logging import FileLoggingDestination, LoggingConfig

churn_model_v1 = FeatureService(
    name="churn_model_v1",
    features=[
        user_features[
            ["total_purchases", "avg_purchase_amount", "days_since_last_purchase", "tenure_months"]
        ],
        user_derived_features,
    ],
    description="Inputs of the churn model (models/churn_model.pkl)",
    owner="data-science",
    # every vector served to the model is logged for `pitstop monitor` (in production a
    # sample is enough, e.g. sample_rate=0.1)
    logging_config=LoggingConfig(
        destination=FileLoggingDestination(path="data/feature_logs"), sample_rate=1.0
    ),
)
