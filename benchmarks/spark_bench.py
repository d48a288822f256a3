"""The Spark offline engine against DuckDB: point-in-time joins and materialization at scale.

Workloads (sizes at ``--scale 1``; every count is multiplied by ``--scale``):

* ``pit10``: point-in-time join of a 10M-row entity frame onto a feature table of 1M keys x 10
  rows (3 Int64, 1 Float32, 1 String feature, created timestamps, TTL 1 day), result written
  to Parquet (Spark: a folder, by Spark; DuckDB: a file, streamed);
* ``pit100``: the same with a 100M-row entity frame;
* ``materialize``: the latest row per key of the 10M-row feature table (1M keys) in the
  whole range, streamed to this process in batches as materialization reads it.

Each workload runs on each engine in a fresh process (Spark ``local[2]`` by default), so its
peak memory is its own: the peak resident memory of the whole process tree (the Python
driver, Spark's JVM and its Python workers), sampled with psutil. The wall time excludes
starting Spark and, unless ``--no-warmup``, a first untimed join of 1000 rows (a fresh JVM
compiles the plans' code on first use, tens of seconds on a busy 2-core machine). Both
engines' results are compared on a random sample of rows (by position: both keep the entity
frame's order; materialized rows are sorted by key).

    .venv/bin/python benchmarks/spark_bench.py                    # full sizes (long)
    .venv/bin/python benchmarks/spark_bench.py --scale 0.01       # 100k / 1M rows: minutes
    .venv/bin/python benchmarks/spark_bench.py --workloads pit10 --engines spark
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from _util import DAY_US, FEATURES, format_count, markdown_table, write_source

ROWS_PER_KEY = 10
START_US = int(np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64))
SPAN_US = 30 * DAY_US
KEYS = 1_000_000
ENTITY_ROWS = {"pit10": 10_000_000, "pit100": 100_000_000}
WORKLOADS = ("pit10", "pit100", "materialize")
DEFAULT_DIR = Path(tempfile.gettempdir()) / "pitstop-bench-spark"


# --- data ----------------------------------------------------------------------------------


def write_entities(path: Path, rows: int, keys: int, *, seed: int = 7) -> Path:
    """Write (unless it exists) an entity frame: random keys below ``keys``, times over the
    source's span, a label; in row groups of 1M rows, renamed into place when complete."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rng = np.random.default_rng(seed)
    schema = pa.schema(
        [
            ("entity_id", pa.int64()),
            ("event_timestamp", pa.timestamp("us")),
            ("label", pa.float64()),
        ]
    )
    with pq.ParquetWriter(tmp, schema) as writer:
        for first in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - first)
            when = START_US + rng.integers(0, SPAN_US, n)
            chunk = pa.table(
                {
                    "entity_id": rng.integers(0, keys, n),
                    "event_timestamp": pa.array(when.astype("datetime64[us]")),
                    "label": rng.random(n),
                },
                schema=schema,
            )
            writer.write_table(chunk)
    tmp.rename(path)
    return path


def data(directory: Path, scale: float, workload: str) -> tuple[Path, Path | None, int]:
    """The feature table and entity frame files of ``workload`` (written once), and the
    entity frame's row count (0 for materialize)."""
    keys = max(int(KEYS * scale), 10)
    source = write_source(
        directory / f"source_{format_count(keys)}x{ROWS_PER_KEY}.parquet",
        keys,
        ROWS_PER_KEY,
        start_us=START_US,
        span_us=SPAN_US,
    )
    if workload == "materialize":
        return source, None, 0
    rows = max(int(ENTITY_ROWS[workload] * scale), 10)
    entity = write_entities(
        directory / f"entity_{format_count(rows)}_{format_count(keys)}.parquet", rows, keys
    )
    return source, entity, rows


# --- one measured run (in its own process) -------------------------------------------------


