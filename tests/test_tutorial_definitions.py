"""The tutorial's definition code (sections 3.1 and 3.2) runs with `feast` replaced by `pitstop`.

The code is taken from the seed tutorial when it is next to the repo (``../shared/seed``), and
always from the verbatim copies in ``tests/data/tutorial`` (for clones without the seed). One
edit is allowed in the copies: the tutorial's second file uses ``user`` without importing it, so
``from features.user_features import user`` is added after its imports.
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from pitstop import (
    Entity,
    FeatureView,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    StreamFeatureView,
    ValueType,
)
from pitstop.definitions.feature_view import Projection
from pitstop.definitions.serde import from_spec, kind_of
from pitstop.repo import RepoContents, load_repo
from pitstop.types import Float32, Int64, String

SEED = Path(__file__).parents[2] / "shared/seed/feature-store-tutorial.ko.md"
COPIES = Path(__file__).parent / "data/tutorial"
USER_FILE = "features/user_features.py"
TXN_FILE = "features/transaction_features.py"
ADDED_IMPORT = "from features.user_features import user\n"
IMPORT_ANCHOR = "from datetime import timedelta\n"  # the added import goes right after it


def _seed_text() -> str:
    if not SEED.exists():
        pytest.skip(f"the seed tutorial is not at {SEED} (a clone without ../shared)")
    return SEED.read_text(encoding="utf-8")


def _code_block(markdown: str, heading: str, language: str) -> str:
    """The first ``language`` code block after ``heading``."""
    start = markdown.index(heading)
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(markdown, start)
    assert match is not None, f"no {language} block after {heading!r}"
    return match.group(1)


def _as_pitstop(code: str) -> str:
    return re.sub(r"\bfeast\b", "pitstop", code)


def _add_user_import(code: str) -> str:
    assert code.count(IMPORT_ANCHOR) == 1
    return code.replace(IMPORT_ANCHOR, IMPORT_ANCHOR + ADDED_IMPORT)


def seed_files() -> dict[str, str]:
    """The repo files as the seed tutorial has them (feast -> pitstop, plus the one import)."""
    markdown = _seed_text()
    return {
        "feature_store.yaml": _code_block(markdown, "### 2.3 ", "yaml"),
        USER_FILE: _as_pitstop(_code_block(markdown, "### 3.1 ", "python")),
        TXN_FILE: _add_user_import(_as_pitstop(_code_block(markdown, "### 3.2 ", "python"))),
    }


def copied_files() -> dict[str, str]:
    return {
        name: (COPIES / name).read_text(encoding="utf-8")
        for name in ("feature_store.yaml", USER_FILE, TXN_FILE)
    }


def test_copies_are_verbatim() -> None:
    seed, copies = seed_files(), copied_files()
    assert copies == seed
    assert copies[TXN_FILE].replace(ADDED_IMPORT, "", 1) == _as_pitstop(
        _code_block(_seed_text(), "### 3.2 ", "python")
    )
    assert "feast" not in copies[USER_FILE] + copies[TXN_FILE]


def test_the_tutorial_needs_the_added_import(tmp_path: Path) -> None:
    """Without the import the tutorial's second file fails, and the error names it."""
    from pitstop.errors import RepoError

    files = copied_files()
    files[TXN_FILE] = files[TXN_FILE].replace(ADDED_IMPORT, "")
    _write(tmp_path, files)
    with pytest.raises(RepoError, match=r"cannot load features/transaction_features\.py: "):
        load_repo(tmp_path)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


@pytest.fixture(params=["seed", "copy"])
def tutorial(request: pytest.FixtureRequest, tmp_path: Path) -> RepoContents:
    files = seed_files() if request.param == "seed" else copied_files()
    _write(tmp_path, files)
    return load_repo(tmp_path)


def test_every_object_constructs(tutorial: RepoContents) -> None:
    found = {(kind, name) for kind, by_name in tutorial.objects.items() for name in by_name}
    assert found == {
        ("entity", "user_id"),
        ("data_source", "user_features_source"),
        ("data_source", "transactions_source"),
        ("data_source", "transaction_push_source"),
        ("feature_view", "user_features"),
        ("feature_view", "transaction_features"),
        ("stream_feature_view", "transaction_streaming_features"),
        ("on_demand_feature_view", "user_derived_features"),
    }
    assert tutorial.origins[("entity", "user_id")] == USER_FILE
    assert tutorial.origins[("stream_feature_view", "transaction_streaming_features")] == TXN_FILE


