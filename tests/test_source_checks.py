"""`apply` and `plan` read each file source's schema first and report every problem at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    StreamFeatureView,
    on_demand_feature_view,
)
from pitstop.aggregation import Aggregation
from pitstop.config import parse_config
from pitstop.errors import DataSourceError, DefinitionError
from pitstop.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

TS = pa.timestamp("us", "UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
user = Entity(name="user", join_keys=["user_id"])
customer = Entity(name="customer", join_keys=["customer_id"])
events = FileSource(
    name="events",
    path="data/events.parquet",
    timestamp_field="ts",
    created_timestamp_column="created",
)


def write_events(repo: Path) -> None:
    (repo / "data").mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([T0, T0], TS),
            "created": pa.array([T0, T0], TS),
            "amount": pa.array([1.5, 2.5], pa.float64()),
            "small": pa.array([1, 2], pa.int32()),
            "label": pa.array(["a", "b"], pa.string()),
            "flag": pa.array([True, False]),
            "day": pa.array([1, 2], pa.int64()),
            "seen": pa.array([T0, T0], pa.timestamp("ns")),
            "tags": pa.array([["x"], []], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, repo / "data" / "events.parquet")


def view(name: str = "v", source: Any = events, **kwargs: Any) -> FeatureView:
    schema = kwargs.pop("schema", [Field(name="amount", dtype=Float64)])
    entities = kwargs.pop("entities", [user])
    return FeatureView(name=name, entities=entities, source=source, schema=schema, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    write_events(tmp_path)
    config = parse_config(
        {"project": "checks", "registry": "data/registry.db", "online_store": {"type": "memory"}},
        repo_path=tmp_path,
    )
    with FeatureStore(config=config) as s:
        yield s


def problems(store: FeatureStore, objects: list[Any]) -> str:
    """The message of the one error ``apply`` raises; checks nothing was written."""
    with pytest.raises(DataSourceError) as info:
        store.apply(objects)
    assert store.registry.store.serial() == 0
    assert store.list_feature_views(allow_cache=False) == []
    message = str(info.value)
    assert "--skip-source-validation" in message and "skip_source_validation=True" in message
    return message


ONE_PROBLEM = [
    (
        [view(source=FileSource(path="data/missing.parquet", timestamp_field="ts"))],
        r"feature view 'v': Source 'missing_source' points to '.*data/missing\.parquet', which "
        r"does not exist; fix the source's path or create the file\.",
    ),
    (
        [view(schema=[Field(name="amounts", dtype=Float64)])],
        r"feature view 'v': feature 'amounts' is not a column of data/events\.parquet "
        r"\(source 'events'\)\. Did you mean 'amount'\?",
    ),
    (
        [
            view(
                source=FileSource(
                    name="events", path="data/events.parquet", timestamp_field="event_ts"
                )
            )
        ],
        r"feature view 'v': timestamp field 'event_ts' is not a column of data/events\.parquet",
    ),
    (
        [
            view(
                source=FileSource(
                    name="events",
                    path="data/events.parquet",
                    timestamp_field="ts",
                    created_timestamp_column="created_at",
                )
            )
        ],
        r"feature view 'v': created timestamp column 'created_at' is not a column of "
        r"data/events\.parquet \(source 'events'\)\. Did you mean 'created'\?",
    ),
    (
        [customer, view(entities=[customer])],
        r"feature view 'v': join key 'customer_id' is not a column of data/events\.parquet",
    ),
    (
        [view(source=FileSource(name="events", path="data/events.parquet", timestamp_field="day"))],
        r"feature view 'v': timestamp field 'day' holds int64 in data/events\.parquet \(source "
        r"'events'\), which cannot hold timestamps; store timestamps, dates or ISO 8601 text",
    ),
    (
        [view(schema=[Field(name="label", dtype=Int64)])],
        r"feature view 'v': feature 'label' is declared Int64, but column 'label' of "
        r"data/events\.parquet \(source 'events'\) holds string; declare a dtype that can hold "
        r"it or convert the data",
    ),
    (
        [view(schema=[Field(name="amount", dtype=Int32)])],
        r"feature 'amount' is declared Int32, but column 'amount' .* holds double",
    ),
    (
        [view(schema=[Field(name="user_id", dtype=String), Field(name="amount", dtype=Float64)])],
        r"join key 'user_id' is declared String, but column 'user_id' .* holds int64",
    ),
    (
        [
            view(
                source=FileSource(
                    name="events",
                    path="data/events.parquet",
                    timestamp_field="ts",
                    field_mapping={"amt": "amount"},
                )
            )
        ],
        r"feature 'amount' \(mapped from 'amt'\) is not a column of data/events\.parquet",
    ),
]


@pytest.mark.parametrize(("objects", "expected"), ONE_PROBLEM)
def test_each_problem_is_named(store: FeatureStore, objects: list[Any], expected: str) -> None:
    message = problems(store, [user, *objects])
    assert message.startswith("1 problem with the repo's data sources:\n  - ")
    assert re.search(expected, message), message


def test_every_problem_is_reported_in_one_error(store: FeatureStore) -> None:
    gone = FileSource(path="data/gone.parquet", timestamp_field="ts")
    bad = view(schema=[Field(name="label", dtype=Int64), Field(name="nope", dtype=Float64)])
    message = problems(store, [user, bad, view("w", source=gone)])
    assert message.startswith("3 problems with the repo's data sources:")
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(lines) == 3
    assert "feature 'label' is declared Int64" in lines[0]
    assert "feature 'nope' is not a column" in lines[1]
    assert "feature view 'w': Source 'gone_source' points to" in lines[2]


def test_plan_reports_the_same_problems(store: FeatureStore) -> None:
    with pytest.raises(DataSourceError, match=r"feature 'label' is declared Int64"):
        store.plan([user, view(schema=[Field(name="label", dtype=Int64)])])


def test_skip_source_validation_from_python(store: FeatureStore) -> None:
    missing = view(source=FileSource(path="s3://unreachable/x.parquet", timestamp_field="ts"))
    planned = store.plan([user, missing], skip_source_validation=True)
    assert ("feature_view", "v", "create") in {(c.kind, c.name, c.action) for c in planned}
    store.apply([user, missing], skip_source_validation=True)
    assert [v.name for v in store.list_feature_views(allow_cache=False)] == ["v"]


def test_types_the_data_can_hold_pass(store: FeatureStore) -> None:
    fits = view(
        schema=[
            Field(name="user_id", dtype=Int64),
            Field(name="amount", dtype=Float32),  # float64 data, declared Float32
            Field(name="small", dtype=Int64),  # int32 widens
            Field(name="day", dtype=Float64),  # integers read as floats
            Field(name="label", dtype=String),
            Field(name="flag", dtype=Bool),
            Field(name="seen", dtype=UnixTimestamp),
            Field(name="tags", dtype=Array(String)),
        ]
    )
    req = RequestSource(name="req", schema=[Field(name="bonus", dtype=Float64)])

    @on_demand_feature_view(sources=[fits, req], schema=[Field(name="y", dtype=Float64)],
                            mode="python")  # fmt: skip
    def boosted(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"y": inputs["bonus"]}

    store.apply([user, fits, req, boosted])
    assert store.registry.store.serial() == 1


def test_timestamps_as_text_or_dates_pass(store: FeatureStore, tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"user_id": [1], "ts": ["2026-01-01T00:00:00Z"],
                  "created": pa.array([T0.date()], pa.date32()), "amount": [1.0]}),
        tmp_path / "data" / "text_ts.parquet",
    )  # fmt: skip
    source = FileSource(path="data/text_ts.parquet", timestamp_field="ts",
                        created_timestamp_column="created")  # fmt: skip
    store.apply([user, view(source=source)])


def test_push_source_is_checked_through_its_batch_source(
    store: FeatureStore, tmp_path: Path
) -> None:
    batch = FileSource(name="clicks", path="data/clicks.parquet", timestamp_field="ts")
    push = PushSource(name="clicks_push", batch_source=batch)
    clicks = view("clicks", source=push, schema=[Field(name="clicks", dtype=Int64)])
    store.apply([user, clicks])  # nothing pushed yet: no rows to check

    parts = tmp_path / "data" / "clicks.parquet.pushed"
    parts.mkdir()
    table = pa.table({"user_id": [1], "ts": pa.array([T0], TS), "clicks": ["many"]})
    pq.write_table(table, parts / "part-1.parquet")
    wider = view("clicks", source=push, schema=[Field(name="clicks", dtype=Int64)], ttl=None)
    expected = (
        r"feature 'clicks' is declared Int64, but column 'clicks' of data/clicks\.parquet "
        r"\(source 'clicks'\) holds string"
    )
    with pytest.raises(DataSourceError, match=expected):
        store.apply([user, wider])


def test_stream_view_checks_aggregated_columns(store: FeatureStore) -> None:
    push = PushSource(name="events_push", batch_source=events)

    def stream(column: str, function: str) -> StreamFeatureView:
        agg = Aggregation(column=column, function=function, time_window=timedelta(hours=1))
        return StreamFeatureView(name="s", entities=[user], source=push, aggregations=[agg],
                                 schema=[Field(name="out", dtype=Float64)])  # fmt: skip

    message = problems(store, [user, stream("amout", "sum")])
    assert "stream feature view 's': aggregated column 'amout' is not a column" in message
    message = problems(store, [user, stream("label", "mean")])
    assert "aggregation mean of 'label' needs numbers, but the column holds string" in message
    store.apply([user, stream("label", "count")])


def test_csv_header_and_sampled_types(store: FeatureStore, tmp_path: Path) -> None:
    csv = tmp_path / "data" / "events.csv"
    csv.write_text("user_id,ts,amount,code\n1,2026-01-01T00:00:00Z,1.5,007\n2,2026-01-02,2.5,010\n")
    source = FileSource(name="csv", path="data/events.csv", timestamp_field="ts")
    as_text = view(source=source, schema=[Field(name="code", dtype=String)])
    store.apply([user, as_text])  # CSV holds text: String reads any column
    wrong = view(source=source, schema=[Field(name="amount", dtype=Int64)])
    with pytest.raises(DataSourceError, match=r"'amount' of data/events\.csv \(source 'csv'\) "
                                              r"holds double"):  # fmt: skip
        store.apply([user, wrong])


def test_directory_source_with_hive_partitions(store: FeatureStore, tmp_path: Path) -> None:
    part = tmp_path / "data" / "parts" / "region=eu"
    part.mkdir(parents=True)
    pq.write_table(pa.table({"user_id": [1], "ts": pa.array([T0], TS), "n": [3]}),
                   part / "a.parquet")  # fmt: skip
    source = FileSource(name="parts", path="data/parts", timestamp_field="ts")
    ok = view(
        source=source, schema=[Field(name="n", dtype=Int64), Field(name="region", dtype=String)]
    )
    store.apply([user, ok])
    bad = view(source=source, schema=[Field(name="m", dtype=Int64)])
    with pytest.raises(DataSourceError, match=r"feature 'm' is not a column of data/parts"):
        store.apply([user, bad])


@pytest.mark.parametrize(
    ("kwargs", "role"),
    [
        ({"schema": [Field(name="ts", dtype=UnixTimestamp)]}, "the timestamp field"),
        ({"schema": [Field(name="created", dtype=UnixTimestamp)]}, "the created timestamp column"),
    ],
)
def test_feature_named_like_a_timestamp_column_is_rejected(
    store: FeatureStore, kwargs: dict[str, Any], role: str
) -> None:
    with pytest.raises(DefinitionError, match=rf"feature view 'v': feature '\w+' has the name of "
                       rf"{role} of the view; rename the feature"):  # fmt: skip
        store.apply([user, view(**kwargs)], skip_source_validation=True)
    assert store.registry.store.serial() == 0


def test_aggregation_named_like_a_join_key_is_rejected(store: FeatureStore) -> None:
    push = PushSource(name="events_push", batch_source=events)
    agg = Aggregation(column="amount", function="sum", time_window=timedelta(hours=1),
                      name="user_id")  # fmt: skip
    stream = StreamFeatureView(name="s", entities=[user], source=push, aggregations=[agg])
    with pytest.raises(DefinitionError, match=r"stream feature view 's': feature 'user_id' has "
                       r"the name of a join key of the view"):  # fmt: skip
        store.apply([user, stream])


# -- the command line ----------------------------------------------------------------------------

PITSTOP = str(Path(sys.executable).with_name("pitstop"))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([PITSTOP, *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_cli_plan_and_apply_report_and_skip(tmp_path: Path) -> None:
    assert run("init", "repo", "--users", "20", cwd=tmp_path).returncode == 0
    repo = tmp_path / "repo"
    path = repo / "data" / "user_features.parquet"
    table = pq.read_table(path).drop_columns(["tenure_months"])
    at = table.schema.get_field_index("customer_segment")
    table = table.set_column(at, "customer_segment", pa.array(range(table.num_rows)))
    pq.write_table(table, path)

    for command in ("plan", "apply"):
        proc = run(command, cwd=repo)
        assert proc.returncode == 1, proc.stdout
        assert proc.stderr.startswith("Error: 2 problems with the repo's data sources:")
        assert (
            "feature view 'user_features': feature 'tenure_months' is not a column" in proc.stderr
        )
        assert (
            "feature view 'user_features': feature 'customer_segment' is declared String, but "
            "column 'customer_segment' of data/user_features.parquet (source "
            "'user_features_source') holds int64" in proc.stderr
        )
        assert "--skip-source-validation" in proc.stderr and "Traceback" not in proc.stderr
    dump = run("registry-dump", cwd=repo)
    assert '"objects": {}' in dump.stdout  # the failed apply wrote nothing

    assert (
        "Will create feature view user_features"
        in run("plan", "--skip-source-validation", cwd=repo).stdout
    )
    applied = run("apply", "--skip-source-validation", cwd=repo)
    assert applied.returncode == 0, applied.stderr
    assert "Created feature view user_features" in applied.stdout


def test_checking_sources_does_not_import_duckdb(tmp_path: Path) -> None:
    write_events(tmp_path)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pitstop import Entity, FeatureView, Field, FileSource\n"
        "from pitstop.engine.sources import check_sources\n"
        "from pitstop.offline import DuckDBEngine\n"
        "from pitstop.types import Float64\n"
        "src = FileSource(path='data/events.parquet', timestamp_field='ts')\n"
        "v = FeatureView(name='v', entities=['user_id'], source=src,\n"
        "                schema=[Field(name='amount', dtype=Float64)])\n"
        f"check_sources([v], Path({str(tmp_path)!r}), DuckDBEngine())\n"
        "assert 'duckdb' not in sys.modules and 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
