"""Raw online store latency and write throughput, per backend (no engine on top).

For each store: write ``--rows`` rows into a view in calls of 10,000 rows (the engine's batch)
and report rows/s; then time ``read`` for 1 key x 1 view, 1 key x 3 views and 100 keys x 1 view
(random keys, warm-up first) and report p50/p99, next to the driver's own floor: its cheapest
round trip on the same machine at the same time, since a shared machine's figures drift.
Values are realistic encoded rows of five features. Unreachable servers are skipped. Redis and
PostgreSQL use a key prefix / schema of their own and clean up after themselves.

    python benchmarks/online_store.py [--iterations 5000] [--rows 100000] [--stores sqlite redis]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pitstop.errors import BackendUnavailableError, MissingExtraError
from pitstop.online import OnlineStore, StoredRow
from pitstop.online.encoding import encode_value, entity_key
from pitstop.online.memory import MemoryOnlineConfig
from pitstop.online.postgres import PostgresOnlineConfig
from pitstop.online.redis_config import RedisOnlineConfig
from pitstop.online.sqlite import SqliteOnlineConfig

REDIS_URL = os.environ.get("PITSTOP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "PITSTOP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
VIEWS = ["driver_hourly", "driver_daily", "driver_profile"]
BATCH = 10_000
TAG = uuid.uuid4().hex[:10]


def configs(workdir: Path) -> dict[str, Any]:
    return {
        "memory": MemoryOnlineConfig(),
        "sqlite": SqliteOnlineConfig(path=str(workdir / "online.db")),
        "redis": RedisOnlineConfig(connection_string=REDIS_URL, key_prefix=f"pitstop_bench_{TAG}:"),
        "postgres": PostgresOnlineConfig(conninfo=POSTGRES_URL, db_schema=f"pitstop_bench_{TAG}"),
    }


def make_rows(n: int) -> list[StoredRow]:
    now = 1_700_000_000_000_000
    return [
        StoredRow(
            entity_key(["driver_id"], [1000 + i]),
            now + i,
            now + i,
            encode_value(
                {
                    "conv_rate": 0.5 + i / n,
                    "acc_rate": 0.25,
                    "avg_daily_trips": i % 1000,
                    "city": "Seoul",
                    "active": True,
                }
            ),
        )
        for i in range(n)
    ]


def percentiles(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def time_interleaved(
    workloads: Sequence[Callable[[], Callable[[], object]]], n: int
) -> list[tuple[float, float]]:
    """p50 and p99 in µs of ``n`` calls of each workload (a factory of calls), after a warm-up.

    The workloads take turns call by call, so a drift of the machine (a shared machine's loopback
    latency moves by 2x within minutes) affects them alike."""
    calls = [[make() for make in workloads] for _ in range(n + n // 10)]
    for group in calls[n:]:  # warm-up: connections, prepared statements, caches
        for call in group:
            call()
    samples: list[list[int]] = [[] for _ in workloads]
    clock = time.perf_counter_ns
    for group in calls[:n]:
        for call, times in zip(group, samples, strict=True):
            start = clock()
            call()
            times.append(clock() - start)
    return [percentiles(times) for times in samples]


def floor_call(name: str, store: Any) -> tuple[Callable[[bytes], object], Any] | None:
    """The driver's cheapest round trip (for a key) on the same server/file, and what to close
    after."""
    if name == "sqlite":
        import sqlite3

        from pitstop.online.sqlite import quote, table_name

        conn = sqlite3.connect(store.path)
        sql = f"SELECT event_ts, value FROM {quote(table_name(store.project, VIEWS[0]))} "
        return (lambda key: conn.execute(sql + "WHERE entity_key = ?", (key,)).fetchall()), conn
    if name == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        return (lambda key: client.execute_command("PING")), client
    if name == "postgres":
        import psycopg

        pg = psycopg.connect(POSTGRES_URL, autocommit=True)
        return (lambda key: pg.execute("SELECT 1", prepare=True).fetchall()), pg
    return None


def redis_cpu_seconds() -> float:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        client.close()


def write_all(name: str, store: OnlineStore, rows: list[StoredRow]) -> str:
    """Write ``rows`` into every view; the rows/s of the first (plus Redis's CPU time)."""
    cpu = redis_cpu_seconds() if name == "redis" else 0.0
    start = time.perf_counter()
    for offset in range(0, len(rows), BATCH):
        store.write(VIEWS[0], rows[offset : offset + BATCH])
    seconds = time.perf_counter() - start
    cpu = redis_cpu_seconds() - cpu if name == "redis" else 0.0
    for view in VIEWS[1:]:
        for offset in range(0, len(rows), BATCH):
            store.write(view, rows[offset : offset + BATCH])
    return f"{len(rows) / seconds:,.0f}" + (f" ({cpu:.2f} s Redis CPU)" if cpu else "")


def run_store(name: str, config: Any, workdir: Path, rows: list[StoredRow], n: int) -> list[str]:
    store = config.open(f"bench_{TAG}", workdir)
    resource = None
    try:
        store.update(VIEWS, [])
        write = write_all(name, store, rows)
        keys = [row.entity_key for row in rows]
        pick = random.Random(7).choice
        workloads: list[Callable[[], Callable[[], object]]] = [
            lambda: partial(store.read, [(VIEWS[0], [pick(keys)])]),
            lambda: partial(store.read, [(v, [k]) for k in [pick(keys)] for v in VIEWS]),
            lambda: partial(store.read, [(VIEWS[0], [pick(keys) for _ in range(100)])]),
        ]
        if found := floor_call(name, store):
            floor, resource = found
            workloads.append(lambda: partial(floor, pick(keys)))
        timings = time_interleaved(workloads, n)
        store.teardown(VIEWS)
    finally:
        store.close()
        if resource is not None:
            resource.close()
    if name == "postgres":
        drop_schema(config.db_schema)
    reads = [f"{p50:,.1f} / {p99:,.1f}" for p50, p99 in timings[:3]]
    return [name, f"{timings[3][0]:,.1f}" if resource else "-", *reads, write]


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--stores", nargs="*", default=["memory", "sqlite", "redis", "postgres"])
    args = parser.parse_args()
    rows = make_rows(args.rows)
    header = ["store", "floor", "read 1 key x 1 view", "1 key x 3 views", "100 keys x 1 view"]
    table = [[*header, f"write rows/s ({args.rows:,} rows)"]]
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in configs(Path(tmp)).items():
            if name not in args.stores:
                continue
            try:
                table.append(run_store(name, config, Path(tmp), rows, args.iterations))
            except (BackendUnavailableError, MissingExtraError) as exc:
                print(f"skipped {name}: {exc}", file=sys.stderr)
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for i, line in enumerate(table):
        print(" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if i == 0:
            print("-+-".join("-" * width for width in widths))
    print(f"\nreads: µs p50 / p99 of {args.iterations:,} timed calls after a warm-up; floor: µs")
    print("p50 of the driver's cheapest round trip (SQLite point read, Redis PING, PG SELECT 1)")


if __name__ == "__main__":
    main()
