"""Materialization throughput: ``store.materialize`` of a Parquet source into an online store.

Workload: a Parquet source of ``--entities`` entities x (``--rows`` / ``--entities``) rows over
30 days (3 Int64, 1 Float32 and 1 String feature, event and created timestamps), generated
once and cached in ``--data-dir``; a feature view over it; ``store.materialize(start, end)``
over the whole span, so every entity's latest row (one per entity) is written online.

Every run is a fresh process with a fresh feature repo (an empty online store), so each
target's peak RSS is its own and no run upserts over an earlier one's rows. The wall time is
``store.materialize`` alone (not apply, not teardown). Each run also times, inside
``materialize_view``, the offline query (``offline.latest`` and pulling its record batches), the
encoding (``encode_rows`` and its parts) and the store writes; the breakdown of the median run
is printed after the table. Redis uses a key prefix of its own and is torn down after each run;
an unreachable store is skipped with a note.

    .venv/bin/python benchmarks/materialize.py                      # 10M rows / 1M entities
    .venv/bin/python benchmarks/materialize.py --targets redis --repeat 5
    .venv/bin/python benchmarks/materialize.py --quick              # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _util import (
    DAY_US,
    FEATURES,
    format_count,
    markdown_table,
    parse_count,
    peak_rss_mb,
    write_source,
)

REDIS_URL = os.environ.get("PITSTOP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DEFAULT_DIR = Path(__file__).parent / ".data"
START = datetime(2024, 1, 1, tzinfo=UTC)
START_US = int(START.timestamp()) * 1_000_000
SPAN = timedelta(days=30)
VIEW = "bench_features"
TARGETS = {"redis": 4.0, "sqlite": 6.0}  # seconds, reference machine
RSS_TARGET_MB = 1024.0

# Where the time goes: (label, module, attribute); each is wrapped by a timer in the child.
PHASES = (
    ("encode: micros (timestamps)", "pitstop.engine.write", "micros"),
    ("encode: encode_keys", "pitstop.engine.write", "encode_keys"),
    ("encode: encode_values", "pitstop.engine.write", "encode_values"),
    ("encode_rows total", "pitstop.engine.materialize", "encode_rows"),
)


# --- child: one materialization, timed -------------------------------------------------------


class Timers:
    """Seconds, calls and the peak RSS (MB) seen at the end of a call, per label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.rss: dict[str, float] = defaultdict(float)

    def _done(self, label: str, seconds: float) -> None:
        self.seconds[label] += seconds
        self.calls[label] += 1
        self.rss[label] = max(self.rss[label], peak_rss_mb())

    def wrap(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return func(*args, **kwargs)
            finally:
                self._done(label, clock() - start)

        return timed

    def batches(self, label: str, reader: Any) -> Iterator[Any]:
        """``reader``'s batches, the time spent waiting for each counted under ``label``."""
        clock = time.perf_counter
        it = iter(reader)
        while True:
            start = clock()
            try:
                batch = next(it)
            except StopIteration:
                self.seconds[label] += clock() - start
                return
            self._done(label, clock() - start)
            yield batch


def instrument(store: Any, target: str, timers: Timers) -> None:
    """Wrap the steps of ``materialize_view`` (and the store's) in timers.

    Steps that a newer pitstop no longer has are skipped: the breakdown is a diagnostic and
    must not stop the benchmark."""
    import importlib

    for label, module, attr in PHASES:
        mod = importlib.import_module(module)
        if callable(getattr(mod, attr, None)):
            setattr(mod, attr, timers.wrap(label, getattr(mod, attr)))
    offline = store.offline
    latest = timers.wrap("offline: latest() (runs the query to its 1st batch)", offline.latest)

    def timed_latest(*args: Any, **kwargs: Any) -> Any:
        found = latest(*args, **kwargs)  # LatestRows(batches, rows)
        return found._replace(batches=timers.batches("offline: pulling record batches", found[0]))

    offline.latest = timed_latest
    online = store.online
    online.write = timers.wrap("store: write() total", online.write)
    if target == "redis" and callable(getattr(online, "_send_ahead", None)):
        # the trips (packing the calls overlaps with the server's work), vs the rest of write()
        label = "store: redis trips (packing overlaps the server)"
        online._send_ahead = timers.wrap(label, online._send_ahead)
    if target == "sqlite" and callable(getattr(type(online), "_write", None)):
        label = "store: sqlite executemany + commit"
        type(online)._write = staticmethod(timers.wrap(label, type(online)._write))


def make_store(root: Path, target: str, source: Path) -> Any:
    from pitstop import Entity, FeatureStore, FeatureView, Field, FileSource
    from pitstop.config import parse_config
    from pitstop.types import Float32, Int64, String

    online: dict[str, Any] = {"type": "sqlite", "path": "online.db"}
    if target == "redis":
        prefix = f"pitstop_bench_{uuid.uuid4().hex[:10]}:"
        online = {"type": "redis", "connection_string": REDIS_URL, "key_prefix": prefix}
    config = parse_config(
        {"project": "bench", "registry": "registry.db", "online_store": online}, repo_path=root
    )
    store = FeatureStore(config=config)
    entity = Entity(name="entity", join_keys=["entity_id"])
    dtypes = {"f_int1": Int64, "f_int2": Int64, "f_int3": Int64, "f_float": Float32}
    view = FeatureView(
        name=VIEW,
        entities=[entity],
        ttl=timedelta(days=1),
        schema=[Field(name="entity_id", dtype=Int64)]
        + [Field(name=f, dtype=dtypes.get(f, String)) for f in FEATURES],
        source=FileSource(
            name="bench_source",
            path=str(source),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
    )
    store.apply([entity, view])
    return store


def redis_script_seconds() -> float:
    """The Redis server's CPU seconds in ``EVALSHA`` so far (its command statistics)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        return float(stats.get("usec", 0)) / 1e6
    finally:
        client.close()


def child(args: argparse.Namespace) -> None:
    """Materialize once into a fresh repo and print one JSON line of results."""
    from pitstop.errors import BackendUnavailableError, MissingExtraError

    timers = Timers()
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-materialize-") as tmp:
        try:
            store = make_store(Path(tmp), args.target, Path(args.source))
        except (BackendUnavailableError, MissingExtraError) as exc:
            print(json.dumps({"skipped": str(exc)}))
            return
        try:
            instrument(store, args.target, timers)
            server = redis_script_seconds() if args.target == "redis" else 0.0
            start = time.perf_counter()
            results = store.materialize(START - timedelta(days=1), START + SPAN + timedelta(days=1))
            seconds = time.perf_counter() - start
            rss = peak_rss_mb()
            if args.target == "redis":
                server = redis_script_seconds() - server
                timers.seconds["redis-server: CPU in the write script (overlapped)"] = server
        finally:
            teardown = time.perf_counter()
            if args.target == "redis":
                store.teardown()
            store.close()
            teardown = time.perf_counter() - teardown
    rows = sum(r.rows for r in results)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": rows,
                "rss_mb": rss,
                "teardown": teardown,
                "phases": timers.seconds,
                "calls": timers.calls,
                "step_rss": timers.rss,
            }
        )
    )


# --- parent: data, runs, tables --------------------------------------------------------------


def run_once(args: argparse.Namespace, target: str, source: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--target", target, "--source", str(source)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"materialize -> {target} failed (exit {out.returncode})")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def breakdown(run: dict[str, Any], target: str) -> str:
    """Where the time of ``run`` went, as a table (sub-steps indented)."""
    phases: dict[str, float] = run["phases"]
    calls: dict[str, int] = run["calls"]
    step_rss: dict[str, float] = run["step_rss"]
    wall = run["seconds"]
    rows: list[list[object]] = []

    def add(label: str, seconds: float, key: str | None = None) -> None:
        rss = f"{step_rss[key]:,.0f}" if key in step_rss else "-"
        count = calls.get(key, "-") if key else "-"
        rows.append([label, f"{seconds:.3f}", f"{seconds / wall:.0%}", count, rss])

    top = [
        "offline: latest() (runs the query to its 1st batch)",
        "offline: pulling record batches",
        "encode_rows total",
        "store: write() total",
    ]
    for label in [t for t in top if t in phases]:
        add(label, phases[label], label)
        if label == "encode_rows total":
            subs = [p[0] for p in PHASES[:-1]]
            for sub in subs:
                add(f"  {sub}", phases.get(sub, 0.0), sub)
            rest = phases[label] - sum(phases.get(sub, 0.0) for sub in subs)
            add("  encode: rest (to_pylist, StoredRow tuples, GC)", rest)
        if label == "store: write() total":
            subs = [sub for sub in phases if sub.startswith("store: ") and sub != label]
            for sub in subs:
                add(f"  {sub.removeprefix('store: ')}", phases[sub], sub)
            if subs:
                add("  rest of write()", phases[label] - sum(map(phases.get, subs)))
            for sub in [sub for sub in phases if sub.startswith("redis-server: ")]:
                add(f"  {sub}", phases[sub])
    add("other (registry, watermark, loop)", wall - sum(phases.get(t, 0.0) for t in top))
    add("materialize() wall", wall)
    title = (
        f"\nWhere the time goes -> {target} (the median run): s, share of wall, calls, and the "
        "process's peak RSS MB when the step's last call ended\n"
    )
    return title + markdown_table(["step", "s", "share", "calls", "peak RSS MB"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="10M", help="source rows (e.g. 10M, 500k)")
    parser.add_argument("--entities", default="1M", help="distinct entities (e.g. 1M)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (median shown)")
    parser.add_argument("--targets", default="sqlite,redis", help="comma separated")
    parser.add_argument("--data-dir", default=str(DEFAULT_DIR), help="cached source data")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.rows, args.entities, args.repeat = "20k", "2k", 1
    rows, entities = parse_count(args.rows), parse_count(args.entities)
    if entities <= 0 or rows < entities or rows % entities:
        parser.error("--rows must be a positive multiple of --entities")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if unknown := [t for t in targets if t not in TARGETS]:
        parser.error(f"unknown target(s) {unknown}; allowed: {', '.join(TARGETS)}")
    name = f"materialize_{format_count(rows)}_{format_count(entities)}.parquet"
    began = time.perf_counter()
    source = write_source(
        Path(args.data_dir) / name, entities, rows // entities, start_us=START_US,
        span_us=30 * DAY_US,
    )  # fmt: skip
    if (generated := time.perf_counter() - began) > 1:
        print(f"(source data ready in {generated:.1f} s: {source})", file=sys.stderr)
    table: list[list[object]] = []
    details: list[str] = []
    for target in targets:
        runs = [run_once(args, target, source) for _ in range(args.repeat)]
        if any("skipped" in r for r in runs):
            note = next(r["skipped"] for r in runs if "skipped" in r)
            print(f"skipped {target}: {note}", file=sys.stderr)
            table.append([target, "skipped (unreachable)", "-", "-", "-", "-", "-", "-"])
            continue
        runs.sort(key=lambda r: r["seconds"])
        median = runs[len(runs) // 2]
        wall = statistics.median(r["seconds"] for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        ok = wall <= TARGETS[target] and rss <= RSS_TARGET_MB
        table.append(
            [
                f"→ {target}",
                f"{wall:.2f}",
                f"{runs[0]['seconds']:.2f}",
                f"{median['rows']:,}",
                f"{median['rows'] / wall:,.0f}",
                f"{rows / wall:,.0f}",
                f"{rss:,.0f}",
                f"≤ {TARGETS[target]:.0f} s, ≤ {RSS_TARGET_MB:,.0f} MB: "
                + ("pass" if ok else "FAIL"),
            ]
        )
        details.append(breakdown(median, target))
    print(
        f"materialize {format_count(rows)} source rows / {format_count(entities)} entities "
        f"(5 features, Parquet), {args.repeat} run(s) per target, each in a fresh process"
    )
    header = [
        "target",
        "median s",
        "min s",
        "rows written",
        "written rows/s",
        "source rows/s",
        "peak RSS MB",
        "target",
    ]
    print(markdown_table(header, table))
    for text in details:
        print(text)


if __name__ == "__main__":
    main()
