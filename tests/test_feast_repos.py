"""Feature repos written against Feast's API (``from feast import ...``) load unchanged, without
Feast installed; what pitstop does not support is reported all at once, naming file and line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from pitstop import FeatureStore, FeatureView, KafkaSource, Project
from pitstop.definitions.feature_logging import FileLoggingDestination, LoggingConfig
from pitstop.definitions.service import FeatureService
from pitstop.errors import DefinitionError, NotFoundError, RegistryError, RepoError
from pitstop.repo import load_repo

REPO = Path(__file__).parent / "data" / "feast_repo"
PITSTOP = Path(sys.executable).parent / "pitstop"
DRIVERS = (1001, 1002, 1003)

STATS_SCHEMA = pa.schema(
    [
        ("driver_id", pa.int64()),
        ("event_timestamp", pa.timestamp("ns", tz="UTC")),
        ("created", pa.timestamp("ns", tz="UTC")),
        ("trip_rate", pa.float32()),
        ("accept_rate", pa.float32()),
        ("daily_trips", pa.int64()),
        ("vehicle_tags", pa.map_(pa.string(), pa.string())),
        ("shift_config", pa.string()),
        ("profile", pa.struct([("name", pa.string()), ("city", pa.string())])),
    ]
)


def write_stats(path: Path, now: pd.Timestamp, *, unit: str = "ns") -> None:
    """Hourly rows for the last two days, written by pandas with tz-aware timestamp columns
    (``datetime64[ns, UTC]``, what pandas 2 produces from tz-aware datetimes)."""
    hours = range(48)
    frame = pd.DataFrame(
        [
            {
                "driver_id": d,
                "event_timestamp": now - pd.Timedelta(hours=h),
                "created": now - pd.Timedelta(hours=h) + pd.Timedelta(minutes=1),
                "trip_rate": d / 1000 + h / 100,
                "accept_rate": 0.5,
                "daily_trips": d + h,
                "vehicle_tags": [("colour", "red"), ("hour", str(h))],
                "shift_config": json.dumps({"starts_at": h}),
                "profile": {"name": f"driver {d}", "city": "Porto"},
            }
            for d in DRIVERS
            for h in hours
        ]
    )
    for col in ("event_timestamp", "created"):
        frame[col] = frame[col].astype(f"datetime64[{unit}, UTC]")
    schema = STATS_SCHEMA
    if unit != "ns":
        for col in ("event_timestamp", "created"):
            i = schema.get_field_index(col)
            schema = schema.set(i, pa.field(col, pa.timestamp(unit, tz="UTC")))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, schema=schema, index=False)


@pytest.fixture
def now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("min")


@pytest.fixture
def feast_repo(tmp_path: Path, now: pd.Timestamp) -> Path:
    """A copy of the Feast-style repo with its hourly statistics written next to it."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    write_stats(repo / "data" / "driver_stats.parquet", now)
    return repo


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, check=False)


def test_apply_through_the_cli_without_feast_installed(feast_repo: Path) -> None:
    before = digests(feast_repo)
    script = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('feast') is None, 'feast must not be installed'\n"
        "from pitstop.cli.main import main\n"
        "rc = main(['apply'])\n"
        "assert 'feast' not in sys.modules\n"
        "sys.exit(rc)\n"
    )
    applied = run([sys.executable, "-c", script], feast_repo)
    assert applied.returncode == 0, applied.stderr
    for line in (
        "Created project fleet_stats",
        "Created entity driver",
        "Created data source driver_trips_topic",
        "Created feature view driver_hourly_metrics",
        "Created on-demand feature view boosted_rate",
        "Created feature service driver_ranking_v1",
    ):
        assert line in applied.stdout

    sources = run([str(PITSTOP), "data-sources", "list"], feast_repo)
    assert "driver_trips_topic" in sources.stdout and "kafka" in sources.stdout
    assert "driver_trips" in sources.stdout  # the topic
    projects = run([str(PITSTOP), "projects", "list"], feast_repo)
    assert "fleet_stats" in projects.stdout and "Delivery driver statistics" in projects.stdout
    views = run([str(PITSTOP), "feature-views", "describe", "driver_hourly_metrics"], feast_repo)
    spec = json.loads(views.stdout)
    assert spec["enable_validation"] is True
    assert [f["dtype"] for f in spec["schema"][3:]] == [
        "Map",
        "Json",
        'Struct({"name": String, "city": String})',
    ]
    service = run([str(PITSTOP), "feature-services", "describe", "driver_ranking_v1"], feast_repo)
    assert json.loads(service.stdout)["logging_config"]["destination"]["path"] == "data/served"

    # the user's files are untouched; only the registry and online store were added, in data/
    after = digests(feast_repo)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == ["data/online_store.db", "data/registry.db"]


