"""The versioned registry store, on every registry backend (see ``registry_url`` in conftest)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitstop.errors import BackendUnavailableError, NotFoundError, RegistryError
from pitstop.registry.store import (
    MISSING,
    RegistryStore,
    SpecChange,
    VersionRecord,
    canonical_hash,
)

FV = "feature_view"


@pytest.fixture
def store(registry_url: str, project_name: str) -> Iterator[RegistryStore]:
    with RegistryStore.open(registry_url, project_name) as s:
        yield s


def spec(**fields: Any) -> dict[str, Any]:
    return {"name": "driver_stats", "ttl_seconds": 3600, **fields}


# -- apply -------------------------------------------------------------------------------------


def test_new_object_is_version_1(store: RegistryStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    result = store.apply([(FV, "driver_stats", spec())], author="alice")

    assert result.changed
    [rec] = result.created
    assert (rec.kind, rec.name, rec.version, rec.deleted) == (FV, "driver_stats", 1, False)
    assert rec.spec == spec()
    assert rec.spec_hash == canonical_hash(spec())
    assert rec.author == "alice"
    assert rec.applied_at.tzinfo is not None and rec.applied_at.utcoffset() == timedelta(0)
    assert before <= rec.applied_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert store.live() == {FV: {"driver_stats": rec}}  # round trip is exact


def test_same_spec_is_unchanged(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec(tags={"a": 1, "b": 2}))])
    reordered = {"tags": {"b": 2, "a": 1}, "ttl_seconds": 3600, "name": "driver_stats"}
    result = store.apply([(FV, "driver_stats", reordered)])

    assert not result.changed
    assert result.unchanged == [(FV, "driver_stats")]
    assert [r.version for r in store.history("driver_stats")] == [1]


def test_changed_spec_is_version_2(store: RegistryStore) -> None:
    v1 = store.apply([(FV, "driver_stats", spec())]).created[0]
    result = store.apply([(FV, "driver_stats", spec(ttl_seconds=7200))])

    [v2] = result.updated
    assert v2.version == 2 and v2.spec_hash != v1.spec_hash
    assert store.live()[FV]["driver_stats"] == v2


def test_author_defaults_to_os_user(store: RegistryStore) -> None:
    import getpass

    rec = store.apply([(FV, "driver_stats", spec())]).created[0]
    assert rec.author == getpass.getuser()


def test_delete_writes_marker_and_keeps_history(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec()), ("entity", "driver", {"join_keys": ["id"]})])
    result = store.apply([], deletes=[(FV, "driver_stats")])

    [marker] = result.deleted
    assert (marker.version, marker.deleted, marker.spec, marker.spec_hash) == (2, True, None, "")
    assert FV not in store.live() and "driver" in store.live()["entity"]
    assert [(r.version, r.deleted) for r in store.history("driver_stats")] == [
        (1, False),
        (2, True),
    ]


def test_delete_unknown_or_deleted_is_noop(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([], deletes=[(FV, "driver_stats")])
    serial = store.serial()

    result = store.apply([], deletes=[(FV, "nope"), (FV, "driver_stats")])
    assert not result.changed
    assert store.serial() == serial
    assert len(store.history("driver_stats")) == 2


def test_readd_continues_numbering(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([], deletes=[(FV, "driver_stats")])
    result = store.apply([(FV, "driver_stats", spec())])

    [rec] = result.created
    assert rec.version == 3
    assert store.live()[FV]["driver_stats"].version == 3


def test_history_is_oldest_first(store: RegistryStore) -> None:
    for ttl in (1, 2, 3):
        store.apply([(FV, "driver_stats", spec(ttl_seconds=ttl))])
    store.apply([], deletes=[(FV, "driver_stats")])

    history = store.history("driver_stats", kind=FV)
    assert [r.version for r in history] == [1, 2, 3, 4]
    assert [r.spec["ttl_seconds"] if r.spec else None for r in history] == [1, 2, 3, None]
    assert [r.applied_at for r in history] == sorted(r.applied_at for r in history)
    assert store.get_version("driver_stats", 2) == history[1]


def test_duplicate_object_in_one_apply_is_an_error(store: RegistryStore) -> None:
    with pytest.raises(RegistryError, match="more than once"):
        store.apply([(FV, "a", {})], deletes=[(FV, "a")])


# -- atomicity ---------------------------------------------------------------------------------


def test_apply_with_unserialisable_spec_stores_nothing(store: RegistryStore) -> None:
    puts = [(FV, "ok_1", spec()), (FV, "bad", spec(tags={1, 2})), (FV, "ok_2", spec())]
    with pytest.raises(RegistryError, match=r"feature_view 'bad' is not JSON-serialisable"):
        store.apply(puts)
    assert store.live() == {}
    assert store.serial() == 0


def test_apply_failing_midway_rolls_back(
    store: RegistryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply([(FV, "existing", spec())])
    real_insert = RegistryStore._insert

    def insert_then_fail(self: RegistryStore, records: list[Any], **how: Any) -> None:
        real_insert(self, records, **how)  # rows are written inside the transaction ...
        raise RuntimeError("simulated crash")  # ... and must vanish with it

    monkeypatch.setattr(RegistryStore, "_insert", insert_then_fail)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.apply([(FV, "existing", spec(ttl_seconds=1)), (FV, "new", spec())])
    monkeypatch.undo()

    assert list(store.live()[FV]) == ["existing"]
    assert [r.version for r in store.history("existing")] == [1]
    assert store.serial() == 1
    store.apply([(FV, "new", spec())])  # the store is still usable
    assert store.history("new")[0].version == 1


# -- diff and rollback -------------------------------------------------------------------------


def test_apply_planned_decides_on_the_state_it_replaces(store: RegistryStore) -> None:
    store.apply([(FV, "a", spec())])
    seen: list[list[str]] = []

    def decide(live: dict[str, dict[str, VersionRecord]]) -> tuple[Any, Any, str]:
        seen.append(sorted(live.get(FV, {})))
        return [(FV, "b", spec())], [(FV, "a")], "planned"

    note, result = store.apply_planned(decide)
    assert note == "planned" and seen == [["a"]]
    assert [r.name for r in result.created] == ["b"]
    assert [r.name for r in result.deleted] == ["a"]
    assert sorted(store.live()[FV]) == ["b"]


def test_apply_planned_that_fails_writes_nothing(store: RegistryStore) -> None:
    def decide(live: dict[str, dict[str, VersionRecord]]) -> tuple[Any, Any, None]:
        raise RegistryError("refused")

    with pytest.raises(RegistryError, match="refused"):
        store.apply_planned(decide)
    assert store.serial() == 0 and store.live() == {}


def test_diff_is_structural(store: RegistryStore) -> None:
    old = {
        "ttl_seconds": 3600,
        "owner": "ana",
        "schema": [{"name": "a", "dtype": "int64"}, {"name": "b", "dtype": "string"}],
        "tags": {"team": "risk", "legacy": "yes", "odd.key": 1},
    }
    new = {
        "ttl_seconds": 7200,
        "online": True,
        "schema": [{"name": "a", "dtype": "int64"}, {"name": "b", "dtype": "int32"}, {"name": "c"}],
        "tags": {"team": "risk", "tier": "gold", "odd.key": 2},
    }
    store.apply([(FV, "fv", old)])
    store.apply([(FV, "fv", new)])

    changes = store.diff("fv", 1, 2)
    assert changes == [
        SpecChange("online", MISSING, True),
        SpecChange("owner", "ana", MISSING),
        SpecChange("schema[1].dtype", "string", "int32"),
        SpecChange("schema[2]", MISSING, {"name": "c"}),
        SpecChange("tags.legacy", "yes", MISSING),
        SpecChange('tags["odd.key"]', 1, 2),
        SpecChange("tags.tier", MISSING, "gold"),
        SpecChange("ttl_seconds", 3600, 7200),
    ]
    assert [c.op for c in changes[:3]] == ["added", "removed", "changed"]
    assert store.diff("fv", 2, 2) == []
    assert store.diff("fv", 2, 1)[0] == SpecChange("online", True, MISSING)


def test_rollback_writes_new_version_with_old_spec(store: RegistryStore) -> None:
    for ttl in (1, 2, 3):
        store.apply([(FV, "driver_stats", spec(ttl_seconds=ttl))])

    rec = store.rollback("driver_stats", 1, author="bob")
    assert (rec.version, rec.author, rec.deleted) == (4, "bob", False)
    assert rec.spec == spec(ttl_seconds=1)
    assert rec.spec_hash == store.get_version("driver_stats", 1).spec_hash
    assert store.live()[FV]["driver_stats"] == rec
    assert [r.spec["ttl_seconds"] for r in store.history("driver_stats") if r.spec] == [1, 2, 3, 1]


def test_rollback_to_current_spec_is_noop(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec(ttl_seconds=1))])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=2))])
    store.rollback("driver_stats", 1)
    serial = store.serial()

    rec = store.rollback("driver_stats", 1)  # v3 already has v1's spec
    assert rec.version == 3
    assert store.serial() == serial
    assert len(store.history("driver_stats")) == 3


def test_rollback_revives_deleted_object(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([], deletes=[(FV, "driver_stats")])

    rec = store.rollback("driver_stats", 1)
    assert (rec.version, rec.deleted, rec.spec) == (3, False, spec())
    assert store.live()[FV]["driver_stats"] == rec
    with pytest.raises(RegistryError, match="deletion marker"):
        store.rollback("driver_stats", 2)


# -- lookups -----------------------------------------------------------------------------------


def test_ambiguous_name_needs_kind(store: RegistryStore) -> None:
    store.apply([("entity", "driver", {"join_keys": ["id"]}), (FV, "driver", spec())])

    with pytest.raises(RegistryError, match=r"several kinds.*entity, feature_view.*kind="):
        store.history("driver")
    assert store.history("driver", kind="entity")[0].spec == {"join_keys": ["id"]}
    assert store.get_version("driver", 1, kind=FV).spec == spec()


def test_not_found_suggests(store: RegistryStore, project_name: str) -> None:
    store.apply([(FV, "driver_hourly_stats", spec()), ("entity", "customer", {})])

    with pytest.raises(NotFoundError) as err:
        store.history("driver_hourly_stat")
    assert str(err.value) == (
        f"No registry object named 'driver_hourly_stat' in project '{project_name}'."
        " Did you mean 'driver_hourly_stats'?"
    )
    with pytest.raises(NotFoundError, match=r"No feature_view named 'customer'.*exists as entity"):
        store.history("customer", kind=FV)
    with pytest.raises(NotFoundError, match=r"has no version 7; its versions are 1\.\.1"):
        store.get_version("driver_hourly_stats", 7)
    with pytest.raises(NotFoundError):
        store.diff("nothing", 1, 2)


# -- serial, meta, teardown, lifecycle ---------------------------------------------------------


def test_serial_increases_only_on_change(store: RegistryStore) -> None:
    assert store.serial() == 0
    store.apply([(FV, "a", spec())])
    s1 = store.serial()
    store.apply([(FV, "a", spec())])
    assert store.serial() == s1
    store.set_meta("watermark", "x")
    assert store.serial() == s1
    store.apply([(FV, "a", spec(ttl_seconds=1))])
    s2 = store.serial()
    store.apply([], deletes=[(FV, "a")])
    s3 = store.serial()
    store.rollback("a", 1)
    assert s1 < s2 < s3 < store.serial()


def test_meta_get_set(registry_url: str, project_name: str, store: RegistryStore) -> None:
    assert store.get_meta("watermark:fv") is None
    store.set_meta("watermark:fv", "2024-01-01T00:00:00+00:00")
    store.set_meta("watermark:fv", "2024-02-01T00:00:00+00:00")
    assert store.get_meta("watermark:fv") == "2024-02-01T00:00:00+00:00"
    with RegistryStore.open(registry_url, project_name + "_other") as other:
        assert other.get_meta("watermark:fv") is None


def test_teardown_isolates_projects(registry_url: str, project_name: str) -> None:
    with (
        RegistryStore.open(registry_url, project_name) as mine,
        RegistryStore.open(registry_url, project_name + "_other") as other,
    ):
        mine.apply([(FV, "fv", spec())])
        mine.set_meta("k", "v")
        other.apply([(FV, "fv", spec(ttl_seconds=9))])
        other.set_meta("k", "w")

        mine.teardown()

        assert (mine.live(), mine.serial(), mine.get_meta("k")) == ({}, 0, None)
        with pytest.raises(NotFoundError):
            mine.history("fv")
        assert other.live()[FV]["fv"].spec == spec(ttl_seconds=9)
        assert (other.serial(), other.get_meta("k")) == (1, "w")


def test_closed_store_refuses_work(registry_url: str, project_name: str) -> None:
    store = RegistryStore.open(registry_url, project_name)
    store.close()
    store.close()  # idempotent
    with pytest.raises(RegistryError, match="closed"):
        store.live()


# -- opening -----------------------------------------------------------------------------------


def test_sqlite_creates_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "registry.db"
    with RegistryStore.open(f"sqlite://{path}", "p") as store:
        store.apply([(FV, "fv", spec())])
    assert path.exists()


def test_sqlite_uncreatable_dir_is_registry_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    path = tmp_path / "file" / "sub" / "registry.db"
    with pytest.raises(RegistryError, match=str(tmp_path / "file")):
        RegistryStore.open(f"sqlite://{path}", "p")


def test_unreachable_postgres_is_backend_unavailable() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(BackendUnavailableError) as err:
        RegistryStore.open("postgresql://someone:s3cret@127.0.0.1:1/test", "p")
    message = str(err.value)
    assert "127.0.0.1:1" in message and "running" in message
    assert "s3cret" not in message


def test_import_does_not_import_psycopg() -> None:
    code = "import sys, pitstop.registry.store; assert 'psycopg' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- concurrency (separate processes, started with "spawn") ------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A registry URL on an empty database: the workers race to create the tables."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'fresh' / 'registry.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _apply_distinct(url: str, project: str, worker: int, count: int, barrier: Any) -> None:
    barrier.wait(timeout=60)
    with RegistryStore.open(url, project) as store:
        for i in range(count):
            store.apply([(FV, f"w{worker}_fv{i:02d}", {"worker": worker, "i": i})])


def _apply_same(url: str, project: str, worker: int, count: int, barrier: Any) -> None:
    barrier.wait(timeout=60)
    with RegistryStore.open(url, project) as store:
        for i in range(count):
            store.apply([(FV, "shared", {"worker": worker, "i": i})])


def _apply_batches(url: str, project: str, worker: int, count: int, barrier: Any) -> None:
    with RegistryStore.open(url, project) as store:
        barrier.wait(timeout=60)
        for b in range(count):
            store.apply([("entity", f"b{b:02d}_{i}", {"i": i}) for i in range(5)])


def _spawn(
    target: Callable[..., None], url: str, project: str, workers: int, count: int
) -> tuple[list[Any], Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers + (target is _apply_batches))
    procs = [
        ctx.Process(target=target, args=(url, project, w, count, barrier)) for w in range(workers)
    ]
    for p in procs:
        p.start()
    return procs, barrier


def _join(procs: list[Any]) -> None:
    for p in procs:
        p.join(timeout=120)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
        p.close()
    assert codes == [0] * len(procs), f"worker exit codes {codes}; see captured stderr"


@pytest.mark.slow
def test_concurrent_applies_of_different_objects_all_land(
    fresh_registry_url: str, project_name: str
) -> None:
    started = time.perf_counter()
    procs, _barrier = _spawn(_apply_distinct, fresh_registry_url, project_name, 4, 25)
    _join(procs)  # the barrier must outlive the children's start-up
    elapsed = time.perf_counter() - started

    with RegistryStore.open(fresh_registry_url, project_name) as store:
        live = store.live()[FV]
        assert len(live) == 100
        assert {r.version for r in live.values()} == {1}
        assert store.serial() == 100
    print(f"4 processes x 25 applies: {elapsed:.2f} s")


@pytest.mark.slow
def test_concurrent_updates_of_one_object_number_contiguously(
    fresh_registry_url: str, project_name: str
) -> None:
    procs, _barrier = _spawn(_apply_same, fresh_registry_url, project_name, 4, 10)
    _join(procs)

    with RegistryStore.open(fresh_registry_url, project_name) as store:
        history: list[VersionRecord] = store.history("shared")
        assert [r.version for r in history] == list(range(1, 41))
        assert len({(r.spec or {})["worker"] * 100 + (r.spec or {})["i"] for r in history}) == 40


@pytest.mark.slow
def test_readers_never_see_half_an_apply(registry_url: str, project_name: str) -> None:
    with RegistryStore.open(registry_url, project_name) as store:
        procs, barrier = _spawn(_apply_batches, registry_url, project_name, 1, 30)
        barrier.wait(timeout=60)
        sizes = set()
        while procs[0].is_alive():
            sizes.add(len(store.live().get("entity", {})))
        _join(procs)
        sizes.add(len(store.live()["entity"]))
    assert all(n % 5 == 0 for n in sizes), sorted(sizes)
    assert max(sizes) == 150


# -- concurrent `pitstop apply` of different repos (the CLI, in separate processes) -------------

_REPO_CODE = """
from datetime import timedelta
from pitstop import Entity, FeatureView, Field, FileSource
from pitstop.types import Int64

