"""The HTTP feature server over real HTTP: Feast's shapes, errors, auth, refresh, health.

The main server runs ``pitstop serve`` in a subprocess on a free port over a feature repo on
SQLite (registry and online store); smaller servers run uvicorn in a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
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
    ValueType,
    on_demand_feature_view,
)
from pitstop.errors import MissingExtraError
from pitstop.types import Bytes, Float32, Float64, Int64, String, UnixTimestamp

NOW = datetime.now(UTC).replace(microsecond=0)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")
EPOCH = "1970-01-01T00:00:00Z"
RW_KEY, RO_KEY = "secret-rw-key", "secret-ro-key"

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
users_src = FileSource(path="data/users.parquet", timestamp_field="ts")
users_push = PushSource(name="users_push", batch_source=users_src)
users = FeatureView(
    name="users",
    entities=[user],
    ttl=timedelta(days=1),
    source=users_push,
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="score", dtype=Float32),
        Field(name="tier", dtype=String),
        Field(name="avatar", dtype=Bytes),
        Field(name="last_login", dtype=UnixTimestamp),
    ],
)
req = RequestSource(name="req", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(
    sources=[users, req], schema=[Field(name="boosted", dtype=Float64)], mode="python"
)
def boosted(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {
        "boosted": [
            None if s is None or a is None or b is None else s * a + b
            for s, a, b in zip(inputs["score"], inputs["age"], inputs["bonus"], strict=True)
        ]
    }


service = FeatureService(name="user_service", features=[users[["age", "tier"]], boosted])
late = FeatureView(
    name="late",
    entities=[user],
    ttl=None,
    source=users_src,
    schema=[Field(name="tier", dtype=String)],
)
OBJECTS = [user, users, req, boosted, service]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_repo(root: Path, online: dict[str, Any] | None = None, **extra: Any) -> FeatureStore:
    """A feature repo at ``root`` (SQLite registry), applied and materialized."""
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "project": f"p{uuid.uuid4().hex[:8]}",
        "registry": "data/registry.db",
        "online_store": online or {"type": "sqlite", "path": "data/online.db"},
        **extra,
    }
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config))
    (root / "data").mkdir(exist_ok=True)
    hours = [timedelta(hours=h) for h in (1, 2, 3)]
    pq.write_table(
        pa.table(
            {
                "user_id": [1, 2, 3],
                "age": [31, 40, None],
                "score": pa.array([1.5, 2.5, 3.5], pa.float32()),
                "tier": ["b", "c", "d"],
                "avatar": [b"\x00\xff", None, b"hi"],
                "last_login": pa.array([NOW - timedelta(days=2)] * 3, pa.timestamp("us", tz="UTC")),
                "ts": pa.array([NOW - h for h in hours], pa.timestamp("us", tz="UTC")),
            }
        ),
        root / "data/users.parquet",
    )
    store = FeatureStore(repo_path=root)
    store.apply(OBJECTS)
    store.materialize(NOW - timedelta(days=3), NOW)
    return store


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"no healthy server at {url}")


def start_cli(
    repo: Path, *args: str, log: Any = subprocess.PIPE
) -> tuple[subprocess.Popen[bytes], str]:
    """``pitstop serve`` in a subprocess; its stderr goes to ``log`` (a pipe by default: read
    by :func:`stop`, so a server that logs more than the pipe holds needs a file instead)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "pitstop.cli.main",
        "-c",
        str(repo),
        "serve",
        "-p",
        str(port),
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM the server; its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return (err or b"").decode()


@contextlib.contextmanager
def thread_server(store: FeatureStore, **options: Any) -> Iterator[str]:
    """uvicorn serving ``store`` in a thread; yields the base URL."""
    import uvicorn

    from pitstop.server import create_app
    from pitstop.server.transport import http_protocol

    port = free_port()
    app = create_app(store, **options)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="none",
        http=http_protocol(),
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, FeatureStore]]:
    root = tmp_path_factory.mktemp("server") / "repo"
    store = write_repo(root)
    yield root, store
    store.close()


