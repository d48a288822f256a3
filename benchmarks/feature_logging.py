"""Feature logging overhead: a feature service served with and without a ``logging_config``.

One feature repo (SQLite online store; the 5-feature view of ``server.py``, 3 Int64, 1 Float32,
1 String; ``--entities`` entities, materialized) with three feature services over the same
features: ``plain`` (no logging), ``sampled`` (``sample_rate`` ``--rate``, 0.1 by default) and
``every`` (``sample_rate`` 1.0). Logs go to Parquet files in the repo, as in production.

- **In process:** ``store.get_online_features(service, [one random entity]).to_dict()``,
  the services taking turns block by block (``--block`` calls; each round another goes
  first) for ``--seconds``. A call's CPU time is its own thread's (measured per block, so a
  loaded machine's drift hits every service alike) plus its share of the log writer's thread
  (that thread's CPU time, from ``/proc``, per logged row, times the rows the service logged
  per call). calls/s is the blocks' wall-clock rate.
- **HTTP:** ``pitstop serve`` (one worker) driven by ``wrk`` (one thread, concurrency 8) with
  ``{"feature_service": ..., "entities": {"entity_id": [random]}}``; the services take turns
  run by run, each going first in turn (``--duration`` seconds, ``--runs`` runs each); req/s
  and the server's CPU time per request, medians over runs.

The overhead is the extra CPU time per call (what bounds the throughput of a busy server or
process), and the relative loss of requests per second against ``plain``; the wall-clock
figures of a shared machine are noisier than the CPU times. Target: at most 5% fewer requests
per second at 10% sampling. The 1-minute load average is printed with the results.

    .venv/bin/python benchmarks/feature_logging.py
    .venv/bin/python benchmarks/feature_logging.py --quick     # a smoke test (~1 min)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import markdown_table
from server import build_repo, load, server

SERVICES = """

from pitstop import FeatureService
from pitstop.definitions.feature_logging import FileLoggingDestination, LoggingConfig

plain = FeatureService(name="plain", features=[features])
sampled = FeatureService(name="sampled", features=[features], logging_config=LoggingConfig(
    destination=FileLoggingDestination(path="data/logs"), sample_rate={rate}))
every = FeatureService(name="every", features=[features], logging_config=LoggingConfig(
    destination=FileLoggingDestination(path="data/logs"), sample_rate=1.0))