def test_plan_after_apply_shows_no_changes(feast_repo: Path) -> None:
    assert run([str(PITSTOP), "apply"], feast_repo).returncode == 0
    planned = run([str(PITSTOP), "plan"], feast_repo)
    assert planned.returncode == 0, planned.stderr
    assert "No changes" in planned.stdout


def apply_repo(repo: Path) -> FeatureStore:
    store = FeatureStore(repo_path=repo)
    store.apply(list(load_repo(repo, project=store.project).all()), partial=False)
    return store


def test_loading_leaves_no_feast_module_behind() -> None:
    sentinel = types.ModuleType("feast")  # stands for an installed Feast imported earlier
    sys.modules["feast"] = sentinel
    try:
        contents = load_repo(REPO)
        assert sys.modules["feast"] is sentinel
        assert not [k for k in sys.modules if k.startswith("feast.")]
    finally:
        del sys.modules["feast"]
    assert "feast" not in sys.modules
    load_repo(REPO)
    assert "feast" not in sys.modules
    view = contents.objects["feature_view"]["driver_hourly_metrics"]
    assert isinstance(view, FeatureView)  # pitstop's own class, not a stand-in
    assert isinstance(contents.objects["data_source"]["driver_trips_topic"], KafkaSource)
    assert isinstance(contents.objects["project"]["fleet_stats"], Project)
    service = contents.objects["feature_service"]["driver_ranking_v1"]
    assert isinstance(service, FeatureService)
    assert service.logging_config == LoggingConfig(
        destination=FileLoggingDestination(path="data/served")
    )


def test_training_set_and_online_read_from_pandas_written_parquet(
    feast_repo: Path, now: pd.Timestamp
) -> None:
    with apply_repo(feast_repo) as store:
        check_training_and_online(store, now)


def test_training_set_and_online_read_with_map_json_and_struct(
    feast_repo: Path, now: pd.Timestamp
) -> None:
    write_stats(feast_repo / "data" / "driver_stats.parquet", now, unit="us")
    with apply_repo(feast_repo) as store:
        check_training_and_online(store, now)


