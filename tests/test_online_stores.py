"""The online store conformance suite: every backend behaves like the in-memory reference.

``open_store`` runs each test once per backend (memory, SQLite, Redis, a three-node Redis
Cluster, PostgreSQL); every store opened in a test gets a project name of its own, Redis keys
live under the session's prefix (the cluster is the session's own) and PostgreSQL tables in a
schema of the session. A backend's gap would be declared on the test with
a strict xfail naming it; there are none today.
"""

from __future__ import annotations

import inspect
import multiprocessing
import random
import re
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import POSTGRES_URL
from pitstop import backends
from pitstop.errors import BackendUnavailableError, DefinitionError, PitstopError
from pitstop.online import OnlineStore, ReadRow, StoredRow
from pitstop.online.base import Change, EventTimes
from pitstop.online.memory import MemoryOnlineConfig, MemoryOnlineStore
from pitstop.online.postgres import PostgresOnlineConfig, PostgresOnlineStore
from pitstop.online.redis import RedisOnlineStore
from pitstop.online.redis_config import RedisOnlineConfig
from pitstop.online.sqlite import SqliteOnlineConfig, SqliteOnlineStore

OpenStore = Callable[..., OnlineStore]
BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster", marks=pytest.mark.redis),
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
    if backend == "redis_cluster":  # a cluster of the session's own: no prefix needed
        nodes = request.getfixturevalue("redis_cluster")
        return RedisOnlineConfig(redis_type="redis_cluster", connection_string=nodes)
    schema = request.getfixturevalue("postgres_online_schema")
    return PostgresOnlineConfig(conninfo=POSTGRES_URL, db_schema=schema)