def test_every_object_round_trips_through_json(tutorial: RepoContents) -> None:
    for obj in tutorial.all():
        kind = kind_of(obj)
        assert from_spec(kind, json.loads(json.dumps(obj.to_spec()))) == obj, (kind, obj.name)


def test_user_entity(tutorial: RepoContents) -> None:
    user = tutorial.objects["entity"]["user_id"]
    assert isinstance(user, Entity)
    assert user.join_keys == ("user_id",)
    assert user.value_type is ValueType.INT64
    assert user.description == "Customer ID"


def test_user_features(tutorial: RepoContents) -> None:
    view = tutorial.objects["feature_view"]["user_features"]
    assert isinstance(view, FeatureView)
    assert [(f.name, f.dtype) for f in view.features] == [
        ("total_purchases", Int64),
        ("avg_purchase_amount", Float32),
        ("days_since_last_purchase", Int64),
        ("customer_segment", String),
        ("tenure_months", Int64),
    ]
    assert view.join_keys == ("user_id",)
    assert view.ttl == timedelta(days=1)
    assert view.online is True
    assert view.tags == {"team": "ml-platform", "owner": "data-science"}
    source = view.batch_source
    assert (source.path, source.file_format) == ("data/user_features.parquet", "parquet")
    assert (source.timestamp_field, source.created_timestamp_column) == (
        "event_timestamp",
        "created_timestamp",
    )


def test_on_demand_view(tutorial: RepoContents) -> None:
    view = tutorial.objects["on_demand_feature_view"]["user_derived_features"]
    assert isinstance(view, OnDemandFeatureView)
    assert [(f.name, f.dtype) for f in view.features] == [
        ("purchase_frequency", Float32),
        ("is_high_value", Int64),
    ]
    assert view.sources == (Projection(name="user_features"),)
    assert view.request_sources == ()
    assert view.mode == "pandas"
    assert view.description == "실시간 계산 피처"
    assert view.udf_imports == "import pandas as pd"


def test_on_demand_function_runs_after_a_round_trip(tutorial: RepoContents) -> None:
    view = tutorial.objects["on_demand_feature_view"]["user_derived_features"]
    rebuilt = from_spec("on_demand_feature_view", json.loads(view.to_json()))
    assert isinstance(rebuilt, OnDemandFeatureView)
    inputs = pd.DataFrame(
        {"total_purchases": [10, 3], "tenure_months": [5, 0], "avg_purchase_amount": [150.0, 50.0]}
    )
    out = rebuilt.udf(inputs)
    assert out["purchase_frequency"].tolist() == [2.0, math.inf]
    assert out["is_high_value"].tolist() == [1, 0]
    pd.testing.assert_frame_equal(out, view.udf(inputs))


def test_transaction_features(tutorial: RepoContents) -> None:
    view = tutorial.objects["feature_view"]["transaction_features"]
    assert isinstance(view, FeatureView)
    assert [(f.name, f.dtype) for f in view.features] == [
        ("transaction_amount", Float32),
        ("transaction_count_7d", Int64),
        ("avg_transaction_7d", Float32),
    ]
    assert view.join_keys == ("user_id",)
    assert view.ttl == timedelta(days=7)
    assert view.timestamp_field == "transaction_timestamp"


def test_stream_view(tutorial: RepoContents) -> None:
    view = tutorial.objects["stream_feature_view"]["transaction_streaming_features"]
    assert isinstance(view, StreamFeatureView)
    assert [(f.name, f.dtype) for f in view.features] == [
        ("transaction_count_1h", Int64),
        ("total_amount_1h", Float32),
    ]
    assert view.timestamp_field == "transaction_timestamp"
    assert view.join_keys == ("user_id",)
    assert view.ttl == timedelta(hours=1)
    assert [(a.column, a.function, a.time_window) for a in view.aggregations] == [
        ("transaction_amount", "count", timedelta(hours=1)),
        ("transaction_amount", "sum", timedelta(hours=1)),
    ]


def test_push_source_batch_source_is_the_transaction_file(tutorial: RepoContents) -> None:
    sources = tutorial.objects["data_source"]
    push = sources["transaction_push_source"]
    transactions = sources["transactions_source"]
    assert isinstance(push, PushSource)
    assert isinstance(transactions, FileSource)
    assert push.batch_source is transactions
    assert transactions.path == "data/transactions.parquet"
    assert tutorial.objects["stream_feature_view"]["transaction_streaming_features"].source is push
