"""Lineage from sources to models, saved datasets and models, registry versions; every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pitstop import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    on_demand_feature_view,
)
from pitstop.catalog.lineage import Node
from pitstop.definitions import Model, SavedDataset, SavedDatasetFileStorage
from pitstop.errors import DefinitionError, NotFoundError, RetrievalError
from pitstop.types import Float64, Int64
from test_feature_store import make_store, write_users

user = Entity(name="user", join_keys=["user_id"])
files = FileSource(name="users_file", path="data/users.parquet", timestamp_field="ts")
pushed = PushSource(name="users_push", batch_source=files)
users = FeatureView(
    name="users", entities=[user], ttl=timedelta(days=1000), source=pushed,
    schema=[Field(name="age", dtype=Int64), Field(name="score", dtype=Float64)],
)  # fmt: skip
extra = RequestSource(name="extra", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(sources=[users, extra], schema=[Field(name="boosted", dtype=Float64)])
def boosted(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"boosted": df["score"] + df["bonus"]})


service = FeatureService(name="churn", features=[users[["age"]], boosted])
OBJECTS = [user, users, boosted, service]


@pytest.fixture
def store(tmp_path: Path, registry_url: str, project_name: str) -> Iterator[FeatureStore]:
    write_users(tmp_path)
    with make_store(tmp_path, registry_url, project_name) as s:
        s.apply(OBJECTS)
        yield s


def ids(nodes: list[Node]) -> list[str]:
    return [n.id for n in nodes]


def train(store: FeatureStore, name: str = "churn_train") -> SavedDataset:
    when = datetime(2026, 2, 1, tzinfo=UTC)
    entity_df = pd.DataFrame(
        {"user_id": [1, 2], "bonus": [1.0, 2.0], "event_timestamp": [when] * 2}
    )
    job = store.get_historical_features(entity_df, service)
    storage = SavedDatasetFileStorage(path=f"data/{name}.parquet")
    return store.create_saved_dataset(from_=job, name=name, storage=storage, owner="ds")


def test_from_sources_to_models(store: FeatureStore) -> None:
    dataset = train(store)
    store.register_model("churn_xgb", service, training_datasets=[dataset], uri="s3://m/1")
    up = store.lineage("churn_xgb", direction="upstream")
    nearest = ids(up.upstream())
    assert set(nearest[:2]) == {"feature_service:churn", "saved_dataset:churn_train"}
    assert set(nearest[2:]) == {
        "feature_view:users", "on_demand_feature_view:boosted", "data_source:users_push",
        "entity:user", "data_source:extra", "data_source:users_file",
    }  # fmt: skip
    assert nearest[-1] == "data_source:users_file"  # the farthest
    assert up.downstream() == []
    down = store.lineage("users_file", direction="downstream")
    assert ids(down.downstream()) == [
        "data_source:users_push", "feature_view:users", "on_demand_feature_view:boosted",
        "feature_service:churn", "saved_dataset:churn_train", "model:churn_xgb",
    ]  # fmt: skip
    both = store.lineage("boosted")
    assert set(ids(both.upstream())) == {"feature_view:users", "data_source:extra",
                                         "data_source:users_push", "entity:user",
                                         "data_source:users_file"}  # fmt: skip
    assert ids(both.downstream()) == ["feature_service:churn", "saved_dataset:churn_train",
                                      "model:churn_xgb"]  # fmt: skip
    relations = {(e.source.name, e.target.name): e.relation for e in both.edges}
    assert relations[("users", "boosted")] == "input"
    assert relations[("churn_train", "churn_xgb")] == "trained on"


def test_saved_dataset_holds_the_rows_and_what_they_are(store: FeatureStore) -> None:
    dataset = train(store)
    stored = store.catalog.get(SavedDataset, "churn_train")
    assert stored == dataset
    assert stored.features == ("users:age", "boosted:boosted")
    assert (stored.feature_service, stored.join_keys, stored.owner) == ("churn", ("user_id",), "ds")
    table = pq.read_table(store.repo_path / "data/churn_train.parquet")
    assert table.num_rows == 2 and {"age", "boosted"} <= set(table.column_names)
    with pytest.raises(DefinitionError, match="already registered; choose another name"):
        train(store)
    with pytest.raises(DefinitionError, match="from_ must be the job"):
        store.create_saved_dataset(from_=object(), name="x",  # type: ignore[arg-type]
                                   storage=SavedDatasetFileStorage(path="x.parquet"))  # fmt: skip


def test_models_are_versioned_and_checked(store: FeatureStore) -> None:
    store.register_model("churn_xgb", "churn", author="alice")
    store.register_model("churn_xgb", "churn", uri="s3://m/2", author="bob")
    assert [r.author for r in store.history("churn_xgb")] == ["alice", "bob"]
    assert store.catalog.get(Model, "churn_xgb").uri == "s3://m/2"
    with pytest.raises(DefinitionError, match=r"reads feature service 'chrun', which is not "
                       r"registered\. Did you mean 'churn'"):  # fmt: skip
        store.register_model("m2", "chrun")
    with pytest.raises(DefinitionError, match="trained on saved dataset 'nope'"):
        store.register_model("m2", "churn", training_datasets=["nope"])


def test_a_whole_repo_apply_keeps_datasets_and_models(store: FeatureStore) -> None:
    train(store)
    store.register_model("churn_xgb", "churn", training_datasets=["churn_train"])
    changes = store.apply(OBJECTS, partial=False)
    assert all(c.action == "unchanged" for c in changes)
    assert [m.name for m in store.catalog.list(Model)] == ["churn_xgb"]
    # removing the service from the repo leaves the model pointing at a missing one
    store.apply([user, users, boosted], partial=False)
    graph = store.lineage("churn_xgb", direction="upstream")
    missing = [n for n in graph.nodes if n.missing]
    assert ids(missing) == ["feature_service:churn"]
    assert "[missing]" in graph.to_text()


def test_lineage_at_a_registry_version(store: FeatureStore) -> None:
    assert store.catalog.serial() == 1
    store.register_model("churn_xgb", "churn")  # registry version 2
    other = FeatureView(name="others", entities=[user], source=files,
                        schema=[Field(name="score", dtype=Float64)])  # fmt: skip
    store.apply([user, other, FeatureService(name="churn", features=[other])])  # version 3
    now = store.lineage("churn_xgb", direction="upstream")
    assert "feature_view:others" in ids(now.upstream()) and now.version == 3
    then = store.lineage("churn", direction="upstream", version=1)
    assert "feature_view:others" not in ids(then.upstream()) and then.version == 1
    assert "feature_view:users" in ids(then.upstream())
    with pytest.raises(NotFoundError, match=r"No object named 'churn_xgb' in the registry\."):
        store.lineage("churn_xgb", version=1)
    with pytest.raises(NotFoundError, match=r"no registry version 9; its versions are 1\.\.3"):
        store.lineage("churn", version=9)


def test_renderings(store: FeatureStore) -> None:
    graph = store.lineage("churn")
    dot = graph.to_dot()
    assert (
        dot.startswith("digraph lineage {")
        and '"feature_view:users" -> "feature_service:churn"' in dot
    )
    mermaid = graph.to_mermaid()
    assert mermaid.startswith("flowchart LR") and "-->|features|" in mermaid
    data = graph.to_dict()
    assert data["root"] == "feature_service:churn" and data["registry_version"] == 1
    assert {"source": "feature_view:users", "target": "feature_service:churn",
            "relation": "features"} in data["edges"]  # fmt: skip
    text = graph.to_text()
    assert text.splitlines()[0] == "churn (feature service), registry version 1"
    assert "downstream: (none)" in text


def test_lineage_mistakes(store: FeatureStore) -> None:
    store.apply([Entity(name="users", join_keys=["uid"])])
    with pytest.raises(RetrievalError, match=r"'users' names several objects \(entity, "
                       "feature_view\\); give the kind"):  # fmt: skip
        store.lineage("users")
    assert store.lineage("users", FeatureView).root.id == "feature_view:users"
    with pytest.raises(NotFoundError, match="Did you mean 'churn'"):
        store.lineage("chrun")
    with pytest.raises(RetrievalError, match="direction 'up' is not one of"):
        store.lineage("churn", direction="up")