@pytest.fixture(scope="module")
def server(repo: tuple[Path, FeatureStore]) -> Iterator[str]:
    proc, url = start_cli(repo[0], "--registry-ttl-sec", "0.3")
    yield url
    stop(proc)


def post(url: str, path: str, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}{path}", content=content, headers=headers, timeout=30)


def columns(response: httpx.Response) -> dict[str, dict[str, list[Any]]]:
    """Feast's column-major response by name; checks the shape on the way."""
    data = response.json()
    assert response.status_code == 200, data
    assert set(data) == {"metadata", "results"}
    names = data["metadata"]["feature_names"]
    assert len(names) == len(data["results"])
    for result in data["results"]:
        assert set(result) == {"values", "statuses", "event_timestamps"}
        assert len(result["values"]) == len(result["statuses"]) == len(result["event_timestamps"])
        assert all(ISO.match(t) for t in result["event_timestamps"])
    return dict(zip(names, data["results"], strict=True))


# --- reads ------------------------------------------------------------------------------------


def test_get_online_features_has_feasts_shape(server: str, repo: tuple[Path, Any]) -> None:
    body = {
        "features": ["users:tier", "users:age", "users:score"],
        "entities": {"user_id": [1, 3, 99]},
    }
    got = columns(post(server, "/get-online-features", body))
    assert list(got) == ["user_id", "tier", "age", "score"]  # entity keys first, asked order
    assert got["user_id"] == {
        "values": [1, 3, 99],
        "statuses": ["PRESENT"] * 3,
        "event_timestamps": [EPOCH] * 3,
    }
    assert got["tier"]["values"] == ["b", "d", None]
    assert got["age"]["statuses"] == ["PRESENT", "NULL_VALUE", "NOT_FOUND"]
    stamp = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert got["age"]["event_timestamps"] == [
        stamp,
        (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        EPOCH,
    ]
    expected = repo[1].get_online_features(body["features"], body["entities"]).to_dict()
    assert {k: v["values"] for k, v in got.items()} == expected


def test_value_types_on_the_wire(server: str) -> None:
    body = {"features": ["users:avatar", "users:last_login"], "entities": {"user_id": [1, 2]}}
    got = columns(post(server, "/get-online-features", body))
    assert got["avatar"]["values"] == ["AP8=", None]  # base64, like protobuf's JSON
    assert got["last_login"]["values"] == [int((NOW - timedelta(days=2)).timestamp())] * 2


def test_feature_service_full_names_and_request_data(server: str) -> None:
    body = {
        "feature_service": "user_service",
        "full_feature_names": True,
        "entities": {"user_id": [1, 2], "bonus": [1.0, 0.5]},
    }
    got = columns(post(server, "/get-online-features", body))
    assert list(got) == ["user_id", "users__age", "users__tier", "boosted__boosted"]  # no bonus
    assert got["boosted__boosted"]["values"] == [1.5 * 31 + 1.0, 2.5 * 40 + 0.5]
    assert got["boosted__boosted"]["event_timestamps"] == [EPOCH, EPOCH]


def test_http_and_in_process_answers_agree_without_request_data(
    server: str, repo: tuple[Path, Any]
) -> None:
    body = {"features": ["users:age", "boosted:boosted"],
            "entities": {"bonus": [1.0, 2.0], "user_id": [1, 99], "label": [1, 0]}}  # fmt: skip
    got = columns(post(server, "/get-online-features", body))
    assert list(got) == ["user_id", "age", "boosted"]
    expected = repo[1].get_online_features(body["features"], body["entities"])
    assert {k: v["values"] for k, v in got.items()} == expected.to_dict()
    assert got["boosted"]["statuses"] == ["PRESENT", "NOT_FOUND"] == expected.statuses["boosted"]
    assert got["boosted"]["values"] == [1.5 * 31 + 1.0, None]


def test_features_and_feature_service_together_are_refused(server: str) -> None:
    body = {"features": ["users:age"], "feature_service": "user_service",
            "entities": {"user_id": [1]}}  # fmt: skip
    r = post(server, "/get-online-features", body)
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "RetrievalError",
        "message": "the request body has both 'features' and 'feature_service'; send one of them",
    }
    body["features"] = None  # null counts as absent, as in Feast
    body["entities"] = {"user_id": [1], "bonus": [0.0]}
    assert columns(post(server, "/get-online-features", body))["age"]["values"] == [31]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2**70, "1.1805916207174113e+21"), (2**64 - 1, str(2**64 - 1)), (-(2**63) - 1, None)],
)
def test_out_of_range_key_names_its_type(server: str, value: int, shown: str | None) -> None:
    body = {"features": ["users:age"], "entities": {"user_id": [1, value]}}
    r = post(server, "/get-online-features", body)
    assert r.status_code == 400
    shown = shown or repr(float(value))  # JSON integers beyond 64 bits are read as floats
    assert r.json()["error"]["message"] == (
        f"join key 'user_id' of feature view 'users' is Int64: {shown} is out of its range "
        f"({-(2**63)} to {2**63 - 1})"
    )


