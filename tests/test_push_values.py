"""Bad values never reach a store, and a bad stored value never breaks a read of the others.

Pushes, ``write_to_online_store`` and their HTTP endpoints check every value against the
declared schema first: a wrong value is an error naming the column, the view, the row and the
value, and neither the online store nor the offline data changes. Offline pushes carry the
source's columns. Stored bytes that do not decode (written straight into SQLite and Redis
here) make only their entity ``NOT_FOUND``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushMode,
    PushSource,
    StreamFeatureView,
    ValueType,
)
from pitstop.aggregation import Aggregation
from pitstop.config import parse_config
from pitstop.errors import RetrievalError
from pitstop.online.encoding import entity_key
from pitstop.types import Bool, Float64, Int64, String
from test_server import thread_server

NOW = datetime.now(UTC).replace(microsecond=0)
STORES = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
scores_file = FileSource(path="data/scores.parquet", timestamp_field="ts")
scores_push = PushSource(name="scores_push", batch_source=scores_file)
scores = FeatureView(
    name="scores", entities=[user], ttl=timedelta(days=1), source=scores_push,
    schema=[Field(name="count", dtype=Int64), Field(name="rate", dtype=Float64),
            Field(name="label", dtype=String), Field(name="flag", dtype=Bool)],
)  # fmt: skip
windows = StreamFeatureView(
    name="windows", entities=[user], ttl=timedelta(hours=1), source=scores_push,
    schema=[Field(name="rate_sum_1h", dtype=Float64)],
    aggregations=[Aggregation(column="rate", function="sum", time_window=timedelta(hours=1))],
)  # fmt: skip
SCORES = [f"scores:{f}" for f in ("count", "rate", "label", "flag")]


def _source_data(root: Path) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({
            "user_id": [1], "count": [1], "rate": [0.5], "label": ["a"], "flag": [True],
            "note": pa.array([7], pa.int64()),  # a column no view reads: training data
            "ts": pa.array([NOW - timedelta(days=2)], pa.timestamp("us", tz="UTC")),
        }),
        root / "data/scores.parquet",
    )  # fmt: skip


def _online(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend == "sqlite":
        return {"type": "sqlite", "path": "data/online.db"}
    url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_key_prefix"))
    return {"type": "redis", "connection_string": url, "key_prefix": prefix}


@pytest.fixture(params=STORES)
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    _source_data(tmp_path)
    project = f"v{uuid.uuid4().hex[:10]}"
    cfg = parse_config({"project": project, "online_store": _online(request.param, request)},
                       repo_path=tmp_path)  # fmt: skip
    store = FeatureStore(config=cfg)
    store.apply([user, scores_push, scores, windows])
    store.push("scores_push", _rows(user_id=[1, 3], count=[10, 30]))  # what must not change
    try:
        yield store
    finally:
        store.teardown()
        store.close()


def _rows(**change: list[Any]) -> dict[str, list[Any]]:
    """Two good rows (entities 1 and 2) with ``change`` applied."""
    rows: dict[str, list[Any]] = {
        "user_id": [1, 2], "count": [11, 20], "rate": [1.5, 2.5], "label": ["x", "y"],
        "flag": [True, False], "ts": [NOW - timedelta(minutes=5)] * 2,
    }  # fmt: skip
    n = len(change.get("user_id", rows["user_id"]))
    rows = {k: v[:n] for k, v in rows.items()}
    return {**rows, **change}


def _snapshot(fs: FeatureStore) -> tuple[Any, ...]:
    """What a failed write must leave as it was: online values and the offline files."""
    online = fs.get_online_features([*SCORES, "windows:rate_sum_1h"], {"user_id": [1, 2, 3]})
    files = sorted(
        (str(p.relative_to(fs.repo_path)), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in (fs.repo_path / "data").rglob("*.parquet")
    )
    return online.values, online.statuses, files


def _push_body(data: dict[str, list[Any]], **extra: Any) -> dict[str, Any]:
    df = {k: [v.isoformat() if isinstance(v, datetime) else v for v in col]
          for k, col in data.items()}  # fmt: skip
    return {"push_source_name": "scores_push", "df": df, **extra}


BAD = [
    pytest.param({"label": [["a"], ["b", "c"]]},
                 r"column 'label' of feature view 'scores' is declared string but row 0 holds "
                 r"\['a'\] \(list<item: string>\)", id="lists for a string"),
    pytest.param({"count": [{"n": 1}, {"n": 2}]},
                 r"column 'count' of feature view 'scores' is declared int64 but row 0 holds "
                 r"\{'n': 1\}", id="dicts for an integer"),
    pytest.param({"label": ["x", ["a", "b"]]},
                 r"column 'label' cannot be read as Arrow values; the first value that does not "
                 r"convert is in row 1: \['a', 'b'\] \(list\)", id="a list among strings"),
    pytest.param({"count": [11, 1.5]},
                 r"column 'count' of feature view 'scores' is declared int64 but row 1 holds 1\.5 "
                 r"\(double\), which does not convert \(Float value 1\.5\d* was truncated",
                 id="fraction for an integer"),
    pytest.param({"rate": [1.5, "fast"]},
                 r"column 'rate' cannot be read as Arrow values; the first value that does not "
                 r"convert is in row 1: 'fast' \(str\)", id="text among numbers"),
    pytest.param({"rate": ["1.5", "fast"]},
                 r"column 'rate' of feature view 'scores' is declared double but row 1 holds "
                 r"'fast' \(string\)", id="unparseable number"),
    pytest.param({"user_id": [1, None]},
                 r"column 'user_id' of feature view 'scores' is null in row 1; every row needs "
                 r"every entity key", id="null key"),
    pytest.param({"ts": [NOW, None]},
                 r"column 'ts' of feature view 'scores' is null in row 1; every row needs an "
                 r"event timestamp", id="null timestamp"),
    pytest.param({"ts": [NOW.isoformat(), "next tuesday"]},
                 r"column 'ts' of feature view 'scores' is declared timestamp\[us, tz=UTC\] but "
                 r"row 1 holds 'next tuesday'", id="unparseable timestamp"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), BAD)
@pytest.mark.parametrize("mode", ["online", "online_and_offline"])
def test_a_bad_value_is_an_error_and_nothing_is_written(
    fs: FeatureStore, change: dict[str, list[Any]], message: str, mode: str
) -> None:
    before = _snapshot(fs)
    data = _rows(**change)
    with pytest.raises(RetrievalError, match=r"^push to 'scores_push': " + message):
        fs.push("scores_push", data, to=mode)
    column, row = next(iter(change)), re.findall(r"row (\d)", message)[0]
    one = {k: v[1:] for k, v in data.items()}  # one row: small pushes take a shortcut
    with pytest.raises(RetrievalError, match=rf"column '{column}' .*row 0"):
        fs.push("scores_push", one, to=mode)
    with pytest.raises(RetrievalError, match=rf"^write_to_online_store\('scores'\): column "
                       rf"'{column}' .*row {row}"):  # fmt: skip
        fs.write_to_online_store("scores", data)
    assert _snapshot(fs) == before


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_values_over_http_are_400s_naming_the_column(
    fs: FeatureStore, change: dict[str, list[Any]], message: str
) -> None:
    before = _snapshot(fs)
    body = _push_body(_rows(**change), to="online_and_offline")
    with thread_server(fs) as url:
        pushed = httpx.post(f"{url}/push", json=body, timeout=30)
        written = httpx.post(f"{url}/write-to-online-store", timeout=30,
                             json={"feature_view_name": "scores", "df": body["df"]})  # fmt: skip
    for r in (pushed, written):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "RetrievalError"
    assert re.search(message, pushed.json()["error"]["message"])
    assert re.search(message.split(" of feature view")[0], written.json()["error"]["message"])
    assert _snapshot(fs) == before


def test_a_whole_float_is_an_integer(fs: FeatureStore) -> None:
    fs.push("scores_push", _rows(count=[11.0, 2.0]))
    assert fs.get_online_features(["scores:count"], {"user_id": [1, 2]}).values["count"] == [11, 2]


# --- push modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "offline", "online"),
    [
        ("online", False, True), ("ONLINE", False, True), ("Offline", True, False),
        ("online_and_offline", True, True), (PushMode.OFFLINE, True, False),
        (PushMode.ONLINE_AND_OFFLINE, True, True),
    ],
)  # fmt: skip
def test_push_modes_are_members_or_their_names(
    fs: FeatureStore, to: Any, offline: bool, online: bool
) -> None:
    fs.push("scores_push", {**_rows(user_id=[5], count=[55]), "note": [1]}, to=to)
    parts = list((fs.repo_path / "data/scores.parquet.pushed").glob("*.parquet"))
    assert bool(parts) == offline
    got = fs.get_online_features(["scores:count"], {"user_id": [5]}).values["count"]
    assert got == ([55] if online else [None])


@pytest.mark.parametrize("to", ["both", "on line", 0, None, "PushMode.ONLINE"])
def test_an_unknown_push_mode_lists_the_allowed_ones(fs: FeatureStore, to: Any) -> None:
    before = _snapshot(fs)
    allowed = r"allowed: 'online', 'offline', 'online_and_offline' \(any case\)"
    with pytest.raises(RetrievalError, match=rf"^'to': {re.escape(repr(to))} is not a push mode; "
                       + allowed):  # fmt: skip
        fs.push("scores_push", _rows(), to=to)
    assert _snapshot(fs) == before
    with thread_server(fs) as url:
        good = {**_rows(user_id=[6]), "note": [1]}
        ok = httpx.post(f"{url}/push", json=_push_body(good, to="OFFLINE"))
        bad = httpx.post(f"{url}/push", json=_push_body(_rows(), to="both"))
    assert ok.status_code == 200 and ok.json()["to"] == "offline" and ok.json()["written"] == 0
    assert bad.status_code == 400 and re.search(allowed, bad.json()["error"]["message"])


# --- offline columns --------------------------------------------------------------------------


def test_an_offline_push_must_carry_the_sources_columns(fs: FeatureStore) -> None:
    before = _snapshot(fs)
    with pytest.raises(
        RetrievalError,
        match=r"^push to 'scores_push': column\(s\) \['note'\] of the offline data of source "
        r"'.*' \(data/scores\.parquet\) are missing from the pushed rows, so training sets over "
        r"this source would get nulls there; add them, or pass allow_missing_columns=True",
    ):
        fs.push("scores_push", _rows(), to=PushMode.ONLINE_AND_OFFLINE)
    with pytest.raises(
        RetrievalError, match=r"column\(s\) \['extra'\] are not in the offline data of source"
    ):
        fs.push("scores_push", {**_rows(), "note": [1, 2], "extra": [0, 0]}, to="offline")
    with pytest.raises(
        RetrievalError,
        match=r"column 'note' of the offline data of source .* is declared int64 but row 1 holds "
        r"'many' \(string\)",
    ):
        fs.push("scores_push", {**_rows(), "note": ["3", "many"]}, to="online_and_offline")
    assert _snapshot(fs) == before
    fs.push("scores_push", _rows(), to="online", allow_missing_columns=False)  # online: no rule


def test_allow_missing_columns_writes_them_as_nulls(fs: FeatureStore) -> None:
    fs.push("scores_push", _rows(), to="offline", allow_missing_columns=True)
    fs.push("scores_push", {**_rows(user_id=[4]), "note": ["9"]}, to="offline")  # text: cast
    with thread_server(fs) as url:
        body = _push_body(_rows(user_id=[7]), to="offline", allow_missing_columns=True)
        assert httpx.post(f"{url}/push", json=body).status_code == 200
    parts = list((fs.repo_path / "data/scores.parquet.pushed").glob("*.parquet"))
    pushed = pa.concat_tables([pq.read_table(p) for p in parts])
    original = pq.read_schema(fs.repo_path / "data/scores.parquet")
    assert all(pq.read_schema(p) == original for p in parts)  # the source's columns and types
    notes = dict(zip(pushed.column("user_id").to_pylist(), pushed.column("note").to_pylist(),
                     strict=False))  # fmt: skip
    assert notes == {1: None, 2: None, 4: 9, 7: None}


def test_an_offline_push_to_a_csv_source_fails_before_writing_online(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data/clicks.csv").write_text("user_id,clicks,ts\n1,2,2026-01-01T00:00:00Z\n")
    push = PushSource(name="clicks_push", batch_source=FileSource(
        path="data/clicks.csv", timestamp_field="ts"))  # fmt: skip
    view = FeatureView(name="clicks", entities=[user], source=push,
                       schema=[Field(name="clicks", dtype=Int64)])  # fmt: skip
    cfg = parse_config({"project": "csv", "online_store": {"type": "sqlite"}}, repo_path=tmp_path)
    with FeatureStore(config=cfg) as store:
        store.apply([user, push, view])
        row = {"user_id": [1], "clicks": [5], "ts": [NOW]}
        with pytest.raises(RetrievalError, match=r"offline pushes need a Parquet source; "):
            store.push("clicks_push", row, to="online_and_offline")
        got = store.get_online_features(["clicks:clicks"], [{"user_id": 1}])
        assert got.statuses["clicks"] == ["NOT_FOUND"]


# --- values that do not decode ----------------------------------------------------------------


def _corrupt(fs: FeatureStore, view: str, user_id: int, value: bytes) -> None:
    """Overwrite one entity's stored value with ``value``, behind pitstop's back."""
    key = entity_key(["user_id"], [user_id])
    cfg = fs.config.online_store
    if cfg.type == "sqlite":
        with sqlite3.connect(fs.online.path) as conn:  # type: ignore[attr-defined]
            table = f"{fs.project}:{view}".replace('"', '""')
            done = conn.execute(f'UPDATE "{table}" SET value = ? WHERE entity_key = ?',
                                (value, key))  # fmt: skip
            assert done.rowcount == 1
        return
    import redis

    client = redis.Redis.from_url(cfg.connection_string)  # type: ignore[union-attr]
    try:
        name = f"{cfg.key_prefix}{fs.project}:{view}:{{".encode() + key + b"}"  # type: ignore[union-attr]
        stored = client.get(name)
        assert stored is not None
        client.set(name, stored[:16] + value if len(value) > 4 else value)  # short: no header
    finally:
        client.close()


@pytest.mark.parametrize(
    "value",
    [b"\x01\xc1\xc1garbage", b"\x02\x81\xa5count\x05", b"\x01\x05", b"", b"\x01"],
    ids=["not msgpack", "another version", "not a map", "empty", "truncated"],
)
def test_a_value_that_does_not_decode_is_not_found_for_its_entity_only(
    fs: FeatureStore, value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    fs.push("scores_push", _rows(user_id=[1, 2, 3], count=[1, 2, 3], rate=[1.0, 2.0, 3.0],
                                 label=["a", "b", "c"], flag=[True] * 3,
                                 ts=[NOW - timedelta(minutes=1)] * 3))  # fmt: skip
    _corrupt(fs, "scores", 2, value)
    _corrupt(fs, "windows", 2, value)
    refs = [*SCORES, "windows:rate_sum_1h"]
    with caplog.at_level(logging.WARNING, logger="pitstop.online"):
        got = fs.get_online_features(refs, {"user_id": [1, 2, 3]})
        fs.get_online_features(refs, {"user_id": [2]})
    assert got.values["count"] == [1, None, 3]
    assert got.values["rate_sum_1h"] == [1.5 + 1.0, None, 2.5 + 3.0]  # with the fixture's rows
    assert got.statuses["label"] == ["PRESENT", "NOT_FOUND", "PRESENT"]
    assert got.statuses["rate_sum_1h"] == ["PRESENT", "NOT_FOUND", "PRESENT"]
    logged = [r.getMessage() for r in caplog.records]
    assert len([m for m in logged if "feature view 'scores'" in m]) == 1, logged  # once
    assert any("a stored online value cannot be decoded" in m for m in logged)
    with thread_server(fs) as url:
        r = httpx.post(f"{url}/get-online-features", json={
            "features": refs, "entities": {"user_id": [1, 2, 3]}})  # fmt: skip
    assert r.status_code == 200, r.text
    results = dict(zip(r.json()["metadata"]["feature_names"], r.json()["results"], strict=True))
    assert results["count"]["values"] == [1, None, 3]
    assert results["count"]["statuses"] == ["PRESENT", "NOT_FOUND", "PRESENT"]
    if fs.config.online_store.type == "sqlite" or len(value) > 4:  # a Redis row with a header
        fs.write_to_online_store("scores", _rows(user_id=[2], count=[22], ts=[NOW]))  # again
        assert fs.get_online_features(["scores:count"], {"user_id": [2]}).values["count"] == [22]


# --- the template and the README push example --------------------------------------------------


def _readme_push() -> dict[str, Any]:
    """The body of the README's ``curl .../push`` example."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    match = re.search(r"curl -X POST http://localhost:6566/push -d '(.*?)'\n", text, re.DOTALL)
    assert match is not None, "the README has no push example"
    body: dict[str, Any] = json.loads(match.group(1))
    return body