@pytest.fixture(params=BACKENDS)
def online_config(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The config of this test's backend (parametrize it indirectly to pick backends)."""
    return _config(request.param, request, tmp_path)


@pytest.fixture
def open_store(online_config: Any, tmp_path: Path) -> Iterator[OpenStore]:
    """``open_store(project=None)``: a store of this test's backend (a new project if None)."""
    opened: list[OnlineStore] = []

    def factory(project: str | None = None) -> OnlineStore:
        name = project or f"test_{uuid.uuid4().hex[:12]}"
        opened.append(online_config.open(name, tmp_path))
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


# -- modify (read-modify-write) -----------------------------------------------------------------

SHARED_BACKENDS = BACKENDS[1:]  # several processes see the same data


def backend_of(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["online_config"])


def test_modify_creates_updates_and_leaves_none_untouched(store: OnlineStore) -> None:
    store.write("v", [row(b"a", T0, b"a0"), row(b"b", T0, b"b0")])
    seen: list[list[ReadRow | None]] = []

    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        seen.append(current)
        return [row(b"a", T0 - 5, b"a1", created_ts=7), None, row(b"c", T0 + 3, b"c1"), None]

    store.modify("v", [b"a", b"b", b"c", b"d"], change)
    assert seen == [[ReadRow(T0, b"a0"), ReadRow(T0, b"b0"), None, None]]
    assert store.read([("v", [b"a", b"b", b"c", b"d"])]) == [
        [ReadRow(T0 - 5, b"a1"), ReadRow(T0, b"b0"), ReadRow(T0 + 3, b"c1"), None]
    ]
    # modify ignored event time (T0 - 5 replaced T0); writes compare with what it stored
    store.write("v", [row(b"a", T0 - 5, b"older", created_ts=6)])
    assert values(store, "v", [b"a"]) == [b"a1"]
    store.write("v", [row(b"a", T0 - 5, b"tie", created_ts=7)])
    assert store.read([("v", [b"a"])]) == [[ReadRow(T0 - 5, b"tie")]]


def test_modify_of_a_view_never_written_creates_it(store: OnlineStore) -> None:
    seen: list[list[ReadRow | None]] = []

    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        seen.append(current)
        return [row(b"k", T0, b"first")]

    store.modify("fresh", [b"k"], change)
    assert seen == [[None]]
    assert store.read([("fresh", [b"k"]), ("other", [b"k"])]) == [[ReadRow(T0, b"first")], [None]]


def test_modify_gets_rows_in_key_order_odd_and_repeated_keys(store: OnlineStore) -> None:
    store.write("v", [row(key, T0 + i, b"=" + key) for i, key in enumerate(ODD_KEYS)])
    keys = [*ODD_KEYS[::-1], b"absent", ODD_KEYS[0]]
    seen: list[list[ReadRow | None]] = []

    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        seen.append(current)
        return [row(key, T0 + 100 + pos, b"%d" % pos) for pos, key in enumerate(keys)]

    store.modify("v", keys, change)
    stored = {key: ReadRow(T0 + i, b"=" + key) for i, key in enumerate(ODD_KEYS)}
    assert seen == [[stored.get(key) for key in keys]]
    last = {key: pos for pos, key in enumerate(keys)}  # a repeated key ends with its last row
    assert store.read([("v", keys)]) == [
        [ReadRow(T0 + 100 + last[key], b"%d" % last[key]) for key in keys]
    ]


def test_modify_without_keys_does_nothing(store: OnlineStore) -> None:
    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        raise AssertionError("change called without keys")

    store.modify("v", [], change)
    assert store.read([("v", [b"k"])]) == [[None]]


def test_modify_whose_change_fails_writes_nothing(store: OnlineStore) -> None:
    store.write("v", [row(b"a", T0, b"a0")])

    def boom(current: list[ReadRow | None]) -> list[StoredRow | None]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.modify("v", [b"a", b"b"], boom)
    with pytest.raises(PitstopError, match="1 items for 2 keys"):
        store.modify("v", [b"a", b"b"], lambda current: [row(b"a", T0 + 1, b"a1")])
    with pytest.raises(PitstopError, match=r"entity key b'b' in the place of key b'a'"):
        store.modify("v", [b"a", b"b"], lambda current: [row(b"b", T0 + 1), None])
    assert values(store, "v", [b"a", b"b"]) == [b"a0", None]
    # the store is usable afterwards: no transaction, lock or watch was left behind
    store.modify("v", [b"a", b"b"], lambda current: [row(b"a", T0 + 1, b"a1"), None])
    store.write("v", [row(b"b", T0, b"b0")])
    assert values(store, "v", [b"a", b"b"]) == [b"a1", b"b0"]


def test_modify_of_many_keys(store: OnlineStore) -> None:
    # more keys than SQLite takes variables, Redis WATCH keys and PostgreSQL key locks
    keys = [i.to_bytes(4, "big") for i in range(33_000)]
    store.write("v", [row(key, T0, b"0") for key in keys[::2]])

    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        return [
            row(key, T0 + 1, b"new" if now is None else now.value + b"+") if i % 3 else None
            for i, (key, now) in enumerate(zip(keys, current, strict=True))
        ]

    store.modify("v", keys, change)
    expected = [b"0" if i % 2 == 0 else None for i in range(len(keys))]
    expected = [
        (b"new" if old is None else old + b"+") if i % 3 else old for i, old in enumerate(expected)
    ]
    assert values(store, "v", keys) == expected


@pytest.mark.parametrize("present", [True, False], ids=["present-key", "absent-key"])
def test_modify_and_a_racing_write_serialise(
    store: OnlineStore, request: pytest.FixtureRequest, present: bool
) -> None:
    """A write of the key arriving while ``change`` runs either waits for the modify (the
    write then compares event times with the modify's row) or, where the store detects the
    conflict, makes the modify call ``change`` again with the written row. Never is the write
    lost under the modify's stale result."""
    if present:
        store.write("v", [row(b"k", T0, b"1")])
    seen: list[list[ReadRow | None]] = []
    writer = threading.Thread(target=store.write, args=("v", [row(b"k", T0 + 5, b"10")]))

    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        seen.append(current)
        if len(seen) == 1:
            writer.start()
            writer.join(0.2)  # done by now unless it waits for this modify
        [now] = current
        count = 0 if now is None else int(now.value)
        return [row(b"k", T0 if now is None else now.event_ts, b"%d" % (count + 1))]

    store.modify("v", [b"k"], change)
    writer.join(10)
    assert not writer.is_alive()
    retries = backend_of(request).startswith("redis") or (
        backend_of(request) == "postgres" and not present
    )
    if retries:  # the conflict was detected: change ran again on the written row
        assert seen[1:] == [[ReadRow(T0 + 5, b"10")]]
        assert store.read([("v", [b"k"])]) == [[ReadRow(T0 + 5, b"11")]]
    else:  # the write waited for the modify, then replaced its older row
        assert len(seen) == 1
        assert store.read([("v", [b"k"])]) == [[ReadRow(T0 + 5, b"10")]]


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


def newest_rows(batches: list[list[StoredRow]]) -> dict[bytes, StoredRow]:
    """The reference for event-time ordered writes: per key, the row with the greatest
    ``(event_ts, created_ts)``; among equal ones the last written."""
    newest: dict[bytes, StoredRow] = {}
    for batch in batches:
        for r in batch:
            old = newest.get(r.entity_key)
            if old is None or (r.event_ts, r.created_ts) >= (old.event_ts, old.created_ts):
                newest[r.entity_key] = r
    return newest


def random_rows(rng: random.Random, n: int, keys: int) -> list[StoredRow]:
    """``n`` rows over ``keys`` keys with many repeated keys and tied timestamps."""
    return [
        row(b"k%d" % rng.randrange(keys), T0 + rng.randrange(20), b"%d" % i, rng.randrange(3))
        for i in range(n)
    ]


def test_repeated_keys_and_ties_across_a_large_write(store: OnlineStore) -> None:
    rng = random.Random(7)
    batches = [random_rows(rng, 500, 300), random_rows(rng, 25_000, 1_000)]
    for batch in batches:
        store.write("v", batch)
    newest = newest_rows(batches)
    keys = sorted(newest)
    assert store.read([("v", keys)]) == [
        [ReadRow(newest[k].event_ts, newest[k].value) for k in keys]
    ]


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


def test_writes_and_modifies_of_the_same_keys_in_any_order_never_fail(store: OnlineStore) -> None:
    """Threads write and modify the same keys at once, each in its own order: a store must
    order its locks (or detect and retry), never fail or deadlock."""
    keys = [b"key-%02d" % i for i in range(40)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            start.wait()
            for i in range(30):
                order = rng.sample(keys, len(keys))
                store.write("v", [row(k, T0 + i, b"w") for k in order])
        except BaseException as exc:
            errors.append(exc)

    def modifier(n: int) -> None:
        rng = random.Random(100 + n)
        try:
            start.wait()
            for _ in range(30):
                order = rng.sample(keys, 8)
                store.modify("v", order, lambda current, o=order: [row(k, T0, b"m") for k in o])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f, args=(n,)) for f in (writer, modifier) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def incrementer(keys: list[bytes]) -> Change:
    """A ``change`` adding 1 to the counter of every key (value and event time)."""

    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        counts = [0 if now is None else int(now.value) for now in current]
        return [row(key, T0 + n + 1, b"%d" % (n + 1)) for key, n in zip(keys, counts, strict=True)]

    return change


def test_modify_is_atomic_across_threads(
    store: OnlineStore, request: pytest.FixtureRequest
) -> None:
    calls = count_in_threads(store)
    if not backend_of(request).startswith(
        "redis"
    ):  # these lock, Redis is optimistic: it may call again
        assert calls == 8 * 50


def count_in_threads(store: OnlineStore) -> int:
    """8 threads add 1 to a shared counter and to one of their own, 50 times each, by modify;
    the number of ``change`` calls."""
    errors: list[BaseException] = []
    calls: list[None] = []  # list.append is atomic
    start = threading.Barrier(8)
    pads = [b"pad-%d" % i for i in range(40)]  # more keys than PostgreSQL takes key locks for

    def work(n: int) -> None:
        key = b"thread-%d" % n
        count = incrementer([b"total", key])

        def count_two(current: list[ReadRow | None]) -> list[StoredRow | None]:
            calls.append(None)
            return count(current)

        def count_padded(current: list[ReadRow | None]) -> list[StoredRow | None]:
            calls.append(None)
            total, own = count([current[0], current[-1]])
            return [total, *[None] * len(pads), own]  # pads: locked, left as they are

        try:
            start.wait()
            for i in range(50):
                if n % 2 and i % 5 == 0:  # now and then a large call
                    store.modify("counters", [b"total", *pads, key], count_padded)
                else:
                    store.modify("counters", [b"total", key], count_two)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = [b"total", *(b"thread-%d" % n for n in range(8)), *pads]
    assert store.read([("counters", keys)]) == [
        [ReadRow(T0 + 400, b"400"), *[ReadRow(T0 + 50, b"50")] * 8, *[None] * 40]
    ]
    return len(calls)


def count_in_process(
    config: Any, project: str, repo: str, start: Any, failures: Any, times: int
) -> None:
    """Run in a spawned process: open a store of its own and increment the shared counter."""
    try:
        store = config.open(project, Path(repo))
        try:
            start.wait(60)
            for _ in range(times):
                store.modify("counters", [b"total"], incrementer([b"total"]))
        finally:
            store.close()
    except BaseException:
        failures.put(traceback.format_exc())
        raise


@pytest.mark.parametrize("online_config", SHARED_BACKENDS, indirect=True)
def test_modify_is_atomic_across_processes(
    online_config: Any, open_store: OpenStore, tmp_path: Path
) -> None:
    project = f"test_{uuid.uuid4().hex[:12]}"
    store = open_store(project)
    # Set up first, as a deployment does: processes opening a brand-new SQLite file at the same
    # moment may find it locked while one of them switches it to WAL.
    store.update(["counters"], [])
    context = multiprocessing.get_context("spawn")
    start, failures = context.Barrier(5), context.SimpleQueue()
    args = (online_config, project, str(tmp_path), start, failures, 50)
    processes = [context.Process(target=count_in_process, args=args) for _ in range(4)]
    for process in processes:
        process.start()
    try:
        start.wait(60)  # this process counts too, with its own store object
        for _ in range(50):
            store.modify("counters", [b"total"], incrementer([b"total"]))
    finally:
        for process in processes:
            process.join(60)
    problems = []
    while not failures.empty():
        problems.append(failures.get())
    assert problems == []
    assert [process.exitcode for process in processes] == [0] * 4
    assert store.read([("counters", [b"total"])]) == [[ReadRow(T0 + 250, b"250")]]


# -- the protocol and the factory ---------------------------------------------------------------


def test_capabilities(store: OnlineStore) -> None:
    assert store.capabilities.max_write_batch > 0


STORE_CLASSES = {
    "memory": MemoryOnlineStore,
    "sqlite": SqliteOnlineStore,
    "redis": RedisOnlineStore,
    "postgres": PostgresOnlineStore,
}


@pytest.mark.parametrize("backend", backends.ONLINE_STORES)
def test_store_classes_match_the_protocol(backend: str) -> None:
    model, cls = backends.config_model("online_store", backend), STORE_CLASSES[backend]
    for method in ("update", "write", "read", "modify", "teardown", "close"):
        expected = inspect.signature(getattr(OnlineStore, method))
        assert inspect.signature(getattr(cls, method)) == expected, f"{cls.__name__}.{method}"
    assert list(inspect.signature(cls).parameters) == ["config", "project", "repo_path"]
    assert inspect.get_annotations(model.open)["return"] == cls.__name__
    assert model().type == backend


def test_importing_online_loads_no_driver() -> None:
    code = "import sys, pitstop.online; print(sorted({'redis', 'psycopg'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unreachable_redis_is_backend_unavailable(tmp_path: Path) -> None:
    config = RedisOnlineConfig(connection_string="127.0.0.1:1,password=s3cret")
    store = config.open("p", tmp_path)
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
    store = config.open("p", tmp_path)
    try:
        with pytest.raises(BackendUnavailableError, match=r"PostgreSQL at 127\.0\.0\.1:1 ") as info:
            store.read([("v", [b"k"])])
        assert "s3cret" not in str(info.value)
    finally:
        store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("online_config", ["postgres"], indirect=True)
def test_postgres_write_aborted_again_and_again_is_not_a_lost_server(
    store: OnlineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction PostgreSQL keeps aborting (deadlocks) is run again, then reported as
    contention, not as an unreachable server."""
    import psycopg

    from pitstop.online import postgres

    monkeypatch.setattr(postgres, "_MODIFY_ATTEMPTS", 3)
    runs: list[None] = []
    store.write("v", [row(b"k", T0)])  # creates the table
    conn_execute = psycopg.Connection.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if str(query).startswith("INSERT"):
            runs.append(None)
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return conn_execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    with pytest.raises(PitstopError, match=r"aborted a transaction 3 times \(deadlock detected\); "
                       r"too many writers contend for the same keys") as info:  # fmt: skip
        store.write("v", [row(b"k", T0 + 1)])
    assert not isinstance(info.value, BackendUnavailableError)
    assert len(runs) == 3
    monkeypatch.undo()
    assert store.read([("v", [b"k"])]) == [[ReadRow(T0, b"v")]]


@pytest.mark.parametrize(
    "online_config", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)  # fmt: skip
def test_a_closed_pooled_store_says_so(store: OnlineStore) -> None:
    store.write("v", [row(b"k", T0)])
    store.close()
    with pytest.raises(PitstopError, match=r"^the (SQLite|PostgreSQL) online store .* is closed$"):
        store.write("v", [row(b"j", T0)])


# -- backend specifics --------------------------------------------------------------------------


def test_sqlite_file_is_shared_and_in_wal_mode(tmp_path: Path) -> None:
    config = SqliteOnlineConfig(path="nested/dir/online.db")
    one = config.open("p", tmp_path)
    two = config.open("p", tmp_path)
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


@pytest.fixture
def open_redis(redis_url: str, redis_key_prefix: str, tmp_path: Path) -> Iterator[Any]:
    """``open_redis(project=None, **config)``: a Redis store under the session's prefix (a
    cluster store with ``redis_type="redis_cluster"`` and its ``connection_string``), closed
    after the test."""
    opened: list[OnlineStore] = []

    def factory(project: str | None = None, **fields: Any) -> Any:
        fields = {"connection_string": redis_url, "key_prefix": redis_key_prefix, **fields}
        if fields.get("redis_type") == "redis_cluster":
            fields.pop("key_prefix")  # the cluster is the session's own
        name = project or f"test_{uuid.uuid4().hex[:12]}"
        opened.append(RedisOnlineConfig(**fields).open(name, tmp_path))
        return opened[-1]

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client of the test server, to look at what the store did."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def forget_script(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the Redis store's ``_<name>_SCRIPT`` one the server has never seen."""
    import hashlib

    from pitstop.online import redis as redis_store

    script = getattr(redis_store, f"_{name}_SCRIPT") + f"-- {uuid.uuid4().hex}\n".encode()
    monkeypatch.setattr(redis_store, f"_{name}_SCRIPT", script)
    monkeypatch.setattr(redis_store, f"_{name}_SHA", hashlib.sha1(script).hexdigest())


@pytest.mark.redis
def test_redis_key_layout_and_ttl(
    open_redis: Any, redis_client: Any, redis_key_prefix: str
) -> None:
    store = open_redis("layout", key_ttl_seconds=100)
    store.write("v", [row(b"}{", T0, b"val", created_ts=T0 + 1)])
    key = f"{redis_key_prefix}layout:v:".encode() + b"{}{}"  # the raw key inside braces
    stored = redis_client.get(key)
    assert stored == (T0).to_bytes(8, "big") + (T0 + 1).to_bytes(8, "big") + b"val"
    assert 0 < redis_client.ttl(key) <= 100


@pytest.mark.redis
def test_redis_writes_many_trips_in_flight_with_ttl(
    open_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitstop.online import redis as redis_store

    monkeypatch.setattr(redis_store, "_KEYS_PER_CALL", 3)  # many calls and trips per write
    monkeypatch.setattr(redis_store, "_ROWS_PER_TRIP", 9)
    store = open_redis(key_ttl_seconds=100)
    rng = random.Random(3)
    batches = [random_rows(rng, 50, 20), random_rows(rng, 400, 40)]
    for batch in batches:
        store.write("v", batch)
    newest = newest_rows(batches)
    keys = sorted(newest)
    expected = [ReadRow(newest[k].event_ts, newest[k].value) for k in keys]
    assert store.read([("v", keys)]) == [expected]


@pytest.mark.redis
def test_redis_reconnects_once_after_the_server_drops_the_connection(
    open_redis: Any, redis_client: Any
) -> None:
    store = open_redis()

    def drop() -> None:  # the server closes this thread's connection of the store
        connection = store._connection()
        connection.send_command("CLIENT", "ID")
        assert redis_client.client_kill_filter(_id=connection.read_response()) == 1

    store.write("v", [row(b"k", T0, b"1")])
    drop()
    store.write("v", [row(b"k", T0 + 1, b"2")])
    drop()
    assert values(store, "v", [b"k"]) == [b"2"]


@pytest.mark.redis
def test_redis_connections_of_finished_threads_are_closed(
    open_redis: Any, redis_client: Any
) -> None:
    import gc

    store = open_redis()
    before = redis_client.info("clients")["connected_clients"]
    for _ in range(30):  # each thread reads on a connection of its own
        thread = threading.Thread(target=store.read, args=([("v", [b"k"])],))
        thread.start()
        thread.join()
    gc.collect()
    assert redis_client.info("clients")["connected_clients"] <= before + 1


@pytest.mark.redis
def test_redis_keeps_all_views_of_an_entity_in_one_slot(
    open_redis: Any, redis_client: Any, redis_key_prefix: str
) -> None:
    from redis.crc import key_slot

    store = open_redis("slots")
    try:
        for view in ("a", "b.v2"):
            store.write(view, [row(b"x}y", T0), row(b"z", T0)])
        keys = sorted(redis_client.scan_iter(match=f"{redis_key_prefix}slots:*"))
        assert keys == [
            f"{redis_key_prefix}slots:{view}:".encode() + b"{" + entity + b"}"
            for view in ("a", "b.v2")
            for entity in (b"x}y", b"z")
        ]
        assert {key_slot(key) for key in keys[::2]} == {key_slot(b"{x}")}
        assert {key_slot(key) for key in keys[1::2]} == {key_slot(b"{z}")}
        with pytest.raises(DefinitionError, match=r"view name 'a\{b\}' contains a brace"):
            store.write("a{b}", [row(b"k", T0)])
    finally:
        store.teardown(["a", "b.v2"])


@pytest.mark.redis
def test_redis_modify_layout_and_ttl(
    open_redis: Any, redis_client: Any, redis_key_prefix: str
) -> None:
    project = f"test_{uuid.uuid4().hex[:12]}"
    store = open_redis(project, key_ttl_seconds=100)
    store.modify("v", [b"}{"], lambda current: [row(b"}{", T0, b"val", created_ts=T0 + 1)])
    key = f"{redis_key_prefix}{project}:v:".encode() + b"{}{}"
    assert redis_client.get(key) == T0.to_bytes(8, "big") + (T0 + 1).to_bytes(8, "big") + b"val"
    assert 0 < redis_client.ttl(key) <= 100


@pytest.mark.redis
@pytest.mark.parametrize("watch_keys", [None, 0], ids=["watch", "script"])
def test_redis_modify_retries_on_fresh_rows_then_gives_up(
    open_redis: Any, monkeypatch: pytest.MonkeyPatch, watch_keys: int | None
) -> None:
    from pitstop.online import redis as redis_store

    monkeypatch.setattr(redis_store, "_MODIFY_ATTEMPTS", 3)
    if watch_keys is not None:  # 0: every call checks with the script instead of WATCH
        monkeypatch.setattr(redis_store, "_WATCH_KEYS", watch_keys)
    store = open_redis()
    calls: list[list[ReadRow | None]] = []

    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        calls.append(current)
        n = len(calls)
        store.write("v", [row(b"k", T0 + n, b"%d" % n)])  # another writer, every time
        return [row(b"k", T0, b"never")]

    with pytest.raises(PitstopError, match=r"during each of 3 attempts; gave up"):
        store.modify("v", [b"k"], change)
    assert calls == [[None], [ReadRow(T0 + 1, b"1")], [ReadRow(T0 + 2, b"2")]]
    assert store.read([("v", [b"k"])]) == [[ReadRow(T0 + 3, b"3")]]


@pytest.mark.redis
def test_redis_modify_of_more_keys_than_watch_takes_is_atomic(
    open_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitstop.online import redis as redis_store

    monkeypatch.setattr(redis_store, "_WATCH_KEYS", 0)  # every call checks with the script
    count_in_threads(open_redis(key_ttl_seconds=100))


@pytest.mark.redis
def test_redis_refusing_a_write_is_a_clear_error(open_redis: Any, redis_cluster: str) -> None:
    import redis

    store = open_redis(redis_type="redis_cluster", connection_string=redis_cluster)
    nodes = [redis.Redis(port=int(n.rpartition(":")[2])) for n in redis_cluster.split(",")]
    try:
        for node in nodes:  # the session's own cluster: out of memory for a moment
            node.config_set("maxmemory", 1)
        with pytest.raises(PitstopError) as info:
            store.write("v", [row(b"k%d" % i, T0) for i in range(10)])
        assert re.fullmatch(
            r"Redis at 127\.0\.0\.1:\d+ refused a write of view 'v' \(command not allowed when "
            r"used memory > 'maxmemory'\.[^)]*\); check the server's maxmemory and that it is "
            r"a primary\. Rows of this call may be partly written; writing them again is harmless",
            str(info.value),
        )
        assert not isinstance(info.value, BackendUnavailableError)
        with pytest.raises(PitstopError, match=r"refused a modify of view 'v' \(command not al"):
            store.modify("v", [b"k0"], lambda current: [row(b"k0", T0)])
    finally:
        for node in nodes:
            node.config_set("maxmemory", 0)
            node.close()


@pytest.mark.redis
def test_redis_cluster_mode_checks_slot_by_slot(open_redis: Any, redis_cluster: str) -> None:
    """Cluster mode: one script call per slot; after a conflict in one slot, ``change`` sees
    all keys again but only that slot is written."""
    from redis.crc import key_slot

    project = f"test_{uuid.uuid4().hex[:12]}"
    store, other = (
        open_redis(project, redis_type="redis_cluster", connection_string=redis_cluster)
        for _ in range(2)
    )
    slot_a, slot_b = (key_slot(f"{project}:v:".encode() + b"{" + k + b"}") for k in (b"a", b"b"))
    assert slot_a != slot_b
    keys = [b"a", b"b", b"a"]
    count = incrementer(keys)
    calls: list[list[ReadRow | None]] = []

    def change(current: list[ReadRow | None]) -> list[StoredRow | None]:
        calls.append(current)
        if len(calls) == 1:  # another writer, in b's slot only
            other.write("v", [row(b"b", T0 + 5, b"5")])
        return count(current)

    store.modify("v", keys, change)
    assert calls == [
        [None, None, None],
        [ReadRow(T0 + 1, b"1"), ReadRow(T0 + 5, b"5"), ReadRow(T0 + 1, b"1")],
    ]
    # a: written once, by the first call; b: by the second, on the other writer's row
    assert store.read([("v", [b"a", b"b"])]) == [[ReadRow(T0 + 1, b"1"), ReadRow(T0 + 6, b"6")]]


@pytest.mark.redis
def test_redis_modify_loads_its_script_when_the_server_lacks_it(
    open_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitstop.online import redis as redis_store

    forget_script(monkeypatch, "MODIFY")
    monkeypatch.setattr(redis_store, "_WATCH_KEYS", 0)  # every call checks with the script
    store = open_redis()
    store.modify("v", [b"k", b"j"], incrementer([b"k", b"j"]))
    store.modify("v", [b"k"], incrementer([b"k"]))
    assert values(store, "v", [b"k", b"j"]) == [b"2", b"1"]


@pytest.mark.redis
def test_redis_loads_its_script_when_the_server_lacks_it(
    open_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    forget_script(monkeypatch, "WRITE")
    store = open_redis()
    store.write("v", [row(b"k", T0, b"loaded")])
    assert values(store, "v", [b"k"]) == [b"loaded"]


# -- optional abilities ------------------------------------------------------------------------


def test_newest_event_time_where_the_store_can_tell(store: OnlineStore) -> None:
    """Freshness asks for the newest event time per view: memory, SQLite and PostgreSQL can
    tell; Redis cannot without reading every key, and does not claim it."""
    if not isinstance(store, EventTimes):
        assert isinstance(store, RedisOnlineStore)
        return
    store.update(["a", "empty"], [])
    store.write("a", [row(b"k1", T0 + 5), row(b"k2", T0 + 9), row(b"k1", T0 + 7)])
    found = store.newest_event_ts(["a", "empty", "never_created"])
    assert found == {"a": T0 + 9, "empty": None, "never_created": None}