# --- writes -----------------------------------------------------------------------------------


def _row(uid: int, age: int, tier: str, hours_ago: float = 0.1) -> dict[str, list[Any]]:
    ts = (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "user_id": [uid],
        "age": [age],
        "score": [0.5],
        "tier": [tier],
        "avatar": [None],
        "last_login": [None],
        "ts": [ts],
    }


def _tier(url: str, uid: int) -> Any:
    body = {"features": ["users:tier"], "entities": {"user_id": [uid]}}
    return columns(post(url, "/get-online-features", body))["tier"]["values"][0]


def test_push_and_write_to_online_store(server: str) -> None:
    r = post(server, "/push", {"push_source_name": "users_push", "df": _row(500, 5, "x")})
    assert r.status_code == 200, r.text
    assert r.json()["written"] == 1
    assert _tier(server, 500) == "x"
    older = {"push_source_name": "users_push", "df": _row(500, 6, "old", hours_ago=5)}
    assert post(server, "/push", older).status_code == 200
    assert _tier(server, 500) == "x"  # event-time order holds through the server
    body = {"feature_view_name": "users", "df": _row(501, 7, "w")}
    r = post(server, "/write-to-online-store", body)
    assert r.status_code == 200, r.text
    assert _tier(server, 501) == "w"
    offline = {"push_source_name": "users_push", "df": _row(502, 1, "o"), "to": "offline"}
    assert post(server, "/push", offline).json()["written"] == 0
    assert _tier(server, 502) is None


