"""In-process online serving latency: ``store.get_online_features`` and ``store.push``.

Each online store gets a feature repo of its own in a temporary directory: a definitions file
(an entity, a Parquet ``FileSource`` behind a ``PushSource``, a feature view of 5 features —
3 Int64, 1 Float32, 1 String — and two on-demand views computing ``f_int1 / f_int2``, one in
python mode and one in pandas mode), a ``feature_store.yaml``, and a source of ``--entities``
entities x 10 rows over the last 30 days. The repo is loaded and applied the way ``pitstop
apply`` does, materialized, then timed: every call reads random entities of the materialized
set and includes ``.to_dict()`` (what a caller does with the response); pushes write one new
row each (a random entity, a newer event time). Each workload is timed over ``--iterations``
calls after a warm-up, in blocks of 250 calls, the workloads of a store taking turns block by
block, ``--rounds`` times; the table shows the median p50/p99 over rounds, next to the floors
measured alongside (the raw store read of one key, a Redis PING), since a shared machine's
latency drifts. Redis uses a key prefix of its own and is torn down at the end; an unreachable
store is skipped with a note.

    .venv/bin/python benchmarks/online.py                      # SQLite and Redis, 3 rounds
    .venv/bin/python benchmarks/online.py --stores sqlite --iterations 20000
    .venv/bin/python benchmarks/online.py --quick              # a few seconds (smoke test)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from _util import DAY_US, FEATURES, markdown_table, percentiles_us, write_source

REDIS_URL = os.environ.get("PITSTOP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PUSH_SOURCE = "bench_push"
VIEW = "bench_features"
REFS = [f"{VIEW}:{name}" for name in FEATURES]
ROWS_PER_ENTITY = 10

DEFINITIONS = f'''"""Benchmark feature repo (written by benchmarks/online.py)."""

from datetime import timedelta

import pandas as pd

from pitstop import Entity, FeatureView, Field, FileSource, PushSource, on_demand_feature_view
from pitstop.types import Float32, Float64, Int64, String

entity = Entity(name="entity", join_keys=["entity_id"])
source = FileSource(
    name="bench_source",
    path="data/source.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
push_source = PushSource(name="{PUSH_SOURCE}", batch_source=source)
features = FeatureView(
    name="{VIEW}",
    entities=[entity],
    ttl=timedelta(days=90),
    schema=[
        Field(name="entity_id", dtype=Int64),
        Field(name="f_int1", dtype=Int64),
        Field(name="f_int2", dtype=Int64),
        Field(name="f_int3", dtype=Int64),
        Field(name="f_float", dtype=Float32),
        Field(name="f_str", dtype=String),
    ],
    source=push_source,
)


@on_demand_feature_view(
    sources=[features], schema=[Field(name="ratio", dtype=Float64)], mode="python"
)
def ratio_python(inputs):
    return {{
        "ratio": [
            None if a is None or not b else a / b
            for a, b in zip(inputs["f_int1"], inputs["f_int2"])
        ]
    }}


@on_demand_feature_view(
    sources=[features], schema=[Field(name="ratio_pd", dtype=Float64)], mode="pandas"
)
def ratio_pandas(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["ratio_pd"] = inputs["f_int1"] / inputs["f_int2"]
    return out
'''


@dataclass
class Workload:
    """One timed operation: ``make()`` returns the next call (inputs prepared, not timed)."""

    name: str
    store: str
    target: str
    make: Callable[[], Callable[[], object]]
    target_us: float | None = None
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)


def store_config(name: str, tag: str) -> dict[str, Any]:
    if name == "sqlite":
        return {"type": "sqlite", "path": "data/online.db"}
    return {"type": "redis", "connection_string": REDIS_URL, "key_prefix": f"pitstop_bench_{tag}:"}


def build_repo(root: Path, store_name: str, entities: int) -> Any:
    """Write, load, apply and materialize a feature repo at ``root``; the open store."""
    import yaml

    from pitstop import FeatureStore
    from pitstop.repo import load_repo

    root.mkdir(parents=True)
    (root / "definitions.py").write_text(DEFINITIONS)
    config = {
        "project": "bench",
        "registry": "data/registry.db",
        "online_store": store_config(store_name, uuid.uuid4().hex[:10]),
    }
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config))
    now_us = time.time_ns() // 1000
    start_us = now_us - 30 * DAY_US - 3_600_000_000  # every row (and created time) in the past
    write_source(root / "data/source.parquet", entities, ROWS_PER_ENTITY, start_us=start_us)
    store = FeatureStore(repo_path=root)
    try:
        store.apply(list(load_repo(root).all()), partial=False)
        end = datetime.now(UTC)
        [result] = store.materialize(end - timedelta(days=31), end, [VIEW])
    except BaseException:
        if store_name == "redis" and store._online is not None:  # keys may have been written
            store.teardown()
        store.close()
        raise
    if result.rows != entities:
        raise SystemExit(f"{store_name}: materialized {result.rows} rows, expected {entities}")
    return store


class PushRows:
    """One-row pushes of random entities, each newer than the last (so every one is written)."""

    def __init__(self, rng: random.Random, entities: int) -> None:
        self.rng = rng
        self.entities = entities
        self.now = datetime.now(UTC).replace(tzinfo=None)
        self.count = 0

    def row(self) -> dict[str, list[Any]]:
        r = self.rng
        self.count += 1
        ts = self.now + timedelta(microseconds=self.count)
        return {
            "entity_id": [r.randrange(self.entities)],
            "event_timestamp": [ts],
            "created": [ts],
            "f_int1": [r.randrange(1000)],
            "f_int2": [r.randrange(1, 1000)],
            "f_int3": [r.randrange(1000)],
            "f_float": [r.random()],
            "f_str": [f"s{r.randrange(1000)}"],
        }

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.row()).astype({"f_float": "float32"})


def check(store: Any, store_name: str, rows: PushRows) -> None:
    """Fail loudly unless reads find every value, both on-demand views agree, and a pushed row
    (as a DataFrame and as a dict) is what a read returns next."""
    from pitstop import PushMode

    refs = [*REFS, "ratio_python:ratio", "ratio_pandas:ratio_pd"]
    for data in (rows.frame(), rows.row()):
        entity = int(data["entity_id"][0])
        written = store.push(PUSH_SOURCE, data, to=PushMode.ONLINE)
        response = store.get_online_features(refs, [{"entity_id": entity}])
        bad = {k: v for k, v in response.statuses.items() if v != ["PRESENT"]}
        out = response.to_dict()
        expected = out["f_int1"][0] / out["f_int2"][0]
        pushed = [out[f][0] for f in ("f_int1", "f_int2", "f_int3", "f_str")]
        if (
            bad
            or written != 1
            or pushed != [data[f][0] for f in ("f_int1", "f_int2", "f_int3", "f_str")]
            or out["ratio"] != [expected]
            or out["ratio_pd"] != [expected]
        ):
            raise SystemExit(f"{store_name}: unexpected response {out} (not present: {bad})")


def workloads(
    store: Any, name: str, entities: int, rng: random.Random
) -> tuple[list[Workload], list[Workload]]:
    """The read workloads and the push workloads of one store."""
    from pitstop import PushMode
    from pitstop.online.encoding import entity_key

    pick = rng.randrange
    get, online, push = store.get_online_features, store.online, store.push

    def read(refs: list[str], rows: list[dict[str, int]]) -> object:
        return get(refs, rows).to_dict()

    def one(refs: list[str]) -> Callable[[], Callable[[], object]]:
        return lambda: partial(read, refs, [{"entity_id": pick(entities)}])

    def many(refs: list[str], n: int) -> Callable[[], Callable[[], object]]:
        return lambda: partial(read, refs, [{"entity_id": pick(entities)} for _ in range(n)])

    def raw() -> Callable[[], object]:
        return partial(online.read, [(VIEW, [entity_key(("entity_id",), (pick(entities),))])])

    plain = Workload("1 entity x 5 features", name, "≤ 30", one(REFS), 30.0)
    reads = [Workload("raw store read, 1 key (floor, no engine)", name, "-", raw), plain]
    if name == "redis":
        import redis

        ping = redis.Redis.from_url(REDIS_URL).ping
        reads.insert(0, Workload("Redis PING (round-trip floor)", name, "-", lambda: ping))
        plain.target, plain.target_us = "≤ 90", 90.0
        batch = min(100, entities)
        reads.append(
            Workload(f"{batch} entities x 5 features", name, "≤ 1000", many(REFS, batch), 1000.0)
        )
    else:
        py_refs, pd_refs = [*REFS, "ratio_python:ratio"], [*REFS, "ratio_pandas:ratio_pd"]
        reads.append(Workload("1 entity x 5 + python on-demand", name, "plain + 60", one(py_refs)))
        reads.append(Workload("1 entity x 5 + pandas on-demand", name, "-", one(pd_refs)))
    rows = PushRows(rng, entities)
    check(store, name, rows)
    mode = PushMode.ONLINE
    pushes = [
        Workload("push 1 row (pandas DataFrame)", name, "≤ 300",
                 lambda: partial(push, PUSH_SOURCE, rows.frame(), to=mode), 300.0),
        Workload("push 1 row (dict of lists)", name, "≤ 300",
                 lambda: partial(push, PUSH_SOURCE, rows.row(), to=mode), 300.0),
    ]  # fmt: skip
    return reads, pushes


def time_blocks(loads: Sequence[Workload], n: int, rounds: int, block: int = 250) -> None:
    """Per round, append each workload's p50/p99 (µs) over ``n`` timed calls, after a warm-up.

    The calls run in blocks of ``block`` calls of one workload, the workloads taking turns
    block by block (in rotating order), so a drift of the shared machine affects them alike.
    Blocks, not single calls taking turns: a 1 ms call (pandas, 100 entities, a push) evicts
    the CPU caches and would double the time of a 15 µs call that follows it."""
    clock = time.perf_counter_ns
    for load in loads:
        for _ in range(max(n // 10, 20)):
            load.make()()
    for _ in range(rounds):
        samples: list[list[int]] = [[] for _ in loads]
        for b, start in enumerate(range(0, n, block)):
            order = list(zip(loads, samples, strict=True))
            for load, times in order[b % len(order) :] + order[: b % len(order)]:
                calls = [load.make() for _ in range(min(block, n - start))]
                for call in calls:
                    t0 = clock()
                    call()
                    times.append(clock() - t0)
        for load, times in zip(loads, samples, strict=True):
            p50, p99 = percentiles_us(times)
            load.p50.append(p50)
            load.p99.append(p99)


def run_store(name: str, root: Path, args: argparse.Namespace) -> list[Workload]:
    from pitstop.errors import BackendUnavailableError, MissingExtraError

    try:
        store = build_repo(root / name, name, args.entities)
    except (BackendUnavailableError, MissingExtraError) as exc:
        print(f"skipped {name}: {exc}", file=sys.stderr)
        return [Workload(f"all ({exc.__class__.__name__}: unreachable)", name, "-", lambda: print)]
    try:
        rng = random.Random(7)
        reads, pushes = workloads(store, name, args.entities, rng)
        time_blocks(reads, args.iterations, args.rounds)
        time_blocks(pushes, args.iterations, args.rounds)
        return reads + pushes
    finally:
        if name == "redis":
            store.teardown()
        store.close()


def rows_of(loads: Sequence[Workload]) -> list[list[object]]:
    rows: list[list[object]] = []
    plain = None
    for load in loads:
        if not load.p50:
            rows.append([load.store, load.name, "-", "-", load.target, "skipped"])
            continue
        p50, p99 = statistics.median(load.p50), statistics.median(load.p99)
        verdict = "-"
        if load.target_us is not None:
            verdict = "pass" if p50 <= load.target_us else "FAIL"
        if load.name == "1 entity x 5 features":
            plain = p50
        rows.append([load.store, load.name, f"{p50:,.1f}", f"{p99:,.1f}", load.target, verdict])
        if "python on-demand" in load.name and plain is not None:
            delta = p50 - plain
            verdict = "pass" if delta <= 60 else "FAIL"
            rows.append([load.store, "↳ python on-demand overhead (Δ p50)", f"{delta:,.1f}", "-",
                         "≤ 60", verdict])  # fmt: skip
        if "pandas on-demand" in load.name and plain is not None:
            rows.append([load.store, "↳ pandas on-demand overhead (Δ p50)", f"{p50 - plain:,.1f}",
                         "-", "-", "-"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,redis", help="comma separated")
    parser.add_argument("--iterations", type=int, default=5000, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (medians shown)")
    parser.add_argument("--entities", type=int, default=10_000, help="entities materialized")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.rounds, args.entities = 200, 1, 1000
    loads: list[Workload] = []
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-online-") as tmp:
        for name in [s.strip() for s in args.stores.split(",") if s.strip()]:
            if name not in ("sqlite", "redis"):
                parser.error(f"unknown store {name!r}; allowed: sqlite, redis")
            loads += run_store(name, Path(tmp), args)
    print(
        f"Online serving in-process: {args.rounds} round(s) x {args.iterations:,} timed calls "
        f"per workload after warm-up, {args.entities:,} entities materialized; µs, median over "
        "rounds; reads include .to_dict()"
    )
    header = ["store", "workload", "p50 µs", "p99 µs", "target p50 µs", "pass/fail"]
    print(markdown_table(header, rows_of(loads)))


if __name__ == "__main__":
    main()