def test_the_readme_push_into_the_template_keeps_verify_green(tmp_path: Path) -> None:
    pitstop = str(Path(sys.executable).with_name("pitstop"))
    env = {**os.environ, "COLUMNS": "200"}

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([pitstop, *args], cwd=cwd, capture_output=True, text=True, env=env)

    assert run("init", "r", "--users", "20", cwd=tmp_path).returncode == 0
    repo = tmp_path / "r"
    assert run("apply", cwd=repo).returncode == 0
    assert (
        run("materialize", "2020-01-01T00:00:00", "2100-01-01T00:00:00", cwd=repo).returncode == 0
    )
    body = _readme_push()
    df = body["df"]
    df["transaction_timestamp"] = [(datetime.now(UTC) - timedelta(minutes=1)).isoformat()]
    with FeatureStore(repo_path=repo) as store:
        fed = [v.name for v in [*store.list_feature_views(), *store.list_stream_feature_views()]
               if getattr(v.source, "name", None) == body["push_source_name"]]  # fmt: skip
        assert store.push(body["push_source_name"], df, to=body["to"]) == 1
        counted = store.get_online_features(["transaction_streaming_features:transaction_count_1h"],
                                            {"user_id": df["user_id"]})  # fmt: skip
    assert fed == ["transaction_streaming_features"]
    assert counted.values["transaction_count_1h"][0] >= 1
    assert list((repo / "data/transaction_events.parquet.pushed").glob("*.parquet"))
    for view in [*fed, "transaction_features"]:  # and the view over the other file is untouched
        proc = run("verify", "--view", view, cwd=repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.startswith(f"OK {view}: 20 entities")