def test_materialize_endpoints(server: str) -> None:
    start, end = (NOW - timedelta(days=3)).isoformat(), NOW.isoformat()
    r = post(server, "/materialize", {"start_ts": start, "end_ts": end, "feature_views": ["users"]})
    assert r.status_code == 200, r.text
    [done] = r.json()["materialized"]
    assert done["feature_view"] == "users" and done["rows"] >= 3  # + offline pushes
    r = post(server, "/materialize-incremental", {"end_ts": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert r.status_code == 200, r.text
    assert [m["feature_view"] for m in r.json()["materialized"]] == ["users"]


# --- errors -----------------------------------------------------------------------------------

G, R, N = "/get-online-features", (400, "RetrievalError"), (404, "NotFoundError")


def _get(features: list[str], **entities: Any) -> dict[str, Any]:
    return {"features": features, "entities": entities}


ERRORS = [
    (G, b"{not json", R),
    (G, b"[1, 2]", R),
    (G, {"features": ["users:age"]}, R),  # no entities
    (G, _get(["users:age"], user_id=1), R),  # not a list
    (G, _get(["users:agee"], user_id=[1]), N),
    (G, _get(["nope:age"], user_id=[1]), N),
    (G, {"feature_service": "nope", "entities": {"user_id": [1]}}, N),
    (G, _get(["users:age"], user_id=["1"]), R),  # wrong entity type
    (G, _get(["users:age"], user_id=[2**64 - 1]), R),  # beyond 64 bits
    (G, _get(["boosted:boosted"], user_id=[1]), R),  # missing request data
    (G, _get(["boosted:boosted"], user_id=[1], bonus=["x"]), R),  # request data of a wrong type
    ("/materialize", {"start_ts": "yesterday", "end_ts": "2024-01-01"}, R),
    ("/materialize", {"start_ts": "2024-02-01", "end_ts": "2024-01-01"}, R),
    ("/materialize-incremental", {"end_ts": 5}, R),
    ("/push", {"push_source_name": "nope", "df": {"user_id": [1]}}, N),
    ("/push", {"push_source_name": "users_push", "df": _row(1, 1, "a"), "to": "both"}, R),
    ("/push", {"push_source_name": "users_push", "df": {"user_id": [1, "a"]}}, R),
    ("/push", {"push_source_name": "users_push", "df": {"user_id": [1]}}, R),  # columns missing
    ("/write-to-online-store", {"feature_view_name": "boosted", "df": _row(1, 1, "a")},
     (422, "DefinitionError")),
    ("/nowhere", {}, N),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "expected"), ERRORS)
def test_bad_requests_are_4xx_with_an_error_body(
    server: str, path: str, body: Any, expected: tuple[int, str]
) -> None:
    r = post(server, path, body)
    assert r.status_code == expected[0], r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["type"] == expected[1] and set(error) == {"type", "message"} and error["message"]


def test_wrong_method_is_405(server: str) -> None:
    r = httpx.get(f"{server}/push")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["type"] == "MethodNotAllowed"


# --- operations -------------------------------------------------------------------------------


def test_health_metrics_openapi_docs(server: str) -> None:
    r = httpx.get(f"{server}/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    post(server, "/get-online-features", {"features": ["users:age"], "entities": {"user_id": [1]}})
    post(server, "/get-online-features", {"features": ["users:nope"], "entities": {}})
    metrics = httpx.get(f"{server}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert re.search(
        r"pitstop_server_request_duration_seconds_count\{endpoint="
        r'"/get-online-features"\} [1-9]',
        text,
    )
    assert re.search(r"pitstop_server_entity_rows_total [1-9]", text)
    assert re.search(r"pitstop_server_online_read_duration_seconds_count [1-9]", text)
    assert re.search(r'pitstop_server_errors_total\{type="NotFoundError"\} [1-9]', text)
    doc = httpx.get(f"{server}/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/get-online-features" in doc["paths"]
    page = httpx.get(f"{server}/docs")
    assert page.headers["content-type"].startswith("text/html") and "/push" in page.text


def test_registry_changes_are_served_after_the_ttl(
    server: str, repo: tuple[Path, FeatureStore]
) -> None:
    body = {"features": ["late:tier"], "entities": {"user_id": [1]}}
    assert post(server, "/get-online-features", body).status_code == 404
    store = repo[1]
    store.apply([late])
    store.materialize(NOW - timedelta(days=3), NOW, ["late"])
    deadline = time.monotonic() + 5
    while (r := post(server, "/get-online-features", body)).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05)
    assert columns(r)["tier"]["values"] == ["b"]


def test_api_keys(tmp_path: Path, repo: tuple[Path, FeatureStore], monkeypatch: Any) -> None:
    (tmp_path / "keys").write_text(f"# keys\n{RW_KEY}:rw\n{RO_KEY}:ro\n")
    monkeypatch.setenv("PITSTOP_TEST_KEYS", "env-key")
    auth = {"keys_file": str(tmp_path / "keys"), "keys_env": "PITSTOP_TEST_KEYS"}
    store = FeatureStore(
        config=repo[1].config.model_copy(
            update={"feature_server": repo[1].config.feature_server.model_validate({"auth": auth})}
        )
    )
    read = {"features": ["users:age"], "entities": {"user_id": [1]}}
    write = {"push_source_name": "users_push", "df": _row(600, 1, "k")}
    with thread_server(store) as url:
        assert post(url, "/get-online-features", read).status_code == 401
        r = post(url, "/get-online-features", read, key="wrong")
        assert r.status_code == 401 and r.json()["error"]["type"] == "Unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert post(url, "/get-online-features", read, key=RO_KEY).status_code == 200
        assert post(url, "/get-online-features", read, key="env-key").status_code == 200
        r = post(url, "/push", write, key=RO_KEY)
        assert r.status_code == 403 and r.json()["error"]["type"] == "Forbidden"
        assert post(url, "/push", write, key=RW_KEY).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200  # probes need no key
        assert httpx.get(f"{url}/metrics").status_code == 401
    store.close()


def test_health_is_503_when_the_online_store_is_unreachable(repo: tuple[Path, Any]) -> None:
    config = repo[1].config.model_copy(
        update={
            "online_store": repo[1].config.online_store.model_validate(
                {"path": "/dev/null/online.db"}
            )
        }
    )
    store = FeatureStore(config=config)
    with thread_server(store) as url:
        r = httpx.get(f"{url}/health", timeout=10)
        assert r.status_code == 503
        assert r.json()["error"]["type"] == "BackendUnavailableError"
        body = {"features": ["users:age"], "entities": {"user_id": [1]}}
        assert post(url, "/get-online-features", body).status_code == 503
    store.close()


@pytest.mark.redis
def test_redis_online_store(tmp_path: Path, redis_url: str, redis_key_prefix: str) -> None:
    online = {"type": "redis", "connection_string": redis_url, "key_prefix": redis_key_prefix}
    store = write_repo(tmp_path / "repo", online)
    try:
        with thread_server(store) as url:
            body = {"features": ["users:age", "users:tier"], "entities": {"user_id": [1, 99]}}
            got = columns(post(url, "/get-online-features", body))
            assert got["age"]["values"] == [31, None] and got["tier"]["statuses"][1] == "NOT_FOUND"
            push = {"push_source_name": "users_push", "df": _row(700, 7, "r")}
            assert post(url, "/push", push).status_code == 200
            assert _tier(url, 700) == "r"
            assert httpx.get(f"{url}/health").json()["status"] == "ok"
    finally:
        store.teardown()
        store.close()


# --- process ----------------------------------------------------------------------------------


def test_sigterm_finishes_the_request_in_flight(repo: tuple[Path, Any]) -> None:
    proc, url = start_cli(repo[0])
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"features": ["users:age"], "entities": {"user_id": [1]}}).encode()
    head = b"POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(head % len(body) + body[:10])
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert proc.poll() is None  # still waiting for the rest of the body
            conn.sendall(body[10:])
            answer = b""
            while chunk := conn.recv(65536):  # the server closes the connection after it
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b'"feature_names":["user_id","age"]' in answer
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert b"Traceback" not in err


