"""The online store conformance suite: every backend behaves like the in-memory reference.

``open_store`` runs each test once per backend (memory, SQLite, Redis, PostgreSQL); every store
opened in a test gets a project name of its own, Redis keys live under the session's prefix and
PostgreSQL tables in a schema of the session. A backend's gap would be declared on the test with
a strict xfail naming it; there are none today.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import POSTGRES_URL
from pitstop.config import (
    MemoryOnlineConfig,
    PostgresOnlineConfig,
    RedisOnlineConfig,
    SqliteOnlineConfig,
)
from pitstop.errors import BackendUnavailableError, ConfigError
from pitstop.online import BUILTIN_STORES, OnlineStore, ReadRow, StoredRow, open_online_store

OpenStore = Callable[..., OnlineStore]
BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
]
T0 = 1_700_000_000_000_000  # microseconds since the epoch


@pytest.fixture(scope="session")
def postgres_online_schema(postgres_admin: Any) -> Iterator[str]:
    """A schema name for this session's PostgreSQL stores; the store creates it."""
    schema = f"pitstop_online_{uuid.uuid4().hex[:12]}"
    yield schema
    postgres_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _config(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if backend == "memory":
        return MemoryOnlineConfig()
    if backend == "sqlite":
        return SqliteOnlineConfig(path="data/online.db")
    if backend == "redis":
        url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_key_prefix"))
        return RedisOnlineConfig(connection_string=url, key_prefix=prefix)
    schema = request.getfixturevalue("postgres_online_schema")
    return PostgresOnlineConfig(conninfo=POSTGRES_URL, db_schema=schema)


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """``open_store(project=None)``: a store of this test's backend (a new project if None)."""
    config = _config(request.param, request, tmp_path)
    opened: list[OnlineStore] = []

    def factory(project: str | None = None) -> OnlineStore:
        name = project or f"test_{uuid.uuid4().hex[:12]}"
        opened.append(open_online_store(config, name, tmp_path))
        return opened[-1]

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> OnlineStore:
    return open_store()


def row(key: bytes, event_ts: int, value: bytes = b"v", created_ts: int = 0) -> StoredRow:
    return StoredRow(key, event_ts, created_ts, value)


def values(store: OnlineStore, view: str, keys: list[bytes]) -> list[bytes | None]:
    return [r and r.value for r in store.read([(view, keys)])[0]]


# -- reads and writes --------------------------------------------------------------------------


def test_write_then_read(store: OnlineStore) -> None:
    store.update(["stats"], [])
    store.write("stats", [row(b"a", T0, b"one", T0 + 5), row(b"b", T0 + 1, b"two")])
    assert store.read([("stats", [b"a", b"b"])]) == [[ReadRow(T0, b"one"), ReadRow(T0 + 1, b"two")]]


def test_write_without_update_creates_the_view(store: OnlineStore) -> None:
    store.write("stats", [row(b"a", T0)])
    assert values(store, "stats", [b"a"]) == [b"v"]


def test_missing_key_reads_none(store: OnlineStore) -> None:
    store.write("stats", [row(b"a", T0)])
    assert store.read([("stats", [b"nope"])]) == [[None]]


def test_never_written_view_reads_none(store: OnlineStore) -> None:
    store.write("stats", [row(b"a", T0)])
    assert store.read([("ghost", [b"a", b"b"])]) == [[None, None]]
    assert store.read([("ghost", [b"a"]), ("stats", [b"a"])]) == [[None], [ReadRow(T0, b"v")]]
    store.update(["empty"], [])
    assert store.read([("empty", [b"a"])]) == [[None]]


def test_empty_requests(store: OnlineStore) -> None:
    store.write("stats", [])
    assert store.read([]) == []
    assert store.read([("stats", [])]) == [[]]


def test_several_views_and_keys_in_request_order(store: OnlineStore) -> None:
    store.write("a", [row(b"k1", T0, b"a1"), row(b"k2", T0, b"a2"), row(b"k3", T0, b"a3")])
    store.write("b", [row(b"k2", T0 + 7, b"b2"), row(b"c9", T0, b"c9")])
    result = store.read([("b", [b"k3", b"k2", b"c9"]), ("a", [b"k3", b"k1", b"k3", b"x", b"k2"])])
    assert result == [
        [None, ReadRow(T0 + 7, b"b2"), ReadRow(T0, b"c9")],
        [ReadRow(T0, b"a3"), ReadRow(T0, b"a1"), ReadRow(T0, b"a3"), None, ReadRow(T0, b"a2")],
    ]
    assert store.read([("a", [b"k1"]), ("a", [b"k2"])]) == [
        [ReadRow(T0, b"a1")],
        [ReadRow(T0, b"a2")],
    ]


# -- event-time ordering ------------------------------------------------------------------------


def test_older_write_after_newer_is_ignored(store: OnlineStore) -> None:
    store.write("v", [row(b"k", T0 + 10, b"new", created_ts=1)])
    store.write("v", [row(b"k", T0 + 9, b"old", created_ts=99)])
    assert store.read([("v", [b"k"])]) == [[ReadRow(T0 + 10, b"new")]]
    store.write("v", [row(b"k", T0 + 11, b"newer")])
    assert values(store, "v", [b"k"]) == [b"newer"]


def test_equal_event_ts_larger_created_ts_wins(store: OnlineStore) -> None:
    store.write("v", [row(b"k", T0, b"second", created_ts=T0 + 2)])
    store.write("v", [row(b"k", T0, b"first", created_ts=T0 + 1)])
    assert values(store, "v", [b"k"]) == [b"second"]
    store.write("v", [row(b"k", T0, b"third", created_ts=T0 + 3)])
    assert values(store, "v", [b"k"]) == [b"third"]


def test_equal_timestamps_last_write_wins(store: OnlineStore) -> None:
    store.write("v", [row(b"k", T0, b"first", created_ts=5)])
    store.write("v", [row(b"k", T0, b"last", created_ts=5)])
    assert values(store, "v", [b"k"]) == [b"last"]


@pytest.mark.parametrize("reverse", [False, True], ids=["oldest-first", "newest-first"])
def test_rows_of_one_key_in_one_write_newest_wins(store: OnlineStore, reverse: bool) -> None:
    rows = [row(b"k", T0, b"a"), row(b"k", T0 + 2, b"c"), row(b"k", T0 + 1, b"b", T0 + 9)]
    rows += [row(b"j", T0, b"x", created_ts=1), row(b"j", T0, b"y", created_ts=2)]
    store.write("v", rows[::-1] if reverse else rows)
    assert values(store, "v", [b"k", b"j"]) == [b"c", b"y"]


def test_equal_rows_in_one_write_last_wins(store: OnlineStore) -> None:
    store.write("v", [row(b"k", T0, b"first"), row(b"k", T0, b"middle"), row(b"k", T0, b"last")])
    assert values(store, "v", [b"k"]) == [b"last"]


def test_timestamps_one_microsecond_apart_and_negative(store: OnlineStore) -> None:
    store.write("v", [row(b"k", T0 + 1, b"new"), row(b"n", -5, b"1969")])
    store.write("v", [row(b"k", T0, b"old"), row(b"n", -6, b"older")])
    assert store.read([("v", [b"k", b"n"])]) == [[ReadRow(T0 + 1, b"new"), ReadRow(-5, b"1969")]]


# -- update, teardown ---------------------------------------------------------------------------


def test_update_drop_removes_only_those_views(open_store: OpenStore) -> None:
    store, other = open_store(), open_store()
    for s in (store, other):
        s.update(["a", "b"], [])
        s.write("a", [row(b"k", T0, b"a")])
        s.write("b", [row(b"k", T0, b"b")])
    store.update(["b"], ["a"])
    assert store.read([("a", [b"k"]), ("b", [b"k"])]) == [[None], [ReadRow(T0, b"b")]]
    assert values(other, "a", [b"k"]) == [b"a"]
    store.write("a", [row(b"k", T0 - 1, b"again")])  # a dropped view starts afresh
    assert values(store, "a", [b"k"]) == [b"again"]


def test_teardown_removes_the_project_only(open_store: OpenStore) -> None:
    store, other = open_store(), open_store()
    for s in (store, other):
        s.write("a", [row(b"k", T0, b"a")])
        s.write("b", [row(b"k", T0, b"b")])
    store.teardown(["a", "b"])
    assert store.read([("a", [b"k"]), ("b", [b"k"])]) == [[None], [None]]
    assert other.read([("a", [b"k"]), ("b", [b"k"])]) == [
        [ReadRow(T0, b"a")],
        [ReadRow(T0, b"b")],
    ]
    store.write("a", [row(b"k", T0 - 1, b"again")])
    assert values(store, "a", [b"k"]) == [b"again"]


def test_project_names_do_not_collide(open_store: OpenStore) -> None:
    one, two = open_store("proj"), open_store("proj_x")
    one.write("x_v", [row(b"k", T0, b"one")])
    two.write("v", [row(b"k", T0, b"two")])
    assert values(one, "x_v", [b"k"]) == [b"one"]
    assert values(two, "x_v", [b"k"]) == [None]
    two.teardown(["v"])
    assert values(one, "x_v", [b"k"]) == [b"one"]


# -- keys, names, sizes -------------------------------------------------------------------------

ODD_KEYS = [bytes(range(256)), b"{", b"}", b"{x}", b"}{", b"", b"\x00", "é".encode(), b"%s"]
ODD_VIEWS = ["driver-stats.v2", 'quo"te', "per%cent", "sp ace", "créé", "x" * 80, "x" * 81]


def test_binary_keys_with_arbitrary_bytes(store: OnlineStore) -> None:
    store.write("v", [row(key, T0, b"=" + key) for key in ODD_KEYS])
    assert values(store, "v", ODD_KEYS) == [b"=" + key for key in ODD_KEYS]


def test_view_names_with_odd_characters(store: OnlineStore) -> None:
    store.update(ODD_VIEWS, [])
    for view in ODD_VIEWS:
        store.write(view, [row(b"k", T0, view.encode())])
    result = store.read([(view, [b"k"]) for view in ODD_VIEWS])
    assert result == [[ReadRow(T0, view.encode())] for view in ODD_VIEWS]
    store.update([], ODD_VIEWS[:1])
    assert values(store, ODD_VIEWS[0], [b"k"]) == [None]
    assert values(store, ODD_VIEWS[1], [b"k"]) == [ODD_VIEWS[1].encode()]


def test_large_batch_round_trips(store: OnlineStore) -> None:
    keys = [i.to_bytes(4, "big") for i in range(20_000)]
    store.write("a", [row(k, T0 + i, k * 4) for i, k in enumerate(keys)])
    store.write("b", [row(k, T0, k) for k in keys[::2]])
    a, b = store.read([("a", keys), ("b", keys)])  # 40k keys: beyond SQLite's variable limit
    assert a == [ReadRow(T0 + i, k * 4) for i, k in enumerate(keys)]
    assert b == [ReadRow(T0, k) if i % 2 == 0 else None for i, k in enumerate(keys)]


def test_values_of_100_kb(store: OnlineStore) -> None:
    big = bytes(range(256)) * 400
    store.write("v", [row(b"k", T0, big), row(b"j", T0, big[::-1])])
    assert values(store, "v", [b"k", b"j"]) == [big, big[::-1]]


# -- concurrency --------------------------------------------------------------------------------


def test_threads_read_and_write_concurrently(store: OnlineStore) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            start.wait()
            key = f"thread-{n}".encode()
            for i in range(60):
                store.write("shared", [row(b"common", T0 + i, b"%d" % i), row(key, T0 + i)])
                assert store.read([("shared", [key])])[0][0] == ReadRow(T0 + i, b"v")
                store.read([("shared", [b"common", key]), ("other", [key])])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.read([("shared", [b"common"])]) == [[ReadRow(T0 + 59, b"59")]]


# -- the protocol and the factory ---------------------------------------------------------------


def test_capabilities(store: OnlineStore) -> None:
    assert store.capabilities.shared is (type(store).__name__ != "MemoryOnlineStore")
    assert store.capabilities.max_write_batch > 0


@pytest.mark.parametrize("backend", sorted(BUILTIN_STORES))
def test_store_classes_match_the_protocol(backend: str) -> None:
    module, _, name = BUILTIN_STORES[backend].partition(":")
    cls = getattr(__import__(module, fromlist=[name]), name)
    for method in ("update", "write", "read", "teardown", "close"):
        expected = inspect.signature(getattr(OnlineStore, method))
        assert inspect.signature(getattr(cls, method)) == expected, f"{name}.{method}"
    assert list(inspect.signature(cls).parameters) == ["config", "project", "repo_path"]


def test_unknown_store_type_is_a_config_error(tmp_path: Path) -> None:
    class Config:
        type = "cassandra"

    with pytest.raises(ConfigError, match=r"'cassandra' is not an online store; allowed: .*redis"):
        open_online_store(Config(), "p", tmp_path)


def test_importing_online_loads_no_driver() -> None:
    code = "import sys, pitstop.online; print(sorted({'redis', 'psycopg'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unreachable_redis_is_backend_unavailable(tmp_path: Path) -> None:
    config = RedisOnlineConfig(connection_string="127.0.0.1:1,password=s3cret")
    store = open_online_store(config, "p", tmp_path)
    try:
        with pytest.raises(BackendUnavailableError, match=r"Redis at 127\.0\.0\.1:1 ") as info:
            store.read([("v", [b"k"])])
        assert "s3cret" not in str(info.value)
        with pytest.raises(BackendUnavailableError):
            store.write("v", [row(b"k", T0)])
    finally:
        store.close()


def test_unreachable_postgres_is_backend_unavailable(tmp_path: Path) -> None:
    config = PostgresOnlineConfig(host="127.0.0.1", port=1, password="s3cret")
    store = open_online_store(config, "p", tmp_path)
    try:
        with pytest.raises(BackendUnavailableError, match=r"PostgreSQL at 127\.0\.0\.1:1 ") as info:
            store.read([("v", [b"k"])])
        assert "s3cret" not in str(info.value)
    finally:
        store.close()


# -- backend specifics --------------------------------------------------------------------------


def test_sqlite_file_is_shared_and_in_wal_mode(tmp_path: Path) -> None:
    config = SqliteOnlineConfig(path="nested/dir/online.db")
    one = open_online_store(config, "p", tmp_path)
    two = open_online_store(config, "p", tmp_path)
    try:
        one.write("v", [row(b"k", T0, b"one")])
        assert values(two, "v", [b"k"]) == [b"one"]
        two.teardown(["v"])
        one.write("v", [row(b"k", T0, b"again")])  # its table was dropped behind its back
        assert values(two, "v", [b"k"]) == [b"again"]
    finally:
        one.close()
        two.close()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "nested/dir/online.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == {"p:v"}
    finally:
        conn.close()


@pytest.mark.redis
def test_redis_key_layout_and_ttl(redis_url: str, redis_key_prefix: str, tmp_path: Path) -> None:
    import redis

    config = RedisOnlineConfig(
        connection_string=redis_url, key_prefix=redis_key_prefix, key_ttl_seconds=100
    )
    store = open_online_store(config, "layout", tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        store.write("v", [row(b"}{", T0, b"val", created_ts=T0 + 1)])
        key = f"{redis_key_prefix}layout:{{7d7b}}".encode()
        stored = client.hget(key, "v")
        assert stored == (T0).to_bytes(8, "big") + (T0 + 1).to_bytes(8, "big") + b"val"
        assert 0 < client.ttl(key) <= 100
    finally:
        client.close()
        store.close()


@pytest.mark.redis
def test_redis_loads_its_script_when_the_server_lacks_it(
    redis_url: str, redis_key_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from pitstop.online import redis as redis_store

    script = redis_store._WRITE_SCRIPT + f"-- {uuid.uuid4().hex}\n".encode()  # unknown to Redis
    monkeypatch.setattr(redis_store, "_WRITE_SCRIPT", script)
    monkeypatch.setattr(redis_store, "_WRITE_SHA", hashlib.sha1(script).hexdigest())
    config = RedisOnlineConfig(connection_string=redis_url, key_prefix=redis_key_prefix)
    store = open_online_store(config, f"test_{uuid.uuid4().hex[:12]}", tmp_path)
    try:
        store.write("v", [row(b"k", T0, b"loaded")])
        assert values(store, "v", [b"k"]) == [b"loaded"]
    finally:
        store.close()
