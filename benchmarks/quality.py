"""Data quality: validating and profiling 10M rows, content hashes, and what expectations add to
a push.

The data: ``--rows`` rows of six columns (a unique int64 id, a float amount with 0.5% nulls, an
int64 count, a five-value text category, a float32 score, a UTC event time), in memory as
Arrow. Validation runs eight expectations over them in one DuckDB query (every rule holds, so
no sample query is needed), then again with a few hundred bad rows (the samples query runs
too). The profile covers every column. Each workload runs ``--runs`` times in this process
after a warm-up; the table shows the median wall time, its spread, and the median CPU time of
all threads (which a loaded machine disturbs less than wall time).

    .venv/bin/python benchmarks/quality.py                  # 10M rows
    .venv/bin/python benchmarks/quality.py --quick          # 100k rows, a few seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _util import format_count, markdown_table, parse_count, percentiles_us

TARGET_S = 5.0
CATEGORIES = ["alpha", "beta", "gamma", "delta", "epsilon"]


def make_data(rows: int, *, bad: int = 0) -> Any:
    """``rows`` rows of the six columns; ``bad`` of them break a rule each."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(7)
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    amount = rng.uniform(0, 1000, rows)
    category = np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), rows)]
    if bad:
        at = rng.choice(rows, bad, replace=False)
        amount[at[: bad // 2]] = -1.0
        category[at[bad // 2 :]] = "omega"
    return pa.table({
        "id": np.arange(rows, dtype=np.int64),
        "amount": pa.array(amount, mask=rng.random(rows) < 0.005),
        "count": rng.integers(0, 1000, rows),
        "category": pa.array(category),
        "score": rng.standard_normal(rows).astype(np.float32),
        "event_timestamp": pa.array(now_us - rng.integers(0, 86_400_000_000, rows),
                                    pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


def expectations() -> list[Any]:
    from pitstop.quality import (
        between,
        freshness,
        in_set,
        max_null_rate,
        not_in_future,
        not_null,
        unique,
    )

    return [
        not_null("id"),
        unique("id"),
        between("amount", 0, 1000),
        max_null_rate("amount", 0.01),
        between("count", 0, 999),
        in_set("category", CATEGORIES),
        freshness(timedelta(days=2), column="event_timestamp"),
        not_in_future("event_timestamp"),
    ]


def timed(fn: Callable[[], Any], runs: int) -> list[tuple[float, float]]:
    """``runs`` times ``(wall seconds, CPU seconds of all threads)`` of ``fn()``."""
    fn()  # warm-up: imports, DuckDB's first connection
    out = []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def push_latency(samples: int) -> tuple[float, float]:
    """p50 µs of pushing one row to a SQLite online store, without and with 3 expectations."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pitstop import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource
    from pitstop.config import parse_config
    from pitstop.quality import between, in_set, not_null
    from pitstop.types import Float64, String

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        pq.write_table(pa.table({"id": [1], "amount": [1.0], "category": ["alpha"],
                                 "ts": pa.array([datetime.now(UTC)], pa.timestamp("us", "UTC"))}),
                       root / "data/rows.parquet")  # fmt: skip
        entity = Entity(name="e", join_keys=["id"])
        push = PushSource(
            name="rows_push",
            batch_source=FileSource(path="data/rows.parquet", timestamp_field="ts"),
        )
        schema = [Field(name="amount", dtype=Float64), Field(name="category", dtype=String)]
        for rules in ([], [not_null("amount"), between("amount", 0, 1000),
                           in_set("category", CATEGORIES)]):  # fmt: skip
            config = parse_config(
                {
                    "project": f"p{len(rules)}",
                    "online_store": {"type": "sqlite", "path": f"data/online{len(rules)}.db"},
                },
                repo_path=root,
            )
            with FeatureStore(config=config) as store:
                view = FeatureView(
                    name="rows",
                    entities=[entity],
                    source=push,
                    schema=schema,
                    expectations=rules,
                    expectation_policy="reject",
                )
                store.apply([entity, push, view])
                times = []
                for i in range(samples + 20):
                    row = {"id": [i % 100], "amount": [float(i % 1000)], "category": ["beta"],
                           "ts": [datetime.now(UTC)]}  # fmt: skip
                    began = time.perf_counter_ns()
                    store.push("rows_push", row)
                    times.append(time.perf_counter_ns() - began)
                out.append(percentiles_us(times[20:])[0])
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_count, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100k rows, 3 runs")
    args = parser.parse_args()
    rows, runs = (100_000, 3) if args.quick else (args.rows, args.runs)

    from pitstop.quality import profile
    from pitstop.quality.fingerprint import fingerprint
    from pitstop.quality.validation import check

    good, bad = make_data(rows), make_data(rows, bad=400)
    rules = expectations()
    assert check(good, rules, target="good").success
    assert not check(bad, rules, target="bad").success
    results = {
        "validate, 8 expectations, all hold": timed(lambda: check(good, rules, target="x"), runs),
        "validate, 8 expectations, 2 fail (+ samples)": timed(
            lambda: check(bad, rules, target="x"), runs
        ),
        "profile, 6 columns": timed(lambda: profile(good), runs),
    }
    results["validate + profile"] = [
        (a[0] + b[0], a[1] + b[1])
        for a, b in zip(results["validate, 8 expectations, all hold"],
                        results["profile, 6 columns"], strict=True)
    ]  # fmt: skip
    results["content hash (saved datasets)"] = timed(lambda: fingerprint(good), runs)
    table = []
    for name, times in results.items():
        wall = [w for w, _ in times]
        median = statistics.median(wall)
        cpu = statistics.median(c for _, c in times)
        target = ""
        if name == "validate + profile":
            target = f"≤ {TARGET_S:g} s {'✔' if median <= TARGET_S else '✘'}"
        table.append([name, f"{median:.2f} s", f"{min(wall):.2f}–{max(wall):.2f}",
                      f"{cpu:.2f} s", target])  # fmt: skip
    plain, checked = push_latency(300 if args.quick else 2000)
    table.append(["push 1 row → SQLite, no expectations, p50", f"{plain:.0f} µs", "", "", ""])
    table.append(["push 1 row → SQLite, 3 expectations (reject), p50", f"{checked:.0f} µs", "",
                  "", ""])  # fmt: skip
    load = os.getloadavg()[0]
    print(f"{format_count(rows)} rows × 6 columns, {runs} runs, load average {load:.1f}\n")
    print(markdown_table(["workload", "median", "range", "CPU (all threads)", "target"], table))


if __name__ == "__main__":
    main()