def check_training_and_online(store: FeatureStore, now: pd.Timestamp) -> None:
    entity_df = pd.DataFrame(
        {
            "driver_id": list(DRIVERS),
            "event_timestamp": [now - pd.Timedelta(hours=2, minutes=30)] * 3,
            "bonus": [1, 2, 3],
            "bonus_2": [10, 20, 30],
            "satisfaction": [5, 3, 4],
        }
    )
    training = store.get_historical_features(
        entity_df,
        features=[
            "driver_hourly_metrics:trip_rate",
            "driver_hourly_metrics:shift_config",
            "driver_hourly_metrics:profile",
            "boosted_rate:trip_rate_plus_bonus",
        ],
    ).to_df()
    # the row of three hours ago is the latest at or before the entity timestamp
    expected = [d / 1000 + 0.03 for d in DRIVERS]
    assert training["trip_rate"].tolist() == pytest.approx(expected, rel=1e-6)
    assert training["trip_rate_plus_bonus"].tolist() == pytest.approx(
        [e + b for e, b in zip(expected, (1, 2, 3), strict=True)], rel=1e-6
    )
    assert training["shift_config"].tolist() == ['{"starts_at": 3}'] * 3
    assert training["profile"].tolist()[0] == {"name": "driver 1001", "city": "Porto"}
    assert training["satisfaction"].tolist() == [5, 3, 4]

    store.materialize_incremental(end_date=datetime.now(UTC))
    online = store.get_online_features(
        features=store.get_feature_service("driver_ranking_v1"),
        entity_rows=[{"driver_id": 1002, "bonus": 1, "bonus_2": 2}],
    ).to_dict()
    assert online["trip_rate"][0] == pytest.approx(1.002, rel=1e-6)
    assert online["trip_rate_plus_bonus_2"][0] == pytest.approx(3.002, rel=1e-6)
    typed = store.get_online_features(
        features=[
            "driver_hourly_metrics:vehicle_tags",
            "driver_hourly_metrics:shift_config",
            "driver_hourly_metrics:profile",
        ],
        entity_rows=[{"driver_id": 1003}, {"driver_id": 42}],
    )
    values = typed.to_dict()
    assert values["vehicle_tags"] == [{"colour": "red", "hour": "0"}, None]
    assert values["shift_config"] == ['{"starts_at": 0}', None]
    assert values["profile"] == [{"name": "driver 1003", "city": "Porto"}, None]
    table = typed.to_arrow()
    assert table.schema.field("vehicle_tags").type == pa.map_(pa.string(), pa.string())
    assert table.schema.field("profile").type == STATS_SCHEMA.field("profile").type


def test_pushing_to_a_kafka_source_says_it_is_definition_only(feast_repo: Path) -> None:
    with apply_repo(feast_repo) as store:
        rows = pd.DataFrame({"driver_id": [1001], "event_timestamp": [datetime.now(UTC)]})
        with pytest.raises(NotFoundError) as info:
            store.push("driver_trips_topic", rows)
    message = str(info.value)
    assert "KafkaSource 'driver_trips_topic' is kept as a definition only" in message
    assert "PushSource" in message and "store.push" in message


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    (root / "feature_store.yaml").write_text("project: fleet\n", encoding="utf-8")
    return root


WAREHOUSE = """
from datetime import timedelta

from feast import BigQuerySource, Entity, FeatureView, Field
from feast.types import Float32

driver = Entity(name="driver", join_keys=["driver_id"])
trips = BigQuerySource(table="fleet.trips", timestamp_field="ts")
trip_stats = FeatureView(
    name="trip_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[Field(name="rate", dtype=Float32)],
    source=trips,
)
ranked = trip_stats[["rate"]]
"""

LABELS = """
from feast import Entity, Field
from feast.types import Set, String

rider = Entity(name="rider", join_keys=["rider_id"])
tags = Field(name="tags", dtype=Set(String))
embedding = Field(name="embedding", dtype=String, vector_index=True)
"""


def test_unsupported_constructs_of_all_files_are_reported_in_one_error(tmp_path: Path) -> None:
    repo = write_files(tmp_path, {"features/warehouse.py": WAREHOUSE, "labels.py": LABELS})
    before = digests(repo)
    with pytest.raises(RepoError) as info:
        load_repo(repo)
    message = str(info.value)
    assert message.startswith("the feature repo has 3 problems; fix them all and run again:")
    assert (
        "features/warehouse.py, line 7: BigQuerySource (feast.BigQuerySource) is not supported "
        "by pitstop; export the data to Parquet or CSV files and read them with "
        "FileSource(path=...)"
    ) in message
    assert (
        "labels.py, line 5: Set (feast.types.Set) is not supported by pitstop; use Array(...)"
    ) in message
    assert "labels.py, line 6: Field(vector_index=...) is not supported by pitstop; " in message
    assert "FeatureView" not in message  # the view built on the stand-in is not a second problem
    assert digests(repo) == before  # nothing written into the repo (no __pycache__ either)
    assert "feast" not in sys.modules


