"""Staged versions and promotions in the registry store, on every registry backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from pitstop.errors import NotFoundError, RegistryError
from pitstop.registry.search_index import Filters
from pitstop.registry.store import RegistryStore
from test_registry_store import FV, spec


@pytest.fixture
def store(registry_url: str, project_name: str) -> Iterator[RegistryStore]:
    with RegistryStore.open(registry_url, project_name) as s:
        yield s


def statuses(store: RegistryStore, name: str = "driver_stats") -> list[tuple[int, str]]:
    return [(r.version, "deleted" if r.deleted else r.status) for r in store.history(name)]


def served_spec(store: RegistryStore, name: str = "driver_stats") -> dict[str, Any] | None:
    return store.live()[FV][name].spec


def test_a_staged_version_is_recorded_but_not_served(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    serial = store.serial()
    result = store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)

    [rec] = result.staged
    assert (rec.version, rec.status) == (2, "staged")
    assert result.changed and not result.updated and not result.created
    assert store.live()[FV]["driver_stats"].version == 1  # unpinned reads: still v1
    assert served_spec(store) == spec()
    assert statuses(store) == [(1, "served"), (2, "staged")]
    assert store.get_version("driver_stats", 2).spec == spec(ttl_seconds=60)
    assert store.serial() == serial + 1  # a change of the registry, read by reloading readers


def test_staging_the_same_spec_twice_adds_nothing(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    again = store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    assert not again.changed and again.unchanged == [(FV, "driver_stats")]
    served = store.apply([(FV, "driver_stats", spec())], stage=True)  # the served spec
    assert not served.changed
    assert [r.version for r in store.history("driver_stats")] == [1, 2]


def test_applying_a_staged_spec_serves_that_version(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    result = store.apply([(FV, "driver_stats", spec(ttl_seconds=60))])
    [rec] = result.updated
    assert (rec.version, rec.status) == (2, "served")  # served, not written again
    assert statuses(store) == [(1, ""), (2, "served")]
    assert store.live()[FV]["driver_stats"].version == 2


def test_applying_the_served_spec_leaves_a_staged_version_alone(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    result = store.apply([(FV, "driver_stats", spec())])
    assert not result.changed
    assert statuses(store) == [(1, "served"), (2, "staged")]
    other = store.apply([(FV, "driver_stats", spec(ttl_seconds=7))])  # a third spec: v3
    assert [r.version for r in other.updated] == [3]
    assert statuses(store) == [(1, ""), (2, "staged"), (3, "served")]


def test_promote_serves_a_staged_version(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    serial = store.serial()

    done = store.promote("driver_stats", 2, author="carol")
    assert done.changed
    assert (done.record.version, done.previous and done.previous.version) == (2, 1)
    assert served_spec(store) == spec(ttl_seconds=60)
    assert statuses(store) == [(1, ""), (2, "served")]
    assert store.serial() == serial + 1
    assert [r.version for r in store.history("driver_stats")] == [1, 2]  # nothing written

    again = store.promote("driver_stats", 2)
    assert not again.changed and store.serial() == serial + 1

    back = store.promote("driver_stats", 1)  # an earlier version again, without a new one
    assert back.changed and served_spec(store) == spec()
    assert statuses(store) == [(1, "served"), (2, "")]

    log = [(r.action, r.objects[0], r.detail) for r in store.audit_records()[-3:]]
    assert log == [
        ("promote", {"kind": FV, "name": "driver_stats", "version": 2, "from_version": 1}, ""),
        ("promote", {"kind": FV, "name": "driver_stats", "version": 2, "from_version": 2},
         "already served"),
        ("promote", {"kind": FV, "name": "driver_stats", "version": 1, "from_version": 2}, ""),
    ]  # fmt: skip


def test_a_staged_new_object_is_not_live_until_promoted(store: RegistryStore) -> None:
    result = store.apply([(FV, "fresh", spec(name="fresh"))], stage=True)
    assert [r.version for r in result.staged] == [1]
    assert store.live() == {}
    assert statuses(store, "fresh") == [(1, "staged")]
    done = store.promote("fresh", 1)
    assert done.previous is None
    assert store.live()[FV]["fresh"].version == 1


def test_audit_records_a_staged_apply(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    last = store.audit_records()[-1]
    assert (last.action, last.outcome) == ("stage", "ok")
    assert last.objects == ({"kind": FV, "name": "driver_stats", "version": 2, "change": "stage"},)


def test_promote_mistakes(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([], [(FV, "driver_stats")])
    with pytest.raises(RegistryError, match=r"Version 2 of feature_view 'driver_stats' is a "
                       r"deletion marker; promote a version that has a spec"):  # fmt: skip
        store.promote("driver_stats", 2)
    with pytest.raises(NotFoundError, match=r"has no version 9; its versions are 1\.\.2"):
        store.promote("driver_stats", 9)
    with pytest.raises(NotFoundError, match=r"No registry object named 'drivr_stats'.*"
                       r"Did you mean 'driver_stats'"):  # fmt: skip
        store.promote("drivr_stats", 1)
    store.promote("driver_stats", 1)  # a deleted object comes back
    assert store.live()[FV]["driver_stats"].version == 1


def test_a_staged_apply_deletes_nothing(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    with pytest.raises(RegistryError, match=r"A staged apply deletes nothing; apply without "
                       r"stage to remove feature_view 'driver_stats'"):  # fmt: skip
        store.apply([], [(FV, "driver_stats")], stage=True)
    assert store.live()[FV]["driver_stats"].version == 1


def test_rollback_with_staged_versions(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=5))], stage=True)
    with pytest.raises(RegistryError, match=r"Version 3 of feature_view 'driver_stats' is "
                       r"staged and was never served; serve it with `pitstop promote "
                       r"driver_stats 3`"):  # fmt: skip
        store.rollback("driver_stats", 3)

    rec = store.rollback("driver_stats", 1)  # the served v2 goes back to v1, as v4
    assert (rec.version, rec.spec) == (4, spec())
    assert statuses(store) == [(1, ""), (2, ""), (3, "staged"), (4, "served")]
    assert store.rollback("driver_stats", 1).version == 4  # already served: no-op
    store.promote("driver_stats", 3)  # the staged version is still there to serve
    assert statuses(store) == [(1, ""), (2, ""), (3, "served"), (4, "")]
    rolled = store.rollback("driver_stats", 2)  # rollback compares with the served version
    assert rolled.version == 5 and served_spec(store) == spec(ttl_seconds=60)


def test_deleting_an_object_with_a_staged_version(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    store.apply([], [(FV, "driver_stats")])
    assert store.live() == {}
    assert statuses(store) == [(1, ""), (2, "staged"), (3, "deleted")]
    store.promote("driver_stats", 2)
    assert served_spec(store) == spec(ttl_seconds=60)


def test_registry_versions_remember_what_was_served(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])  # registry version 1
    time.sleep(0.002)
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)  # 2
    time.sleep(0.002)
    store.promote("driver_stats", 2)  # 3
    time.sleep(0.002)
    store.promote("driver_stats", 1)  # 4
    assert store.serial() == 4
    served = [store.live_at(n)[FV]["driver_stats"].version for n in (1, 2, 3, 4)]
    assert served == [1, 1, 2, 1]
    with pytest.raises(NotFoundError, match=r"has no registry version 5; its versions are 1\.\.4"):
        store.live_at(5)


def test_teardown_forgets_staging_and_promotions(store: RegistryStore) -> None:
    store.apply([(FV, "driver_stats", spec())])
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    store.promote("driver_stats", 2)
    store.teardown()
    store.apply([(FV, "driver_stats", spec(ttl_seconds=60))], stage=True)
    assert statuses(store) == [(1, "staged")]  # v1 anew, and nothing served
    assert store.live() == {}


def test_search_index_follows_the_served_version(store: RegistryStore) -> None:
    def described() -> list[str]:
        return [r.description for r in store.index.exact("driver_stats", Filters(), 5)]

    store.apply([(FV, "driver_stats", spec(description="plain"))])
    store.apply([(FV, "driver_stats", spec(description="shiny"))], stage=True)
    assert described() == ["plain"]  # the index holds what unpinned reads see
    store.promote("driver_stats", 2)
    assert described() == ["shiny"]
