"""``pitstop monitor`` over a million logged rows.

A feature repo (SQLite online store; the 5-feature view of ``server.py``: 3 Int64, 1 Float32,
1 String; ``--entities`` entities, materialized) with a feature service ``logged``
(``sample_rate`` 1.0). ``--rows`` rows are logged by serving the service in process, 100
random entities per request (the first half, then the second half after the online values of
``f_int1`` were shifted, so that there is drift to find); a training set of ``--reference``
rows is saved from ``get_historical_features`` of the service.

Timed, ``--runs`` times each (medians): the monitor against the saved dataset (all the logged
rows against the training set), against a window of the logs (the first half against the
second), the consistency check (``--sample`` logged rows recomputed offline), and the command
line (``pitstop monitor ... -o json``, the interpreter's start included). The time to log the
rows is shown too. Target: the monitor over 1M logged rows in at most 10 s.

    .venv/bin/python benchmarks/monitor.py
    .venv/bin/python benchmarks/monitor.py --quick            # 100k rows (smoke test)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _util import format_count, markdown_table, parse_count, peak_rss_mb
from server import VIEW, build_repo

SERVICE = """

from pitstop import FeatureService
from pitstop.definitions.feature_logging import FileLoggingDestination, LoggingConfig

logged = FeatureService(name="logged", features=[features], logging_config=LoggingConfig(
    destination=FileLoggingDestination(path="data/logs"), sample_rate=1.0))
"""
PER_REQUEST = 100


def log_rows(store: Any, rows: int, entities: int) -> tuple[datetime, float]:
    """Serve ``rows`` rows (two halves, ``f_int1`` shifted in between); the instant between
    the halves and the seconds it took."""
    import pyarrow as pa
    import pyarrow.compute as pc

    service = store.get_feature_service("logged")
    rng = random.Random(3)
    started = time.perf_counter()
    mid = datetime.now(UTC)
    for half in (0, 1):
        if half:
            store.flush_feature_logs()
            mid = datetime.now(UTC)
            refs = [f"{VIEW}:{f}" for f in ("f_int1", "f_int2", "f_int3", "f_float", "f_str")]
            everyone = {"entity_id": list(range(entities))}
            current = store.get_online_features(refs, everyone).to_arrow()
            shifted = current.set_column(1, "f_int1", pc.add(current.column(1), 300))
            now = pa.array([datetime.now(UTC)] * entities, pa.timestamp("us", tz="UTC"))
            store.write_to_online_store(VIEW, shifted.append_column("event_timestamp", now)
                                        .append_column("created", now))  # fmt: skip
        for _ in range(rows // 2 // PER_REQUEST):
            ids = [rng.randrange(entities) for _ in range(PER_REQUEST)]
            store.get_online_features(service, {"entity_id": ids})
    store.flush_feature_logs()
    return mid, time.perf_counter() - started


def save_training_set(store: Any, rows: int, entities: int) -> None:
    import pyarrow as pa

    from pitstop.definitions import SavedDatasetFileStorage

    rng = random.Random(4)
    entity = pa.table({
        "entity_id": [rng.randrange(entities) for _ in range(rows)],
        "event_timestamp": pa.array([datetime.now(UTC)] * rows, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    job = store.get_historical_features(entity, store.get_feature_service("logged"))
    storage = SavedDatasetFileStorage(path="data/train.parquet")
    store.create_saved_dataset(from_=job, name="train", storage=storage)


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    seconds, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="1M", help="logged rows (e.g. 1M, 100k)")
    parser.add_argument("--reference", default="200k", help="rows of the saved dataset")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=10_000, help="consistency sample")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k rows, 1 run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.reference, args.entities, args.runs = "100k", "20k", 10_000, 1
    rows, reference = parse_count(args.rows), parse_count(args.reference)
    from pitstop import FeatureStore
    from pitstop.quality.consistency import consistency
    from pitstop.quality.monitor import monitor

    load_before = os.getloadavg()[0]
    table = []
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-monitor-") as tmp:
        root = Path(tmp) / "repo"
        build_repo(root, "sqlite", args.entities, SERVICE)
        with FeatureStore(repo_path=root) as store:
            save_training_set(store, reference, args.entities)
            mid, log_seconds = log_rows(store, rows, args.entities)
            print(f"  logged {rows:,} rows in {log_seconds:.1f} s", file=sys.stderr)
            runs: list[tuple[str, Callable[[], Any]]] = [
                (f"{format_count(rows)} logged rows vs saved dataset of "
                 f"{format_count(reference)}", lambda: monitor(store, "logged", dataset="train")),
                (f"logs: first {format_count(rows // 2)} vs second {format_count(rows // 2)}",
                 lambda: monitor(store, "logged", reference_until=mid, since=mid)),
                (f"consistency: {args.sample:,} logged rows recomputed offline",
                 lambda: consistency(store, "logged", sample=args.sample)),
            ]  # fmt: skip
            for name, fn in runs:
                seconds, report = timed(fn, args.runs)
                breached = [f.feature for f in report.features if f.breach]
                if report.consistency is not None:
                    breached = [f.feature for f in report.consistency.features if f.mismatches]
                table.append([name, f"{statistics.median(seconds):.2f}",
                              ", ".join(breached) or "-"])  # fmt: skip
                print(f"  {name}: {statistics.median(seconds):.2f} s", file=sys.stderr)
        command = [str(Path(sys.executable).with_name("pitstop")), "-c", str(root), "monitor",
                   "--service", "logged", "--dataset", "train", "-o", "json"]  # fmt: skip
        seconds, _ = timed(lambda: subprocess.run(command, capture_output=True), args.runs)
        table.append([f"pitstop monitor (command line), {format_count(rows)} rows",
                      f"{statistics.median(seconds):.2f}", "exit status 3"])  # fmt: skip
    print(f"pitstop monitor, {args.runs} run(s), medians; logging {rows:,} rows took "
          f"{log_seconds:.1f} s ({rows / log_seconds:,.0f} rows/s served and logged); peak RSS "
          f"{peak_rss_mb():,.0f} MiB; {os.cpu_count()} CPUs, load {load_before:.1f} → "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    print(markdown_table(["run", "seconds", "features beyond the thresholds"], table))


if __name__ == "__main__":
    main()