"""
NAMES = ("plain", "sampled", "every")


def thread_cpu(tid: int) -> float:
    """CPU seconds of thread ``tid`` of this process so far (Linux ``/proc``)."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def in_process(root: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per service: calls/s, CPU µs per call on the caller's thread, and with the writer's
    share (see the module docs)."""
    from pitstop import FeatureStore

    cpu = dict.fromkeys(NAMES, 0.0)
    wall = dict.fromkeys(NAMES, 0.0)
    calls = dict.fromkeys(NAMES, 0)
    with FeatureStore(repo_path=root) as store:
        services = {name: store.get_feature_service(name) for name in NAMES}
        rng = random.Random(1)
        for name in NAMES:  # warm-up: plans compiled, the log writer started
            for _ in range(200):
                store.get_online_features(services[name], [{"entity_id": 1}]).to_dict()
        writer = store.feature_logs
        writer.flush()
        assert writer._thread is not None and writer._thread.native_id is not None
        tid, rows_before = writer._thread.native_id, dict(writer.stats.rows)
        writer_before, stop, round_ = thread_cpu(tid), time.perf_counter() + args.seconds, 0
        while time.perf_counter() < stop:
            for name in NAMES[round_ % 3 :] + NAMES[: round_ % 3]:  # each goes first in turn
                service = services[name]
                keys = [[{"entity_id": rng.randrange(args.entities)}] for _ in range(args.block)]
                started, mine = time.perf_counter(), time.thread_time()
                for rows in keys:
                    store.get_online_features(service, rows).to_dict()
                cpu[name] += time.thread_time() - mine
                wall[name] += time.perf_counter() - started
                calls[name] += len(keys)
            round_ += 1
        writer.flush()
        writer_cpu = thread_cpu(tid) - writer_before
        logged = {n: writer.stats.rows.get(n, 0) - rows_before.get(n, 0) for n in NAMES}
        print(f"  in process: {round_} rounds; rows logged {logged}, dropped "
              f"{dict(writer.stats.dropped)}, files {writer.stats.files}; writer thread "
              f"{writer_cpu:.2f} s CPU", file=sys.stderr)  # fmt: skip
    per_row = writer_cpu / max(sum(logged.values()), 1)
    return {
        name: {
            "rate": calls[name] / wall[name],
            "caller": cpu[name] / calls[name] * 1e6,
            "cpu": (cpu[name] + per_row * logged[name]) / calls[name] * 1e6,
        }
        for name in NAMES
    }


def over_http(root: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """req/s, p99 ms and server CPU µs per request per service, one value per run."""
    found: dict[str, dict[str, list[float]]] = {
        name: {"rps": [], "p99": [], "cpu": []} for name in NAMES
    }
    with server(root, 1) as (url, pid):
        for run in range(args.runs):
            for name in NAMES[run % 3 :] + NAMES[: run % 3]:
                rps, _, p99, errors, cpu = load(url, None, args.entities, 8, args.duration, pid,
                                                service=name)  # fmt: skip
                if errors:
                    raise SystemExit(f"{errors} failed requests for service {name}")
                found[name]["rps"].append(rps)
                found[name]["p99"].append(p99)
                found[name]["cpu"].append(cpu)
                print(f"  http {name}: {rps:,.0f} req/s, {cpu:.0f} µs CPU/req", file=sys.stderr,
                      flush=True)  # fmt: skip
    return found


def overhead(base: float, other: float) -> str:
    return f"{(base - other) / base:+.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=0.1, help="sample_rate of 'sampled'")
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=120.0, help="in process, in all")
    parser.add_argument("--block", type=int, default=1000, help="calls per block")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per HTTP run")
    parser.add_argument("--runs", type=int, default=5, help="HTTP runs per service")
    parser.add_argument("--no-http", dest="http", action="store_false", help="in process only")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.duration, args.runs = 6.0, 3.0, 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-logging-") as tmp:
        root = Path(tmp) / "repo"
        build_repo(root, "sqlite", args.entities, SERVICES.format(rate=args.rate))
        local = in_process(root, args)
        nothing: dict[str, list[float]] = {"rps": [float("nan")], "p99": [float("nan")],
                                           "cpu": [float("nan")]}  # fmt: skip
        http = over_http(root, args) if args.http else dict.fromkeys(NAMES, nothing)
        logged_rows = sum(1 for _ in (root / "data" / "logs").rglob("*.parquet"))
    med: Any = statistics.median
    base, base_rps, base_cpu = local["plain"], med(http["plain"]["rps"]), med(http["plain"]["cpu"])
    rows = []
    for name in NAMES:
        rate = {"plain": "-", "sampled": f"{args.rate:g}", "every": "1"}[name]
        here, web = local[name], http[name]
        rows.append([
            name, rate, f"{here['caller']:.1f}", f"{here['cpu']:.1f}",
            f"{(here['cpu'] - base['cpu']) / base['cpu']:+.1%}", f"{here['rate']:,.0f}",
            overhead(base["rate"], here["rate"]), f"{med(web['cpu']):.0f}",
            f"{(med(web['cpu']) - base_cpu) / base_cpu:+.1%}", f"{med(web['rps']):,.0f}",
            overhead(base_rps, med(web["rps"])), f"{med(web['p99']):.2f}",
        ])  # fmt: skip
    print(f"Feature logging overhead, 1 random entity x 5 features per request, SQLite; "
          f"in process {args.seconds:g} s in blocks of {args.block}; HTTP wrk -t1 -c8, "
          f"{args.runs} runs x {args.duration:g} s, medians; {os.cpu_count()} CPUs, load "
          f"{load_before:.1f} → {os.getloadavg()[0]:.1f}; {logged_rows} log files")  # fmt: skip
    header = ["service", "sample rate", "caller CPU µs/call", "+ writer CPU µs/call", "extra",
              "calls/s", "loss", "server CPU µs/req", "extra", "HTTP req/s", "loss",
              "HTTP p99 ms"]  # fmt: skip
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
