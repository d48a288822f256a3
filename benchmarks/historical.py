"""Point-in-time join (historical retrieval) on the DuckDB engine.

Workload per size ``N`` (or ``NxM``): a Parquet source of ``N`` entities x 10 rows (3 Int64, 1
Float32 and 1 String feature, event timestamps spread over 30 days, created timestamps), an
entity frame of ``M`` rows (default ``M = N``) with random keys and timestamps over the same
30 days plus a label, TTL 1 day, 5 features + 1 on-demand-like transform (a ratio of two
features computed per batch with pyarrow.compute). Data is generated once and cached.

Each size runs in a fresh process so its peak RSS is its own; the join runs ``--repeat`` times
there. Targets (reference machine, 2 cores): 100k <= 0.3 s; 1M <= 1.2 s and <= 1 GB RSS.

    .venv/bin/python benchmarks/historical.py                 # 100k and 1M
    .venv/bin/python benchmarks/historical.py --sizes 10M     # 100M source rows, 10M entity rows
    .venv/bin/python benchmarks/historical.py --sizes 10Mx1M --memory-limit 4GB
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
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _util import format_count, markdown_table, parse_count, peak_rss_mb

ROWS_PER_ENTITY = 10
SPAN_US = 30 * 86_400 * 1_000_000
START_US = int(np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64))
CHUNK_ENTITIES = 250_000
FEATURES = ("f_int1", "f_int2", "f_int3", "f_float", "f_str")
DEFAULT_DIR = Path(tempfile.gettempdir()) / "pitstop-bench-historical"


def _timestamps(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype("datetime64[us]"))


def _source_chunk(rng: np.random.Generator, first: int, count: int) -> pa.Table:
    rows = count * ROWS_PER_ENTITY
    ids = np.repeat(np.arange(first, first + count, dtype=np.int64), ROWS_PER_ENTITY)
    rng.shuffle(ids)
    event = START_US + rng.integers(0, SPAN_US, rows)
    created = event + rng.integers(0, 3_600_000_000, rows)
    words = np.char.add("s", rng.integers(0, 1000, rows).astype(str))
    return pa.table(
        {
            "entity_id": ids,
            "event_timestamp": _timestamps(event),
            "created": _timestamps(created),
            "f_int1": rng.integers(0, 1000, rows),
            "f_int2": rng.integers(1, 1000, rows),
            "f_int3": rng.integers(0, 1000, rows),
            "f_float": rng.random(rows, dtype=np.float32),
            "f_str": pa.array(words),
        }
    )


def generate(directory: Path, n: int, m: int) -> tuple[Path, Path]:
    """Write (once) the source and entity Parquet files for ``n`` entities / ``m`` rows."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / f"source_{format_count(n)}.parquet"
    entity = directory / f"entity_{format_count(n)}x{format_count(m)}.parquet"
    rng = np.random.default_rng(42)
    if not source.exists():
        tmp = source.with_suffix(".tmp")
        writer: pq.ParquetWriter | None = None
        for first in range(0, n, CHUNK_ENTITIES):
            chunk = _source_chunk(rng, first, min(CHUNK_ENTITIES, n - first))
            writer = writer or pq.ParquetWriter(tmp, chunk.schema)
            writer.write_table(chunk, row_group_size=1 << 20)
        assert writer is not None
        writer.close()
        tmp.rename(source)
    if not entity.exists():
        table = pa.table(
            {
                "entity_id": rng.integers(0, n, m),
                "event_timestamp": _timestamps(START_US + rng.integers(0, SPAN_US, m)),
                "label": rng.random(m),
            }
        )
        pq.write_table(table, entity)
    return source, entity


def ratio(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The on-demand-like feature: f_int1 / f_int2 as float64."""
    value = pc.divide(
        pc.cast(batch.column("f_int1"), pa.float64()), pc.cast(batch.column("f_int2"), pa.float64())
    )
    return batch.append_column("ratio", value)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def child(args: argparse.Namespace) -> None:
    """Run the join ``args.repeat`` times and print one JSON line of results."""
    from pitstop.offline import DuckDBEngine, PitPlan, SourceRef, ViewJoin

    source = SourceRef(args.source, "parquet", "event_timestamp", "created", {}, "bench")
    view = ViewJoin(
        "bench",
        source,
        ("entity_id",),
        ("entity_id",),
        tuple((f, f) for f in FEATURES),
        ttl=timedelta(days=1),
    )
    plan = PitPlan((view,))
    entity = pq.read_table(args.entity)
    if args.output == "df":
        entity = entity.to_pandas()
    engine = DuckDBEngine(
        threads=args.threads,
        memory_limit=args.memory_limit,
        hash_max_rows_per_key=args.hash_max_rows_per_key,
    )
    times, cpu, rows, filled = [], [], 0, 0
    for _ in range(args.repeat):
        start, used = time.perf_counter(), _cpu_seconds()
        job = engine.historical(entity, plan).with_transforms([ratio])
        result = job.to_df() if args.output == "df" else job.to_arrow()
        times.append(time.perf_counter() - start)
        cpu.append(_cpu_seconds() - used)
        rows = len(result)
        column = result["ratio"]
        filled = rows - int(column.isna().sum() if args.output == "df" else column.null_count)
        del result, job
    engine.close()
    entity_rows = len(entity)
    print(
        json.dumps(
            {
                "times": times,
                "cpu": cpu,
                "rows": rows,
                "entity_rows": entity_rows,
                "filled": filled,
                "rss_mb": peak_rss_mb(),
            }
        )
    )


def run_size(args: argparse.Namespace, size: str) -> list[object]:
    n_text, _, m_text = size.lower().partition("x")
    n, m = parse_count(n_text), parse_count(m_text or n_text)
    source, entity = generate(Path(args.data_dir), n, m)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--source",
        str(source),
        "--entity",
        str(entity),
        "--repeat",
        str(args.repeat),
        "--output",
        args.output,
        "--hash-max-rows-per-key",
        str(args.hash_max_rows_per_key),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    times = res["times"]
    return [
        f"{format_count(n * ROWS_PER_ENTITY)} x {format_count(m)}",
        f"{statistics.median(times):.3f}",
        f"{min(times):.3f}",
        f"{statistics.median(res['cpu']):.2f}",
        f"{res['rss_mb']:.0f}",
        "yes" if res["rows"] == res["entity_rows"] else f"NO ({res['rows']})",
        f"{res['filled'] / max(res['rows'], 1):.0%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1M", help="N or NxM, comma separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", default=str(DEFAULT_DIR))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory-limit", default=None)
    parser.add_argument("--output", choices=("arrow", "df"), default="arrow")
    parser.add_argument("--hash-max-rows-per-key", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--entity", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows = [run_size(args, size) for size in args.sizes.split(",") if size.strip()]
    header = [
        "source rows x entity rows",
        "median s",
        "min s",
        "median CPU s",
        "peak RSS MB",
        "rows out == rows in",
        "rows with features",
    ]
    print(
        f"PIT join, 5 features + 1 on-demand, TTL 1 day, to_{args.output}(), "
        f"{args.repeat} runs per size, fresh process per size"
    )
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