user = Entity(name="user", join_keys=["user_id"])
events = FileSource(name="events", path="data/events.parquet", timestamp_field="ts")


def view(name, hours):
    return FeatureView(name=name, entities=[user], ttl=timedelta(hours=hours), source=events,
                       schema=[Field(name="x", dtype=Int64)])


shared = view("shared", {hours})
mine = view("only_w{worker}", 1)
this_round = view("w{worker}_r{round}", 1)
"""


def _repo_tag(worker: int, rnd: int) -> str:
    return f"w{worker}r{rnd}"


def _repo_objects(worker: int, rnd: int) -> set[tuple[str, str]]:
    """The objects of repo (worker, round): one shared by all (whose TTL tells the repos
    apart), one per worker, one per worker and round, and their entity and source."""
    views = {"shared", f"only_w{worker}", f"w{worker}_r{rnd}"}
    return {("entity", "user"), ("data_source", "events")} | {(FV, v) for v in views}


def _write_repo(root: Path, registry_url: str, project: str, worker: int, rnd: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    repo = root / _repo_tag(worker, rnd)
    (repo / "data").mkdir(parents=True)
    registry: dict[str, Any] = (
        {"registry_type": "sql", "path": registry_url}
        if registry_url.startswith("postgresql")
        else {"path": registry_url.removeprefix("sqlite://")}
    )
    config = {
        "project": project,
        "registry": registry,
        "online_store": {"type": "sqlite", "path": str(root / "online.db")},
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    hours = 100 + 10 * worker + rnd
    code = _REPO_CODE.format(hours=hours, worker=worker, round=rnd)
    (repo / "features.py").write_text(code)
    ts = pa.array([datetime(2026, 1, 1, tzinfo=UTC)], pa.timestamp("us", "UTC"))
    pq.write_table(pa.table({"user_id": [1], "ts": ts, "x": [1]}), repo / "data/events.parquet")
    return repo


def _apply_rounds(root: str, worker: int, rounds: int, start: Any, end: Any) -> None:
    """Run `pitstop apply` on this worker's repo of each round, all workers at once; the
    changes it prints go to ``<repo>.out`` and the versions it writes carry the repo's tag."""
    import os
    from contextlib import redirect_stdout

    from pitstop.cli.main import main

    for rnd in range(rounds):
        repo = Path(root) / _repo_tag(worker, rnd)
        start.wait(timeout=120)
        os.environ["LOGNAME"] = _repo_tag(worker, rnd)  # the author of this apply's versions
        with open(f"{repo}.out", "w") as out, redirect_stdout(out):
            code = main(["-c", str(repo), "apply"])
        end.wait(timeout=120)
        if code != 0:
            raise SystemExit(code)


