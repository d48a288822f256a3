# A script kept next to the definitions, as Feast's template does; loading the repo imports it.

from datetime import UTC, datetime

from feast import FeatureStore
from feast.data_source import PushMode


def main() -> None:
    store = FeatureStore(repo_path=".")
    store.materialize_incremental(end_date=datetime.now(UTC))
    rows = [{"driver_id": 1001, "bonus": 1, "bonus_2": 2}]
    service = store.get_feature_service("driver_ranking_v1")
    print(store.get_online_features(features=service, entity_rows=rows).to_dict())
    print(PushMode.ONLINE_AND_OFFLINE)


if __name__ == "__main__":
    main()
