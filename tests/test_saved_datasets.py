"""Saved datasets with their recipe and profile: kept, described, and reproduced exactly from
the registry versions they were built with."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

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
from pitstop.definitions import SavedDataset, SavedDatasetFileStorage
from pitstop.errors import DefinitionError, NotFoundError
from pitstop.quality import profile
from pitstop.quality.fingerprint import fingerprint
from pitstop.registry.specs import canonical_hash
from pitstop.types import Float64, Int64, String
from test_feature_store import make_store

PITSTOP = str(Path(sys.executable).with_name("pitstop"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)

user = Entity(name="user", join_keys=["user_id"])
files = FileSource(name="users_file", path="data/users.parquet", timestamp_field="ts")
pushed = PushSource(name="users_push", batch_source=files)
extra = RequestSource(name="extra", schema=[Field(name="bonus", dtype=Float64)])


def users(ttl_days: int = 30) -> FeatureView:
    return FeatureView(name="users", entities=[user], ttl=timedelta(days=ttl_days), source=pushed,
                       schema=[Field(name="age", dtype=Int64), Field(name="score", dtype=Float64),
                               Field(name="tier", dtype=String)])  # fmt: skip


@on_demand_feature_view(sources=[users(), extra], schema=[Field(name="boosted", dtype=Float64)])
def boosted(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"boosted": df["score"] + df["bonus"]})


service = FeatureService(name="churn", features=[users()[["age", "tier"]], boosted])


def write_users(repo: Path, score_of_user_2: float = 0.25) -> None:
    (repo / "data").mkdir(exist_ok=True)
    pq.write_table(pa.table({
        "user_id": pa.array([1, 2, 3, 1], pa.int64()),
        "ts": pa.array([T0, T0, T0, T0 + timedelta(days=10)], pa.timestamp("us", "UTC")),
        "age": pa.array([30, 40, None, 31], pa.int64()),
        "score": pa.array([0.5, score_of_user_2, 0.75, 0.625], pa.float64()),
        "tier": ["gold", "silver", "gold", "gold"],
    }), repo / "data/users.parquet")  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, registry_url: str, project_name: str) -> Iterator[FeatureStore]:
    write_users(tmp_path)
    (tmp_path / "feature_store.yaml").write_text(
        yaml.safe_dump({"project": project_name, "registry": _registry(tmp_path, registry_url)})
    )
    with make_store(tmp_path, registry_url, project_name) as s:
        s.apply([user, users(), boosted, service])
        yield s


def _registry(root: Path, url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        return {"registry_type": "sql", "path": url, "cache_ttl_seconds": 60}
    return {"path": str(root / "registry.db"), "cache_ttl_seconds": 60}


ENTITIES = pd.DataFrame({
    "user_id": [1, 2, 3, 1, 4],
    "bonus": [1.0, 2.0, 3.0, 4.0, 5.0],
    "label": [0, 1, 0, 1, 1],
    "event_timestamp": [T0 + timedelta(days=d) for d in (5, 5, 40, 12, 5)],
})  # fmt: skip


def save(store: FeatureStore, name: str = "churn_train", features: Any = service) -> SavedDataset:
    job = store.get_historical_features(ENTITIES, features)
    storage = SavedDatasetFileStorage(path=f"data/{name}.parquet")
    return store.create_saved_dataset(from_=job, name=name, storage=storage)


def test_the_recipe_records_how_the_dataset_was_made(store: FeatureStore) -> None:
    dataset = save(store)
    recipe = dataset.recipe
    assert recipe is not None
    root = store.repo_path
    assert recipe["rows"] == 5 and recipe["format"] == 1
    assert recipe["pitstop_version"] == __import__("pitstop").__version__
    assert recipe["registry_version"] == store.registry.store.serial() - 1  # before the save
    objects = {(o["kind"], o["name"]): o["version"] for o in recipe["objects"]}
    assert objects == {("feature_view", "users"): 1, ("entity", "user"): 1,
                       ("data_source", "users_push"): 1, ("data_source", "users_file"): 1,
                       ("on_demand_feature_view", "boosted"): 1, ("data_source", "extra"): 1,
                       ("feature_service", "churn"): 1}  # fmt: skip
    rows = pq.read_table(root / "data/churn_train.parquet")
    assert recipe["content_hash"] == fingerprint(rows).digest
    assert set(recipe["column_hashes"]) == set(rows.column_names)
    entities = pq.read_table(root / "data/churn_train.entities.parquet")
    assert entities.column_names == ["user_id", "bonus", "label", "event_timestamp"]
    assert entities.column("label").to_pylist() == [0, 1, 0, 1, 1]
    assert recipe["entities"]["hash"] == fingerprint(entities).digest
    assert recipe["entities"]["path"] == "data/churn_train.entities.parquet"
    sidecar = root / recipe["profile"]["path"]
    assert json.loads(sidecar.read_text())["rows"] == 5
    assert "histogram" not in json.dumps(recipe)  # the profile stays out of the registry
    assert store.catalog.get(SavedDataset, "churn_train").recipe == recipe


def test_get_saved_dataset_reads_the_rows_and_the_profile(store: FeatureStore) -> None:
    save(store)
    found = store.get_saved_dataset("churn_train")
    df = found.to_df()
    assert list(df.columns) == ["user_id", "bonus", "label", "event_timestamp", "age", "tier",
                                "boosted"]  # fmt: skip
    assert df["age"].tolist()[:2] == [30, 40] and pd.isna(df["age"][2])
    assert found.name == "churn_train" and found.features == ("users:age", "users:tier",
                                                               "boosted:boosted")  # fmt: skip
    assert found.to_arrow().num_rows == 5 and found.entities().num_rows == 5
    prof = found.profile
    assert prof is not None and prof.rows == 5
    age = prof.columns["age"]
    assert (age.count, age.nulls, age.min, age.max) == (3, 2, 30, 40)  # user 3 too late, 4 unknown
    assert prof.columns["tier"].top == [{"value": "gold", "count": 2},
                                        {"value": "silver", "count": 1}]  # fmt: skip
    with pytest.raises(NotFoundError, match="saved dataset 'churn_trian' is not in the registry"):
        store.get_saved_dataset("churn_trian")


def test_reproduce_uses_the_recorded_versions_not_the_current_ones(store: FeatureStore) -> None:
    save(store)
    store.apply([users(ttl_days=1)])  # v2: most rows would now be too old
    current = store.get_historical_features(ENTITIES, service).to_arrow()
    saved = store.get_saved_dataset("churn_train").to_arrow()
    assert current.column("age").to_pylist() != saved.column("age").to_pylist()
    result = store.reproduce_saved_dataset("churn_train")
    assert result.identical, result.summary()
    assert result.summary() == (f"saved dataset 'churn_train' reproduced: 5 rows, identical "
                                f"(content hash {result.expected[:16]})")  # fmt: skip


def test_reproduce_says_what_differs_when_the_data_changed(store: FeatureStore) -> None:
    save(store, features=["users:score", "users:age"])
    write_users(store.repo_path, score_of_user_2=0.875)
    result = store.reproduce_saved_dataset("churn_train")
    assert not result.identical
    assert result.differences == ["score: 1 rows differ (first: row 1, saved 0.25, rebuilt 0.875)"]
    out = tmp = store.repo_path / "rebuilt.parquet"
    store.reproduce_saved_dataset("churn_train", output=out)
    assert pq.read_table(tmp).column("score").to_pylist()[1] == 0.875


def test_reproduce_notices_an_edited_file_and_missing_or_changed_entities(
    store: FeatureStore,
) -> None:
    save(store, features=["users:score"])
    root = store.repo_path
    rows = pq.read_table(root / "data/churn_train.parquet")
    pq.write_table(rows.slice(0, 4), root / "data/churn_train.parquet")
    result = store.reproduce_saved_dataset("churn_train")
    assert not result.identical and result.actual == result.expected  # the file was cut
    assert result.differences == [
        "the saved rows at data/churn_train.parquet were changed after the dataset was saved; "
        "the rebuild matches the recipe (write it back with --save data/churn_train.parquet)",
        "rows: 4 saved, 5 rebuilt",
    ]
    store.reproduce_saved_dataset("churn_train", output=root / "data/churn_train.parquet")
    assert store.reproduce_saved_dataset("churn_train").identical  # restored
    entities = root / "data/churn_train.entities.parquet"
    pq.write_table(pq.read_table(entities).slice(0, 2), entities)
    with pytest.raises(Exception, match=r"the entity frame .*churn_train\.entities\.parquet "
                       r"changed since the dataset was saved"):  # fmt: skip
        store.reproduce_saved_dataset("churn_train")
    entities.unlink()
    with pytest.raises(Exception, match=r"its entity frame .* is missing"):
        store.reproduce_saved_dataset("churn_train")


def test_a_dataset_without_recipe_keeps_its_spec_and_cannot_be_reproduced(
    store: FeatureStore,
) -> None:
    old = SavedDataset(name="legacy", features=["users:age"], join_keys=["user_id"],
                       storage=SavedDatasetFileStorage(path="data/legacy.parquet"))  # fmt: skip
    assert "recipe" not in old.to_spec()
    spec = old.to_spec()
    assert canonical_hash(SavedDataset.from_spec(spec).to_spec()) == canonical_hash(spec)
    store.catalog.apply([old])
    with pytest.raises(DefinitionError, match=r"saved dataset 'legacy' has no recipe"):
        store.reproduce_saved_dataset("legacy")
    assert store.get_saved_dataset("legacy").profile is None


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PITSTOP, *args], cwd=root, capture_output=True, text=True)


def test_the_datasets_commands(store: FeatureStore) -> None:
    save(store)
    root = store.repo_path
    listed = cli(root, "datasets", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"churn_train +│ +5 +│ +3 +│ +churn", listed.stdout), listed.stdout
    as_json = json.loads(cli(root, "datasets", "list", "-o", "json").stdout)
    assert as_json[0]["name"] == "churn_train" and as_json[0]["rows"] == 5
    described = json.loads(cli(root, "datasets", "describe", "churn_train", "-o", "json").stdout)
    assert described["dataset"]["recipe"]["rows"] == 5
    columns = {c["name"]: c for c in described["profile"]["columns"]}
    assert columns["boosted"]["mean"] == pytest.approx((1.5 + 2.25 + 4.625) / 3)
    as_yaml = yaml.safe_load(cli(root, "datasets", "describe", "churn_train", "-o", "yaml").stdout)
    assert as_yaml["profile"]["rows"] == 5
    table = cli(root, "datasets", "describe", "churn_train", "-o", "table").stdout
    assert "feature_view users v1" in table and "registry version" in table
    assert re.search(r"tier +│ +string +│ +3 +│ +40\.0% .* gold×2, silver×1", table), table
    done = cli(root, "datasets", "reproduce", "churn_train")
    assert done.returncode == 0, done.stderr
    assert "reproduced: 5 rows, identical" in done.stdout
    write_users(root, score_of_user_2=0.875)
    failed = cli(root, "datasets", "reproduce", "churn_train")
    assert failed.returncode == 1
    assert "differs from its rebuild" in failed.stdout and "boosted: 1 rows differ" in failed.stdout
    missing = cli(root, "datasets", "describe", "nope")
    assert (
        missing.returncode == 1 and "saved dataset 'nope' is not in the registry" in missing.stderr
    )


# --- content hashes and profiles --------------------------------------------------------------


def test_the_content_hash_ignores_batching_storage_types_and_bytes_under_nulls() -> None:
    table = pa.table({
        "a": [1, None, 3, 4], "s": ["x", None, "zz", ""], "l": [[1, 2], None, [], [3]],
        "st": [{"p": 1}, None, {"p": None}, {"p": 4}], "d": [1.5, None, 2.0, -0.0],
    })  # fmt: skip
    digest = fingerprint(table).digest
    assert fingerprint(pa.concat_tables([table.slice(0, 1), table.slice(1)])).digest == digest
    large = table.set_column(1, "s", table.column("s").cast(pa.large_string()))
    assert fingerprint(large).digest == digest
    dictionary = table.set_column(1, "s", table.column("s").dictionary_encode())
    assert fingerprint(dictionary).digest == digest
    garbage = pa.Array.from_buffers(pa.int64(), 4, [
        table.column("a").chunk(0).buffers()[0], pa.py_buffer(np.array([1, 99, 3, 4]).tobytes()),
    ])  # fmt: skip
    assert fingerprint(table.set_column(0, "a", garbage)).digest == digest
    for change in ({"a": [1, None, 3, 5]}, {"s": ["x", "", "zz", ""]}, {"l": [[1], [2], [], [3]]},
                   {"d": [1.5, None, 2.0, 0.5]}):  # fmt: skip
        [(name, values)] = change.items()
        other = table.set_column(table.column_names.index(name), name, pa.array(values))
        changed = fingerprint(other)
        assert changed.digest != digest
        assert [c for c in changed.columns if changed.columns[c] != fingerprint(table).columns[c]
                ] == [name]  # fmt: skip
    assert fingerprint(table.rename_columns(["b", "s", "l", "st", "d"])).digest != digest


def test_the_profile_of_every_kind_of_column() -> None:
    n = 2000
    data = pa.table({
        "n": pa.array(np.arange(n, dtype=np.int64)),
        "x": pa.array(np.where(np.arange(n) % 10 == 0, np.nan, np.arange(n) / 2), from_pandas=True),
        "s": pa.array(["a"] * 1000 + ["b"] * 600 + ["c"] * 399 + [None]),
        "f": pa.array([True] * 1500 + [False] * 500),
        "t": pa.array([T0 + timedelta(hours=h) for h in range(n)], pa.timestamp("us", "UTC")),
    })  # fmt: skip
    p = profile(data)
    assert p.rows == n
    c = p.columns["n"]
    assert (c.count, c.nulls, c.min, c.max) == (n, 0, 0, n - 1)
    assert c.mean == pytest.approx((n - 1) / 2)
    assert c.stddev == pytest.approx(float(np.std(np.arange(n), ddof=1)))
    assert c.quantiles == {"p05": pytest.approx(99.95), "p25": pytest.approx(499.75),
                           "p50": pytest.approx(999.5), "p75": pytest.approx(1499.25),
                           "p95": pytest.approx(1899.05)}  # fmt: skip
    assert c.histogram is not None and c.histogram["counts"] == [100] * 20
    assert c.histogram["edges"][0] == 0 and c.histogram["edges"][-1] == n - 1
    x = p.columns["x"]
    assert (x.nulls, x.null_rate) == (200, 0.1) and sum(x.histogram["counts"]) == 1800
    s = p.columns["s"]
    assert (s.distinct, s.nulls, s.top) == (3, 1, [{"value": "a", "count": 1000},
                                                   {"value": "b", "count": 600},
                                                   {"value": "c", "count": 399}])  # fmt: skip
    assert p.columns["f"].top == [{"value": True, "count": 1500}, {"value": False, "count": 500}]
    t = p.columns["t"]
    assert (t.min, t.max) == (T0, T0 + timedelta(hours=n - 1)) and t.mean is None
    again = type(p).from_dict(json.loads(json.dumps(p.to_dict())))
    assert again.columns["s"].top == s.top and again.rows == n
