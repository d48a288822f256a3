"""Feature logging overhead: a feature service served with and without a ``logging_config``.

One feature repo (SQLite online store; the 5-feature view of ``server.py``, 3 Int64, 1 Float32,
1 String; ``--entities`` entities, materialized) with three feature services over the same
features: ``plain`` (no logging), ``sampled`` (``sample_rate`` ``--rate``, 0.1 by default) and
``every`` (``sample_rate`` 1.0). Logs go to Parquet files in the repo, as in production.

- **In process:** ``store.get_online_features(service, [one random entity]).to_dict()`` for
  ``--turn`` seconds (10) per service and round, then ``flush_feature_logs()``: a turn ends
  once its logs are written, one file per turn as ``flush_seconds`` (10 s) makes it; the
  services take turns (each round another goes first), ``--rounds`` rounds; calls/s and the
  process's CPU time per call (the writer's thread included), medians over rounds.
- **HTTP:** ``pitstop serve`` (one worker) driven by ``wrk`` (one thread, concurrency 8) with
  ``{"feature_service": ..., "entities": {"entity_id": [random]}}``; the services take turns
  run by run, each going first in turn (``--duration`` seconds, ``--runs`` runs each); req/s
  and the server's CPU time per request, medians over runs.

The overhead is the relative loss of throughput against ``plain``, and the extra CPU per call.
Since the cost is linear in the share of requests logged, the last line also derives it at
``--rate`` from the ``every`` service (ten times the signal of the ``sampled`` row, whose
difference from ``plain`` is within the noise of a shared machine). Target: at most 5% fewer
requests per second at 10% sampling. The 1-minute load average is printed with the results.

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


def in_process(root: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """calls/s and process CPU µs per call (the writer's thread included) per service, one
    value per turn: ``--turn`` seconds of calls, then ``flush_feature_logs()`` (the turn
    ends once its logs are written: one file per turn, as ``flush_seconds`` does)."""
    from pitstop import FeatureStore

    found: dict[str, dict[str, list[float]]] = {name: {"rate": [], "cpu": []} for name in NAMES}
    with FeatureStore(repo_path=root) as store:
        services = {name: store.get_feature_service(name) for name in NAMES}
        rng = random.Random(1)
        for name in NAMES:  # warm-up: plans compiled, the log writer started
            for _ in range(200):
                store.get_online_features(services[name], [{"entity_id": 1}]).to_dict()
        store.flush_feature_logs()
        for round_ in range(args.rounds):
            for name in NAMES[round_ % 3 :] + NAMES[: round_ % 3]:  # each goes first in turn
                service, calls = services[name], 0
                keys = [[{"entity_id": rng.randrange(args.entities)}] for _ in range(args.block)]
                started, cpu = time.perf_counter(), time.process_time()
                while time.perf_counter() - started < args.turn:
                    for rows in keys:
                        store.get_online_features(service, rows).to_dict()
                    calls += len(keys)
                store.flush_feature_logs()
                found[name]["rate"].append(calls / (time.perf_counter() - started))
                found[name]["cpu"].append((time.process_time() - cpu) / calls * 1e6)
        stats = store.feature_logs.stats
        print(f"  in process: logged requests {dict(stats.requests)}, dropped "
              f"{dict(stats.dropped)}, files {stats.files}", file=sys.stderr)  # fmt: skip
    return found


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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turn", type=float, default=10.0, help="seconds of calls per turn")
    parser.add_argument("--block", type=int, default=1000, help="calls between clock looks")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per HTTP run")
    parser.add_argument("--runs", type=int, default=5, help="HTTP runs per service")
    parser.add_argument("--no-http", dest="http", action="store_false", help="in process only")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.turn, args.duration, args.runs = 2, 1.0, 3.0, 1
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
    rows = []
    for name in NAMES:
        rate = {"plain": "-", "sampled": f"{args.rate:g}", "every": "1"}[name]
        here, web = local[name], http[name]
        rows.append([
            name, rate, f"{med(here['rate']):,.0f}",
            overhead(med(local["plain"]["rate"]), med(here["rate"])),
            f"{med(here['cpu']):.1f}", f"{med(web['rps']):,.0f}",
            overhead(med(http["plain"]["rps"]), med(web["rps"])), f"{med(web['p99']):.2f}",
            f"{med(web['cpu']):.0f}",
        ])  # fmt: skip
    print(f"Feature logging overhead, 1 random entity x 5 features per request, SQLite; "
          f"in process {args.rounds} rounds of {args.turn:g} s turns; HTTP "
          f"wrk -t1 -c8, {args.runs} runs x {args.duration:g} s; medians; {os.cpu_count()} "
          f"CPUs, load {load_before:.1f} → {os.getloadavg()[0]:.1f}; {logged_rows} "
          "log files")  # fmt: skip
    header = ["service", "sample rate", "in-process calls/s", "loss", "CPU µs/call",
              "HTTP req/s", "loss", "HTTP p99 ms", "server CPU µs/req"]  # fmt: skip
    print(markdown_table(header, rows))
    # The cost is linear in the share of requests logged: at rate r it is r times the cost at
    # rate 1, which has ten times the signal of a direct measurement at 0.1 (and as much noise)
    plain, every = med(local["plain"]["cpu"]), med(local["every"]["cpu"])
    server_plain, server_every = med(http["plain"]["cpu"]), med(http["every"]["cpu"])
    print(
        f"CPU per logged request: {every - plain:.1f} µs in process, "
        f"{server_every - server_plain:.0f} µs in the server; at sample rate {args.rate:g} "
        f"that is {args.rate * (every - plain) / plain:+.1%} in process, "
        f"{args.rate * (server_every - server_plain) / server_plain:+.1%} in the server"
    )


if __name__ == "__main__":
    main()