def test_two_workers(repo: tuple[Path, Any]) -> None:
    proc, url = start_cli(repo[0], "--workers", "2", "--host", "127.0.0.1")
    try:
        body = {"features": ["users:tier"], "entities": {"user_id": [2]}}
        for _ in range(4):
            assert columns(post(url, "/get-online-features", body))["tier"]["values"] == ["c"]
    finally:
        stop(proc)
    assert proc.returncode == 0


def test_web_stack_is_imported_lazily_and_missing_extra_is_explained(
    repo: tuple[Path, Any], monkeypatch: Any
) -> None:
    code = (
        "import sys, pitstop, pitstop.server; print(sorted(m for m in ('uvicorn', "
        "'starlette', 'orjson', 'uvloop') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'pitstop\[server\]'"):
        repo[1].serve(port=free_port())


def test_cli_serve_help_names_the_host_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pitstop.cli.main", "serve", "-h"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "-H, --host" in out.stdout and "--registry-ttl-sec" in out.stdout


def test_api_key_file_format() -> None:
    from pitstop.errors import ConfigError
    from pitstop.server.auth import parse_keys

    keys = parse_keys("# c\na:rw\n\nb:ro c\nd:e:rw,plain\n", "f")
    assert sorted(keys.values()) == ["ro", "ro", "ro", "rw", "rw"]
    with pytest.raises(ConfigError):
        parse_keys(":rw", "f")
    assert os.environ.get("PITSTOP_SERVER_WORKER_STATE") is None