class PeakMemory:
    """Samples the resident memory of this process and all its descendants; keeps the peak."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._root = psutil.Process()
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for proc in [self._root, *self._root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a worker that just ended
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def _view(source: Path) -> Any:
    from pitstop.offline import SourceRef, ViewJoin

    ref = SourceRef(str(source), "parquet", "event_timestamp", "created", {}, "bench")
    columns = tuple((f, f) for f in FEATURES)
    return ViewJoin("bench", ref, ("entity_id",), ("entity_id",), columns, timedelta(days=1))


def _engine(args: argparse.Namespace) -> Any:
    if args.engine == "duckdb":
        from pitstop.offline import DuckDBEngine

        return DuckDBEngine(memory_limit=args.duckdb_memory)
    from pitstop.offline.spark import SparkEngine, SparkOfflineConfig

    conf = {
        "spark.driver.memory": args.driver_memory,
        "spark.sql.shuffle.partitions": str(args.shuffle_partitions),
    }
    engine = SparkEngine(SparkOfflineConfig(master=args.master, spark_conf=conf))
    engine.spark  # noqa: B018 - start Spark before the clock starts
    return engine


def child(args: argparse.Namespace) -> None:
    """Run one workload on one engine; print one JSON line (time, peak memory, rows)."""
    from pitstop.offline import PitPlan

    engine = _engine(args)
    view = _view(Path(args.source))
    out = Path(args.out)
    if args.warmup and args.engine == "spark":  # a fresh JVM compiles the plans' code once
        small = engine.spark.read.parquet(args.entity or args.source).limit(1000)
        engine.historical(small.select("entity_id", "event_timestamp"), PitPlan((view,))).to_arrow()
    with PeakMemory() as memory:
        start = time.perf_counter()
        if args.workload == "materialize":
            latest = engine.latest(view, None, None, key_order=True)
            with pq.ParquetWriter(out, latest.batches.schema) as writer:
                for batch in latest.batches:
                    writer.write_batch(batch)
            rows = latest.rows
        else:
            if args.engine == "spark":
                entity: Any = engine.spark.read.parquet(args.entity)
            else:
                entity = f"SELECT * FROM read_parquet('{args.entity}')"
            rows = engine.historical(entity, PitPlan((view,))).to_parquet(out)
        seconds = time.perf_counter() - start
    engine.close()
    print(json.dumps({"seconds": seconds, "rss_mb": memory.peak / 2**20, "rows": rows}))


def run(args: argparse.Namespace, workload: str, engine: str) -> dict[str, Any]:
    source, entity, _ = data(Path(args.data_dir), args.scale, workload)
    out = Path(args.data_dir) / "results" / f"{workload}_{args.scale}_{engine}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--child", "--workload", workload, "--engine", engine]
    cmd += ["--source", str(source), "--out", str(out), "--master", args.master]
    cmd += ["--driver-memory", args.driver_memory]
    cmd += ["--shuffle-partitions", str(args.shuffle_partitions)]
    cmd += [] if args.warmup else ["--no-warmup"]
    if entity is not None:
        cmd += ["--entity", str(entity)]
    if args.duckdb_memory:
        cmd += ["--duckdb-memory", args.duckdb_memory]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{workload} on {engine} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["out"] = out
    return result


def sample_equal(a: Path, b: Path, rows: int, samples: int, seed: int = 11) -> bool:
    """Whether the results at ``a`` and ``b`` (a Parquet file or folder each) have the same
    rows at ``samples`` random positions (and the same number of rows)."""
    first, second = ds.dataset(a), ds.dataset(b)
    if first.count_rows() != rows or second.count_rows() != rows:
        return False
    picks = sorted(random.Random(seed).sample(range(rows), min(samples, rows)))
    left, right = first.take(picks), second.take(picks)
    names = left.column_names
    return bool(right.select(names).cast(left.schema).equals(left))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every size")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--engines", default="spark,duckdb")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="8g", help="spark.driver.memory")
    parser.add_argument("--shuffle-partitions", type=int, default=32)
    parser.add_argument("--duckdb-memory", default=None, help="DuckDB memory_limit")
    parser.add_argument("--samples", type=int, default=10_000, help="rows compared")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="time Spark's first query too (by default a join of 1000 rows runs first, untimed)",
    )
    parser.add_argument("--data-dir", default=str(DEFAULT_DIR))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--workload", "--engine", "--source", "--entity", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    engines = [e for e in args.engines.split(",") if e]
    table, mismatches = [], []
    for workload in [w for w in args.workloads.split(",") if w]:
        if workload not in WORKLOADS:
            raise SystemExit(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
        source, _, entity_rows = data(Path(args.data_dir), args.scale, workload)
        results = {engine: run(args, workload, engine) for engine in engines}
        agree = "-"
        if len(results) == 2:
            first, second = results.values()
            ok = first["rows"] == second["rows"] and sample_equal(
                first["out"], second["out"], first["rows"], args.samples
            )
            agree = "yes" if ok else "NO"
            if not ok:
                mismatches.append(workload)
        size = f"{format_count(entity_rows)} x {pq.ParquetFile(source).metadata.num_rows:,}"
        for engine, res in results.items():
            table.append(
                [
                    workload,
                    size if workload != "materialize" else f"{res['rows']:,} keys",
                    engine,
                    f"{res['seconds']:.1f}",
                    f"{res['rss_mb']:.0f}",
                    f"{res['rows']:,}",
                    agree,
                ]
            )
    header = ["workload", "size", "engine", "wall s", "peak RSS MB (tree)", "rows", "same rows"]
    print(markdown_table(header, table))
    if mismatches:
        raise SystemExit(f"the engines disagree on: {', '.join(mismatches)}")


if __name__ == "__main__":
    main()
