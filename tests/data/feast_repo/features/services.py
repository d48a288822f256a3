# What the ranking model reads; the first service also keeps a log of served features.

from feast import FeatureService
from feast.feature_logging import LoggingConfig
from feast.infra.offline_stores.file_source import FileLoggingDestination
from features.driver_stats import boosted_rate, hourly_metrics, live_metrics

ranking_v1 = FeatureService(
    name="driver_ranking_v1",
    features=[hourly_metrics[["trip_rate"]], boosted_rate],
    logging_config=LoggingConfig(destination=FileLoggingDestination(path="data/served")),
)

ranking_v2 = FeatureService(name="driver_ranking_v2", features=[live_metrics, boosted_rate])