def _printed(path: Path) -> set[tuple[str, str, str]]:
    """(action, label, name) of each change `apply` printed."""
    verbs = {"Created": "create", "Updated": "update", "Deleted": "delete"}
    labels = {"entity": "entity", "data source": "data_source", "feature view": FV}
    found = set()
    for line in path.read_text().splitlines():
        verb, _, rest = line.partition(" ")
        if verb in verbs:
            label, _, name = rest.rpartition(" ")
            found.add((verbs[verb], labels[label], name))
    return found


def _commit_order(store: RegistryStore, tags: list[str]) -> list[str]:
    """The tags of the applies that wrote versions, in the order their transactions ran."""
    names = {(FV, "shared"), ("entity", "user"), ("data_source", "events")}
    names |= {(FV, f"only_w{t[1]}") for t in tags} | {(FV, f"{t[:2]}_r{t[3:]}") for t in tags}
    when: dict[str, datetime] = {}
    for kind, name in names:
        for rec in store.history(name, kind):
            when[rec.author] = rec.applied_at
    return sorted((t for t in tags if t in when), key=when.__getitem__)


@pytest.mark.slow
def test_concurrent_applies_of_different_repos_leave_exactly_the_last(
    registry_url: str, project_name: str, tmp_path: Path
) -> None:
    workers, rounds = 4, 3
    for w in range(workers):
        for r in range(rounds):
            _write_repo(tmp_path, registry_url, project_name, w, r)
    ctx = multiprocessing.get_context("spawn")
    start, end = ctx.Barrier(workers + 1), ctx.Barrier(workers + 1)
    procs = [
        ctx.Process(target=_apply_rounds, args=(str(tmp_path), w, rounds, start, end))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        _check_rounds(registry_url, project_name, tmp_path, workers, rounds, start, end)
    except BaseException:
        start.abort()  # release the workers, then report the first failure
        end.abort()
        for p in procs:
            p.join(timeout=30)
            p.kill()
        raise
    _join(procs)


def _check_rounds(
    registry_url: str, project: str, root: Path, workers: int, rounds: int, start: Any, end: Any
) -> None:
    state: set[tuple[str, str]] = set()
    done: list[str] = []
    with RegistryStore.open(registry_url, project) as store:
        for rnd in range(rounds):
            start.wait(timeout=120)
            end.wait(timeout=120)
            tags = [_repo_tag(w, rnd) for w in range(workers)]
            order = _commit_order(store, tags)
            assert order and set(order) == set(tags), f"round {rnd}: {order} committed"
            for tag in order:  # replay: each apply saw the state the previous one left
                worker = int(tag[1])
                repo = _repo_objects(worker, rnd)
                expected = {("create", k, n) for k, n in repo - state}
                expected |= {("delete", k, n) for k, n in state - repo}
                if (FV, "shared") in state:
                    expected.add(("update", FV, "shared"))
                assert _printed(root / f"{tag}.out") == expected, f"apply of {tag}"
                state = repo
            live = store.live()
            assert {(k, n) for k, by in live.items() for n in by} == state, f"round {rnd}"
            shared = live[FV]["shared"].spec or {}
            assert shared["ttl_seconds"] == (100 + 10 * int(order[-1][1]) + rnd) * 3600
            done += order
        assert store.serial() == len(done)
