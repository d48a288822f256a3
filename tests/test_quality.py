"""Expectations: declared with views, stored in their specs, checked in DuckDB, reported as
text, JSON and HTML, and enforced on push, write_to_online_store and materialize."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pitstop
import pitstop.quality
from pitstop import (
    Aggregation,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    StreamFeatureView,
    ValueType,
    between,
    freshness,
    in_set,
    matches,
    max_null_rate,
    not_in_future,
    not_null,
    of_type,
    row_count,
    unique,
)
from pitstop.config import parse_config
from pitstop.errors import DataQualityError, DefinitionError
from pitstop.quality import validate
from pitstop.registry.specs import canonical_hash
from pitstop.types import Float64, Int64, String
from test_push_values import STORES, _online
from test_server import thread_server

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PITSTOP = str(Path(sys.executable).with_name("pitstop"))

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
scores_file = FileSource(name="scores_file", path="data/scores.parquet", timestamp_field="ts")
scores_push = PushSource(name="scores_push", batch_source=scores_file)
SCHEMA = [Field(name="count", dtype=Int64), Field(name="rate", dtype=Float64),
          Field(name="label", dtype=String)]  # fmt: skip
RULES = [not_null("count"), between("rate", 0, 1), in_set("label", ["a", "b"])]


def scores(policy: str | None = "reject", rules: list[Any] | None = None) -> FeatureView:
    return FeatureView(name="scores", entities=[user], ttl=timedelta(days=1), source=scores_push,
                       schema=SCHEMA, expectations=RULES if rules is None else rules,
                       expectation_policy=policy)  # fmt: skip


# --- definitions -----------------------------------------------------------------------------


def test_expectations_are_part_of_the_spec_and_round_trip() -> None:
    view = scores(rules=[*RULES, unique("user_id", "ts"), matches("label", r"^[a-z]$"),
                         max_null_rate("rate", 0.01), freshness(timedelta(hours=2)),
                         row_count(min=1, max=10), of_type("count", "integer"),
                         not_in_future("ts", timedelta(minutes=5)),
                         between("ts", datetime(2020, 1, 1, tzinfo=UTC))])  # fmt: skip
    spec = view.to_spec()
    assert spec["expectation_policy"] == "reject"
    assert spec["expectations"][:3] == [
        {"rule": "not_null", "column": "count"},
        {"rule": "between", "column": "rate", "min": 0, "max": 1},
        {"rule": "in_set", "column": "label", "values": ["a", "b"]},
    ]
    assert spec["expectations"][-1]["min"] == {"timestamp": "2020-01-01T00:00:00+00:00"}
    json.dumps(spec)  # JSON, nothing else
    again = FeatureView.from_spec(spec)
    assert again == view and again.expectations == view.expectations
    assert [repr(e) for e in again.expectations][3:6] == [
        "unique('user_id', 'ts')", "matches('label', '^[a-z]$')", "max_null_rate('rate', 0.01)",
    ]  # fmt: skip


def test_a_view_without_expectations_keeps_its_spec_and_hash() -> None:
    plain = FeatureView(name="scores", entities=[user], ttl=timedelta(days=1), source=scores_push,
                        schema=SCHEMA)  # fmt: skip
    spec = plain.to_spec()
    assert "expectations" not in spec and "expectation_policy" not in spec
    assert canonical_hash(spec) == canonical_hash(scores(None, []).to_spec())
    assert canonical_hash(spec) != canonical_hash(scores(None).to_spec())


def test_importable_from_pitstop_and_pitstop_quality() -> None:
    for name in ("not_null", "between", "in_set", "unique", "matches", "max_null_rate",
                 "freshness", "row_count"):  # fmt: skip
        assert getattr(pitstop, name) is getattr(pitstop.quality, name)
    assert pitstop.quality.validate is validate


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (between("rat", 0, 1), r"FeatureView 'scores': expectation between\('rat', 0, 1\): there "
                               r"is no column 'rat'\. Did you mean 'rate'\?"),
        (matches("count", "x"), r"expectation matches\('count', 'x'\): column 'count' holds "
                                r"integer values; matches applies to string columns"),
        (between("label", 0, 1), r"column 'label' holds string values; between applies to float "
                                 r"or integer columns"),
        (in_set("rate", ["x"]), r"column 'rate' holds float values; in_set applies to string"),
        (unique("user_id", "nope"), r"unique\('user_id', 'nope'\): there is no column 'nope'"),
        (between("ts", 0, 5), r"column 'ts' holds timestamp values; between applies to float"),
    ],
)  # fmt: skip
def test_a_rule_on_an_unknown_or_unfit_column_is_a_definition_error(
    rule: Any, message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        scores(rules=[rule])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: between("x"), r"between\('x'\): give min, max or both"),
        (lambda: between("x", 5, 1), r"min 5 is greater than max 1"),
        (lambda: between("x", 0, datetime(2026, 1, 1)), r"must both be numbers or both times"),
        (lambda: max_null_rate("x", 5), r"a fraction from 0 to 1, e\.g\. 0\.01 for 1%, got 5"),
        (lambda: in_set("x", ["a", 1]), r"must all be strings, all numbers or all booleans"),
        (lambda: in_set("x", []), r"at least one value"),
        (lambda: matches("x", "(unclosed"), r"'\(unclosed' is not a regular expression"),
        (lambda: unique(), r"name the column\(s\)"),
        (lambda: row_count(), r"give min, max or both"),
        (lambda: freshness(timedelta(0)), r"max_age must be a positive timedelta"),
        (lambda: of_type("x", "text"), r"kind 'text' is not one of integer, float, number"),
        (lambda: scores("strict"), r"expectation_policy must be one of 'warn', 'reject', got "
                                   r"'strict'"),
        (lambda: scores(rules=[RULES[0], RULES[0]]), r"not_null\('count'\) is listed twice"),
        (lambda: scores(rules="not_null"), r"expectations must be a list"),  # type: ignore[arg-type]
    ],
)  # fmt: skip
def test_bad_rule_arguments_are_definition_errors(build: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        build()


def test_stream_views_take_expectations_on_their_events() -> None:
    view = StreamFeatureView(
        name="rates", entities=[user], source=scores_push, ttl=timedelta(hours=1),
        aggregations=[Aggregation(column="rate", function="sum", time_window=timedelta(hours=1))],
        expectations=[between("rate", 0, 1), not_null("user_id"), freshness(timedelta(hours=1))],
        expectation_policy="warn",
    )  # fmt: skip
    again = StreamFeatureView.from_spec(view.to_spec())
    assert again.expectations == view.expectations and again.expectation_policy == "warn"
    with pytest.raises(DefinitionError, match=r"StreamFeatureView 'rates': expectation "
                       r"not_null\('amount'\): there is no column 'amount'"):  # fmt: skip
        StreamFeatureView(name="rates", entities=[user], source=scores_push,
                          aggregations=[Aggregation(column="rate", function="sum",
                                                    time_window=timedelta(hours=1))],
                          expectations=[not_null("amount")])  # fmt: skip


def test_apply_of_a_repo_with_a_bad_expectation_names_view_rule_and_column(
    tmp_path: Path,
) -> None:
    (tmp_path / "feature_store.yaml").write_text("project: quality_repo\n")
    (tmp_path / "views.py").write_text(textwrap.dedent("""
        from pitstop import Entity, FeatureView, Field, FileSource, not_null
        from pitstop.types import Int64
        user = Entity(name="user", join_keys=["user_id"])
        src = FileSource(path="data/u.parquet", timestamp_field="ts")
        users = FeatureView(name="users", entities=[user], source=src,
                            schema=[Field(name="age", dtype=Int64)],
                            expectations=[not_null("agee")])
    """))  # fmt: skip
    done = subprocess.run([PITSTOP, "apply"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert re.search(r"FeatureView 'users': expectation not_null\('agee'\): there is no column "
                     r"'agee'\. Did you mean 'age'\?", done.stderr), done.stderr  # fmt: skip


# --- validation ------------------------------------------------------------------------------


def _table(**change: list[Any]) -> pa.Table:
    rows: dict[str, Any] = {
        "user_id": [1, 2, 3, 4, 5, 6],
        "count": [1, 2, None, 4, 5, None],
        "rate": [0.1, 0.5, 1.0, 1.5, -0.25, None],
        "label": ["a", "b", "a", "c", "<b>x</b>", "b"],
        "ts": [NOW - timedelta(hours=h) for h in (1, 2, 3, 4, 5, 6)],
    }
    rows.update(change)
    return pa.table(rows)


def test_every_rule_counts_its_bad_rows_and_shows_some() -> None:
    rules = [
        not_null("count"), between("rate", 0, 1), in_set("label", ["a", "b"]),
        matches("label", r"^[a-z]+$"), max_null_rate("count", 0.5), max_null_rate("count", 0.1),
        unique("label"), row_count(min=10), freshness(timedelta(minutes=30), column="ts"),
        freshness(timedelta(hours=2), "ts"), not_in_future("ts"), of_type("rate", "integer"),
        of_type("rate", "number"),
    ]  # fmt: skip
    report = validate(_table(), rules, keys=["user_id"], now=NOW, samples=2)
    by = {r.expectation: r for r in report.results}
    assert report.rows == 6 and not report.success
    assert [r.passed for r in report.results] == [
        False, False, False, False, True, False, False, False, False, True, True, False, True,
    ]  # fmt: skip
    assert by["not_null('count')"].summary == "2 of 6 rows are null"
    assert by["not_null('count')"].samples == (
        {"row": 2, "keys": {"user_id": 3}, "value": None},
        {"row": 5, "keys": {"user_id": 6}, "value": None},
    )
    rate = by["between('rate', 0, 1)"]
    assert (rate.unexpected, rate.summary) == (2, "2 of 6 rows are outside [0, 1]")
    assert [s["value"] for s in rate.samples] == [1.5, -0.25]  # nulls are not out of range
    assert by["in_set('label', ['a', 'b'])"].unexpected == 2
    assert by["matches('label', '^[a-z]+$')"].samples[0]["value"] == "<b>x</b>"
    assert by["max_null_rate('count', 0.1)"].summary == (
        "null rate 33.33% (2 of 6 rows) is above the allowed 10.00%"
    )
    assert by["unique('label')"].samples == ({"value": "a", "count": 2},
                                             {"value": "b", "count": 2})  # fmt: skip
    assert by["unique('label')"].unexpected == 2
    assert by["row_count(min=10)"].summary == "6 rows; expected at least 10"
    fresh = by["freshness(max_age=timedelta(seconds=1800), column='ts')"]
    assert fresh.observed["age_seconds"] == 3600 and "allowed: 30m" not in fresh.summary
    assert by["of_type('rate', 'integer')"].summary == "4 of 6 rows are not whole numbers"
    text = str(report)
    assert text.startswith("data: 4 of 13 expectations hold on 6 rows\n")
    assert ("  - between('rate', 0, 1): 2 of 6 rows are outside [0, 1]; e.g. row 3 "
            "(user_id 4): 1.5, row 4 (user_id 5): -0.25") in text  # fmt: skip


def test_a_missing_column_or_a_column_of_another_type_fails_its_rule() -> None:
    data = _table(rate=["high"] * 6).drop_columns(["count"])
    report = validate(data, [not_null("count"), between("rate", 0, 1), not_null("label")])
    assert [r.passed for r in report.results] == [False, False, True]
    assert report.results[0].problem.startswith("there is no column 'count'. Known: ")
    assert report.results[1].problem == (
        "column 'rate' holds string values; between applies to float or integer columns."
    )
    assert "not_null('count'): there is no column 'count'" in str(report)


def test_validate_takes_pandas_and_a_view() -> None:
    df = _table().to_pandas()
    report = validate(df, scores())
    assert report.target == "feature view 'scores'"
    assert [r.passed for r in report.results] == [False, False, False]
    assert report.results[2].samples[0] == {"row": 3, "keys": {"user_id": 4}, "value": "c"}
    assert validate(df.iloc[:2], scores()).success


def test_the_report_as_json_and_as_a_self_contained_html_page(tmp_path: Path) -> None:
    report = validate(_table(), [between("rate", 0, 1), matches("label", "^[a-z]+$")],
                      keys=["user_id"], now=NOW)  # fmt: skip
    data = json.loads(report.to_json())
    assert data["success"] is False and data["rows"] == 6
    assert data["checked_at"] == NOW.isoformat()
    assert data["results"][0] == {
        "expectation": "between('rate', 0, 1)", "rule": "between", "columns": ["rate"],
        "passed": False, "summary": "2 of 6 rows are outside [0, 1]",
        "observed": {"unexpected": 2, "rows": 6},
        "samples": [{"row": 3, "keys": {"user_id": 4}, "value": 1.5},
                    {"row": 4, "keys": {"user_id": 5}, "value": -0.25}],
    }  # fmt: skip
    assert report.to_dict() == data
    page = report.save_html(tmp_path / "out" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "2 of 2 failed" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # values are escaped
    assert "between(&#x27;rate&#x27;, 0, 1)" in page
    assert not re.search(r"(src|href)=", page)  # nothing fetched: one file is the whole report
    assert validate(_table(), [not_null("user_id")]).to_html().count("pass") >= 1


def test_validating_ten_thousand_rows_is_one_query_plus_one_for_samples() -> None:
    import numpy as np

    n = 10_000
    data = pa.table({"user_id": np.arange(n), "rate": np.linspace(0, 1.2, n),
                     "label": np.where(np.arange(n) % 1000 == 7, "z", "a")})  # fmt: skip
    report = validate(data, [between("rate", 0, 1), in_set("label", ["a"]), unique("user_id")],
                      keys=["user_id"])  # fmt: skip
    assert [r.unexpected for r in report.results] == [int((data["rate"].to_numpy() > 1).sum()),
                                                       10, 0]  # fmt: skip
    assert [s["keys"]["user_id"] for s in report.results[1].samples] == [7, 1007, 2007, 3007,
                                                                        4007]  # fmt: skip


# --- the policy on writes ----------------------------------------------------------------------


def _store(root: Path, online: dict[str, Any], policy: str | None = None,
           project: str | None = None) -> FeatureStore:  # fmt: skip
    data = {"project": project or f"q{uuid.uuid4().hex[:10]}", "online_store": online}
    if policy:
        data["expectations"] = {"policy": policy}
    return FeatureStore(config=parse_config(data, repo_path=root))


def _seed(root: Path) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "user_id": [1], "count": [1], "rate": [0.5], "label": ["a"],
        "ts": pa.array([NOW - timedelta(days=2)], pa.timestamp("us", tz="UTC")),
    }), root / "data/scores.parquet")  # fmt: skip


@pytest.fixture(params=STORES)
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    _seed(tmp_path)
    store = _store(tmp_path, _online(request.param, request))
    store.apply([user, scores_push, scores()])
    store.push("scores_push", _rows(user_id=[1, 3]), to="online_and_offline")  # must not change
    try:
        yield store
    finally:
        store.teardown()
        store.close()


def _rows(**change: list[Any]) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {"user_id": [1, 2], "count": [10, 20], "rate": [0.25, 0.75],
                                  "label": ["a", "b"], "ts": [datetime.now(UTC)] * 2}  # fmt: skip
    n = len(change.get("user_id", rows["user_id"]))
    return {**{k: v[:n] for k, v in rows.items()}, **change}


def _state(fs: FeatureStore) -> tuple[Any, ...]:
    """What a rejected write must leave as it was: online values, the offline files."""
    got = fs.get_online_features(["scores:count", "scores:rate", "scores:label"],
                                 {"user_id": [1, 2, 3]})  # fmt: skip
    files = sorted((str(p.relative_to(fs.repo_path)), p.read_bytes())
                   for p in (fs.repo_path / "data").rglob("*.parquet"))  # fmt: skip
    return got.values, got.statuses, files


REJECTED = (
    r"the rows break the expectations of feature view 'scores' \(expectation_policy "
    r"'reject'\); nothing was written:\n  - between\('rate', 0, 1\): 1 of 2 rows are "
    r"outside \[0, 1\]; e\.g\. row 1 \(user_id 2\): 7\.5\n  - in_set\('label', \['a', "
    r"'b'\]\): 1 of 2 rows are not one of 'a', 'b'; e\.g\. row 0 \(user_id 1\): 'zz'$"
)


@pytest.mark.parametrize("mode", ["online", "offline", "online_and_offline"])
def test_a_rejected_push_writes_nothing_online_or_offline(fs: FeatureStore, mode: str) -> None:
    before = _state(fs)
    bad = _rows(rate=[0.5, 7.5], label=["zz", "a"])
    with pytest.raises(DataQualityError, match=r"^push to 'scores_push': " + REJECTED) as caught:
        fs.push("scores_push", bad, to=mode)
    assert caught.value.reports[0].target == "feature view 'scores'"
    one = {k: v[1:] for k, v in bad.items()}  # one row: small pushes take a shortcut elsewhere
    with pytest.raises(DataQualityError, match=r"between\('rate', 0, 1\): 1 of 1 rows"):
        fs.push("scores_push", one, to=mode)
    assert _state(fs) == before


def test_a_rejected_write_to_online_store_writes_nothing(fs: FeatureStore) -> None:
    before = _state(fs)
    with pytest.raises(DataQualityError, match=r"^write_to_online_store\('scores'\): " + REJECTED):
        fs.write_to_online_store("scores", _rows(rate=[0.5, 7.5], label=["zz", "a"]))
    assert _state(fs) == before
    fs.write_to_online_store("scores", _rows(count=[11, 21]))  # good rows go through
    assert fs.get_online_features(["scores:count"], {"user_id": [1, 2]}).to_dict()["count"] == [
        11, 21,
    ]  # fmt: skip


def test_a_rejected_push_over_http_is_a_422_naming_the_rule(fs: FeatureStore) -> None:
    before = _state(fs)
    df = {k: [v.isoformat() if isinstance(v, datetime) else v for v in col]
          for k, col in _rows(rate=[0.5, 7.5], label=["zz", "a"]).items()}  # fmt: skip
    with thread_server(fs) as url:
        r = httpx.post(
            f"{url}/push",
            timeout=30,
            json={"push_source_name": "scores_push", "df": df, "to": "online_and_offline"},
        )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "DataQualityError"
    assert "between('rate', 0, 1): 1 of 2 rows are outside [0, 1]" in r.json()["error"]["message"]
    assert _state(fs) == before


def test_warn_logs_and_writes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _seed(tmp_path)
    with _store(tmp_path, {"type": "sqlite", "path": "data/online.db"}) as store:
        store.apply([user, scores_push, scores(policy="warn")])
        with caplog.at_level(logging.WARNING, logger="pitstop.quality"):
            assert store.push("scores_push", _rows(rate=[0.5, 7.5])) == 2
        assert store.get_online_features(["scores:rate"], {"user_id": [2]}).to_dict()["rate"] == [
            7.5
        ]  # fmt: skip
    [record] = [r for r in caplog.records if r.name == "pitstop.quality"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "push to 'scores_push': the rows break the expectations of feature view 'scores' "
        "(expectation_policy 'warn'); written anyway:\n  - between('rate', 0, 1): 1 of 2 rows"
    )


def test_the_repo_default_policy_applies_to_views_without_their_own(tmp_path: Path) -> None:
    _seed(tmp_path)
    silent = scores(policy=None)
    lenient = FeatureView(name="lenient", entities=[user], source=scores_push, schema=SCHEMA,
                          expectations=RULES, expectation_policy="warn")  # fmt: skip
    online = {"type": "sqlite", "path": "data/online.db"}
    with _store(tmp_path, online, policy="reject", project="defaults") as store:
        store.apply([user, scores_push, silent])
        with pytest.raises(DataQualityError, match="expectation_policy 'reject'"):
            store.push("scores_push", _rows(rate=[0.5, 7.5]))
        store.apply([lenient])
        with pytest.raises(DataQualityError, match=r"feature view 'scores' \("):  # one rejects
            store.push("scores_push", _rows(rate=[0.5, 7.5]))
        got = store.get_online_features(["lenient:rate"], {"user_id": [2]}).to_dict()["rate"]
        assert got == [None]  # nothing written for the lenient view either: all or nothing
    with _store(tmp_path, online, project="defaults") as store:  # default: warn
        assert store.push("scores_push", _rows(rate=[0.5, 7.5])) == 4  # two views, two rows


@pytest.mark.parametrize("backend", STORES)
def test_a_materialization_that_breaks_expectations_writes_nothing(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({
        "user_id": [1, 2, 3], "count": [1, 2, 3], "rate": [0.5, 3.0, 0.25],
        "label": ["a", "b", "a"],
        "ts": pa.array([NOW - timedelta(hours=1)] * 3, pa.timestamp("us", tz="UTC")),
    }), tmp_path / "data/direct.parquet")  # fmt: skip
    direct = FileSource(name="direct", path="data/direct.parquet", timestamp_field="ts")
    view = FeatureView(name="direct_view", entities=[user], source=direct, schema=SCHEMA,
                       expectations=[between("rate", 0, 1), unique("user_id")],
                       expectation_policy="reject")  # fmt: skip
    with _store(tmp_path, _online(backend, request)) as store:
        store.apply([user, view])
        with pytest.raises(DataQualityError, match=r"^materialize 'direct_view': the rows break "
                           r"the expectations of feature view 'direct_view' .*\n  - between\("
                           r"'rate', 0, 1\): 1 of 3 rows are outside \[0, 1\]; e\.g\. row \d "
                           r"\(user_id 2\): 3\.0$"):  # fmt: skip
            store.materialize(NOW - timedelta(days=1), NOW)
        got = store.get_online_features(["direct_view:rate"], {"user_id": [1, 2, 3]})
        assert got.statuses["rate"] == ["NOT_FOUND"] * 3
        assert store.registry.store.get_meta("materialized_until:direct_view") is None
        [record] = [r for r in store.catalog.audit_log() if r.action == "materialize"]
        assert record.outcome == "error" and "between('rate', 0, 1)" in record.detail
        # after the source is fixed, the same materialization goes through
        pq.write_table(pq.read_table(tmp_path / "data/direct.parquet").set_column(
            2, "rate", pa.array([0.5, 0.75, 0.25])), tmp_path / "data/direct.parquet")  # fmt: skip
        store.materialize(NOW - timedelta(days=1), NOW)
        assert store.get_online_features(["direct_view:rate"], {"user_id": [2]}).to_dict()[
            "rate"
        ] == [0.75]  # fmt: skip
        store.teardown()


def test_store_validate_reads_the_views_source(tmp_path: Path) -> None:
    _seed(tmp_path)
    pq.write_table(pa.table({
        "user_id": [1, 2, 2], "count": [1, None, 3], "rate": [0.5, 0.5, 9.0],
        "label": ["a", "b", "a"],
        "ts": pa.array([NOW - timedelta(hours=1)] * 3, pa.timestamp("us", tz="UTC")),
    }), tmp_path / "data/other.parquet")  # fmt: skip
    other = FileSource(name="other", path="data/other.parquet", timestamp_field="ts")
    with _store(tmp_path, {"type": "sqlite", "path": "data/online.db"}) as store:
        store.apply([user, scores_push, scores()])
        assert store.validate("scores").success  # the seeded source rows are good
        report = store.validate("scores", other)
        assert [r.unexpected for r in report.results] == [1, 1, 0]
        assert report.results[1].samples[0]["keys"] == {"user_id": 2}
        frame = pd.DataFrame(_rows(count=[None, 2]))
        assert [r.passed for r in store.validate(scores(), frame).results] == [False, True, True]


def test_a_windowed_view_checks_the_events_it_would_fold_in(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    (tmp_path / "data").mkdir()
    events = pa.table({
        "user_id": [1, 1, 2], "rate": [0.5, 4.0, 0.25],
        "ts": pa.array([now - timedelta(minutes=m) for m in (5, 10, 15)],
                       pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    pq.write_table(events, tmp_path / "data/events.parquet")
    source = PushSource(name="events_push", batch_source=FileSource(
        name="events", path="data/events.parquet", timestamp_field="ts"))  # fmt: skip
    rates = StreamFeatureView(
        name="rates", entities=[user], source=source, ttl=timedelta(hours=1),
        aggregations=[Aggregation(column="rate", function="sum", time_window=timedelta(hours=1))],
        expectations=[between("rate", 0, 1)], expectation_policy="reject",
    )  # fmt: skip
    with _store(tmp_path, {"type": "sqlite", "path": "data/online.db"}) as store:
        store.apply([user, source, rates])
        with pytest.raises(DataQualityError, match=r"^materialize 'rates': .*\n  - between\("
                           r"'rate', 0, 1\): 1 of 3 rows are outside \[0, 1\]; e\.g\. row \d "
                           r"\(user_id 1\): 4\.0$"):  # fmt: skip
            store.materialize(now - timedelta(days=1), now)
        got = store.get_online_features(["rates:sum_rate_1h"], {"user_id": [1, 2]}).to_dict()
        assert got["sum_rate_1h"] == [None, None]
        pq.write_table(events.set_column(1, "rate", pa.array([0.5, 0.125, 0.25])),
                       tmp_path / "data/events.parquet")  # fmt: skip
        store.materialize(now - timedelta(days=1), now)
        got = store.get_online_features(["rates:sum_rate_1h"], {"user_id": [1, 2]}).to_dict()
        assert got["sum_rate_1h"] == [0.625, 0.25]


def test_rules_on_the_keys_of_entities_named_by_string_are_checked_at_apply(
    tmp_path: Path,
) -> None:
    _seed(tmp_path)

    def by_name(rule: Any) -> FeatureView:
        return FeatureView(name="scores", entities=["user"], source=scores_push, schema=SCHEMA,
                           expectations=[rule])  # fmt: skip

    with _store(tmp_path, {"type": "sqlite", "path": "data/online.db"}) as store:
        store.apply([user, scores_push, by_name(not_null("user_id"))])  # the key of 'user'
        assert store.get_feature_view("scores").expectations == (not_null("user_id"),)
        with pytest.raises(DefinitionError, match=r"FeatureView 'scores': expectation "
                           r"not_null\('usr_id'\): there is no column 'usr_id'"):  # fmt: skip
            store.apply([by_name(not_null("usr_id"))])