def test_the_cli_reports_every_problem_and_exits_1(tmp_path: Path) -> None:
    repo = write_files(tmp_path, {"features/warehouse.py": WAREHOUSE, "labels.py": LABELS})
    planned = run([str(PITSTOP), "plan"], repo)
    assert planned.returncode == 1
    assert "features/warehouse.py, line 7: BigQuerySource" in planned.stderr
    assert "labels.py, line 5: Set (feast.types.Set)" in planned.stderr


def test_an_ordinary_error_is_listed_with_the_unsupported_constructs(tmp_path: Path) -> None:
    repo = write_files(
        tmp_path,
        {
            "a.py": "from feast import Entity\nbad = Entity(name='a b')\n",
            "b.py": "from feast.infra.offline_stores.contrib.spark_source import SparkSource\n"
            "src = SparkSource(table='t')\n",
        },
    )
    with pytest.raises(RepoError) as info:
        load_repo(repo)
    message = str(info.value)
    assert "the feature repo has 2 problems" in message
    assert "cannot load a.py: DefinitionError: Entity 'a b'" in message
    assert (
        "b.py, line 2: SparkSource (feast.infra.offline_stores.contrib.spark_source.SparkSource)"
    ) in message


def test_a_misspelt_feast_name_suggests_the_right_one(tmp_path: Path) -> None:
    repo = write_files(tmp_path, {"a.py": "from feast import Entitty\nx = Entitty(name='x')\n"})
    expected = (
        r"a.py, line 2: Entitty \(feast.Entitty\) is not supported by pitstop; check the name. "
        r"Did you mean 'Entity'\?"
    )
    with pytest.raises(RepoError, match=expected):
        load_repo(repo)


def test_unused_unsupported_imports_are_not_problems(tmp_path: Path) -> None:
    repo = write_files(
        tmp_path,
        {"a.py": "from feast import BigQuerySource, Entity\nuser = Entity(name='user')\n"},
    )
    assert list(load_repo(repo).objects["entity"]) == ["user"]


def test_a_project_must_match_feature_store_yaml(tmp_path: Path) -> None:
    repo = write_files(tmp_path, {"a.py": "from feast import Project\np = Project(name='other')\n"})
    with pytest.raises(RepoError, match=r"Project 'other' in a.py is not the project 'fleet' of "
                       r"feature_store.yaml; give both the same name"):  # fmt: skip
        load_repo(repo, project="fleet")


def test_feast_classes_work_with_isinstance_and_subclassing(tmp_path: Path) -> None:
    repo = write_files(
        tmp_path,
        {
            "a.py": """
            import feast
            from feast import Entity
            from feast.infra.offline_stores import file_source

            class TeamEntity(Entity):
                pass

            user = TeamEntity(name="user")
            assert isinstance(user, Entity) and isinstance(user, feast.Entity)
            src = file_source.FileSource(path="data/u.parquet", timestamp_field="ts")
            """
        },
    )
    contents = load_repo(repo)
    assert list(contents.objects["entity"]) == ["user"]
    assert list(contents.objects["data_source"]) == ["u_source"]


def test_a_stand_in_used_after_loading_is_an_error_at_once(tmp_path: Path) -> None:
    repo = write_files(tmp_path, {"a.py": "from feast import LabelView\n"})
    load_repo(repo)
    module = sys.modules["a"]
    expected = (
        r"LabelView \(feast.LabelView\) is not supported by pitstop; keep labels as extra "
        r"columns of the entity DataFrame"
    )
    with pytest.raises(DefinitionError, match=expected):
        module.LabelView(name="labels")


def test_a_registry_file_feast_wrote_is_named_with_the_way_out(feast_repo: Path) -> None:
    registry = feast_repo / "data" / "registry.db"
    registry.write_bytes(b"\x0a\x1b\x12\x05" + b"protobuf registry of another tool" * 8)
    before = registry.read_bytes()
    with pytest.raises(RegistryError) as info:
        FeatureStore(repo_path=feast_repo).list_feature_views()
    message = str(info.value)
    assert f"The registry (SQLite file '{registry}') is not a SQLite database" in message
    assert "Point `registry:` in feature_store.yaml at another file" in message
    assert registry.read_bytes() == before  # left as it was
