"""HTTP feature server throughput and latency: ``pitstop serve`` driven by ``wrk``.

For each online store (SQLite, Redis) a feature repo is written to a temporary directory (an
entity, a feature view of 5 features — 3 Int64, 1 Float32, 1 String — and a python-mode
on-demand view ``f_int1 / f_int2``), applied and materialized (``--entities`` entities). Then
``pitstop serve`` runs in a subprocess with ``--workers`` 1 and 2, and ``wrk`` (one thread)
POSTs ``/get-online-features`` for one random entity per request — 5 features, or 5 features +
the on-demand output — at concurrency 1 and 8 for ``--duration`` seconds each (after a 1 s
warm-up). A third row per setting, ``GET /openapi.json`` (static bytes, no store work), is
the floor of this server, load generator and machine: what remains when pitstop does
nothing. Without ``wrk`` (``apt-get install -y wrk``) a small asyncio load generator runs in
a separate process instead (no floor row then). Every response must be a 200 (counted).

The table shows the median over ``--runs`` of req/s, p50 and p99, and the 1-minute load
average before the run: the reference machine has 2 cores, shared by the server, the load
generator and whatever else runs, so a high load marks numbers taken under contention.
Targets (concurrency 8): ≥ 5,000 req/s with p99 ≤ 5 ms; with the on-demand view ≥ 3,000 req/s.

    .venv/bin/python benchmarks/server.py                     # everything, 20 s per cell
    .venv/bin/python benchmarks/server.py --quick             # a smoke test (~1 min)
    .venv/bin/python benchmarks/server.py --stores sqlite --workers 2 --duration 10 --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _util import DAY_US, FEATURES, markdown_table, write_source

REDIS_URL = os.environ.get("PITSTOP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
VIEW = "bench_features"
REFS = [f"{VIEW}:{name}" for name in FEATURES]
FLOOR = "floor: GET /openapi.json (static)"
WORKLOADS: dict[str, list[str] | None] = {
    "5 features": REFS,
    "5 features + python on-demand": [*REFS, "ratio_python:ratio"],
    FLOOR: None,  # the same server and load generator without any store work: the HTTP floor
}
TARGETS = {"5 features": (5000, 5.0), "5 features + python on-demand": (3000, None)}

DEFINITIONS = f'''"""Benchmark feature repo (written by benchmarks/server.py)."""

from datetime import timedelta

from pitstop import Entity, FeatureView, Field, FileSource, on_demand_feature_view
from pitstop.types import Float32, Float64, Int64, String

entity = Entity(name="entity", join_keys=["entity_id"])
source = FileSource(path="data/source.parquet", timestamp_field="event_timestamp",
                    created_timestamp_column="created")
features = FeatureView(
    name="{VIEW}", entities=[entity], ttl=timedelta(days=90), source=source,
    schema=[Field(name="entity_id", dtype=Int64), Field(name="f_int1", dtype=Int64),
            Field(name="f_int2", dtype=Int64), Field(name="f_int3", dtype=Int64),
            Field(name="f_float", dtype=Float32), Field(name="f_str", dtype=String)],
)


@on_demand_feature_view(sources=[features], schema=[Field(name="ratio", dtype=Float64)],
                        mode="python")
def ratio_python(inputs):
    return {{"ratio": [None if a is None or not b else a / b
                      for a, b in zip(inputs["f_int1"], inputs["f_int2"])]}}
'''

FLOOR_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  local failed = e.status + e.connect + e.read + e.write + e.timeout
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), failed))
end
"""
LUA = """
local prefix, suffix, n = %s, %s, %d
math.randomseed(%d)
local headers = {["Content-Type"] = "application/json"}
request = function()
  local body = prefix .. math.random(0, n - 1) .. suffix
  return wrk.format("POST", "/get-online-features", headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  local failed = e.status + e.connect + e.read + e.write + e.timeout
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), failed))
end
"""


@dataclass
class Cell:
    store: str
    workload: str
    workers: int
    concurrency: int
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_us: list[float] = field(default_factory=list)  # server CPU per request (all workers)


def build_repo(root: Path, store: str, entities: int, extra: str = "") -> None:
    """Write, apply and materialize the benchmark repo at ``root`` (``extra``: more
    definitions, appended to the file)."""
    import yaml

    from pitstop import FeatureStore
    from pitstop.repo import load_repo

    root.mkdir(parents=True)
    (root / "definitions.py").write_text(DEFINITIONS + extra)
    online: dict[str, Any] = {"type": "sqlite", "path": "data/online.db"}
    if store == "redis":
        prefix = f"pitstop_bench_server_{uuid.uuid4().hex[:8]}:"
        online = {"type": "redis", "connection_string": REDIS_URL, "key_prefix": prefix}
    config = {"project": "bench", "registry": "data/registry.db", "online_store": online}
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config))
    start_us = time.time_ns() // 1000 - 30 * DAY_US - 3_600_000_000
    write_source(root / "data/source.parquet", entities, 10, start_us=start_us)
    with FeatureStore(repo_path=root) as fs:
        fs.apply(list(load_repo(root).all()), partial=False)
        end = datetime.now(UTC)
        fs.materialize(end - timedelta(days=31), end, [VIEW])


def teardown(root: Path) -> None:
    from pitstop import FeatureStore

    with FeatureStore(repo_path=root) as fs:
        fs.teardown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        return json.loads(r.read())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants so far (Linux ``/proc``)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(stat[11]) + int(stat[12])) / tick
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except OSError:
        pass
    return total


@contextlib.contextmanager
def server(root: Path, workers: int, registry_ttl: float = 60) -> Iterator[tuple[str, int]]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "pitstop.cli.main",
        "-c",
        str(root),
        "serve",
        "-p",
        str(port),
        "--workers",
        str(workers),
        "--registry-ttl-sec",
        str(registry_ttl),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if call(f"{url}/health")["status"] == "ok":
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {' '.join(cmd)}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def check(url: str, entities: int) -> None:
    """Fail loudly unless every value of a random entity is PRESENT."""
    body = {
        "features": WORKLOADS["5 features + python on-demand"],
        "entities": {"entity_id": [entities // 2]},
    }
    out = call(f"{url}/get-online-features", body)
    bad = [r["statuses"] for r in out["results"] if r["statuses"] != ["PRESENT"]]
    if bad or len(out["results"]) != 7:
        raise SystemExit(f"unexpected response: {out}")


def load(
    url: str,
    refs: list[str] | None,
    entities: int,
    conc: int,
    seconds: float,
    pid: int,
    *,
    service: str | None = None,
) -> tuple[float, ...]:
    """req/s, p50 ms, p99 ms, failed or non-200 requests, server CPU µs per request
    (``refs=None``: the HTTP floor; ``service``: ask for that feature service instead)."""
    ask: dict[str, Any] = {"feature_service": service} if service else {"features": refs}
    prefix = json.dumps({**ask, "entities": {"entity_id": [0]}}).split("[0]")
    if shutil.which("wrk") is None:
        if refs is None and service is None:
            return (float("nan"),) * 3 + (0, float("nan"))
        start = cpu_seconds(pid)
        rps, *rest = _python_load(url, prefix[0] + "[", "]" + prefix[1], entities, conc, seconds)
        return (rps, *rest, (cpu_seconds(pid) - start) / (rps * seconds) * 1e6)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if refs is None and service is None:
            f.write(FLOOR_LUA)
        else:
            f.write(
                LUA % (json.dumps(prefix[0] + "["), json.dumps("]" + prefix[1]), entities, conc)
            )
    path = "/openapi.json" if refs is None and service is None else "/get-online-features"
    try:
        wrk = ["wrk", "-t1", f"-c{conc}", "-s", f.name, f"{url}{path}"]
        subprocess.run([*wrk, "-d1s"], capture_output=True, check=True)  # warm-up
        start = cpu_seconds(pid)
        out = subprocess.run([*wrk, f"-d{seconds:g}s"], capture_output=True, text=True, check=True)
        cpu = cpu_seconds(pid) - start
    finally:
        os.unlink(f.name)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    n, duration_us, p50, p99, errors = (int(x) for x in line.split()[1:])
    return n / (duration_us / 1e6), p50 / 1000, p99 / 1000, errors, cpu / n * 1e6


def _python_load(
    url: str, prefix: str, suffix: str, entities: int, conc: int, seconds: float
) -> tuple[float, ...]:
    """The fallback load generator, in a process of its own (this file, ``_loadgen``)."""
    args = [url, prefix, suffix, str(entities), str(conc), str(seconds)]
    out = subprocess.run(
        [sys.executable, __file__, "_loadgen", *args], capture_output=True, text=True, check=True
    )
    return tuple(float(x) for x in out.stdout.split())


def loadgen(url: str, prefix: str, suffix: str, entities: str, conc: str, seconds: str) -> None:
    """Keep-alive HTTP/1.1 clients on asyncio; prints req/s, p50 ms, p99 ms, errors."""
    import asyncio
    import random
    import re
    from urllib.parse import urlsplit

    where = urlsplit(url)
    host, port, n = where.hostname or "127.0.0.1", where.port or 80, int(entities)
    latencies: list[float] = []
    errors = 0
    clock = time.perf_counter

    async def client(deadline: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        rng = random.Random()
        while clock() < deadline:
            body = f"{prefix}{rng.randrange(n)}{suffix}".encode()
            head = (
                f"POST /get-online-features HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            start = clock()
            writer.write(head + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            size = re.search(rb"(?i)content-length: *(\d+)", answer)
            await reader.readexactly(int(size[1]) if size else 0)
            latencies.append(clock() - start)
            errors += not answer.startswith(b"HTTP/1.1 200")
        writer.close()

    async def main() -> float:
        started = clock()
        await asyncio.gather(*(client(started + float(seconds)) for _ in range(int(conc))))
        return clock() - started

    elapsed = asyncio.run(main())
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(len(latencies) / elapsed, p50 * 1000, p99 * 1000, errors)


def run(args: argparse.Namespace) -> list[Cell]:
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-server-") as tmp:
        for store in args.stores:
            root = Path(tmp) / store
            try:
                build_repo(root, store, args.entities)
            except Exception as exc:  # an unreachable Redis skips that store
                print(f"skipped {store}: {exc}", file=sys.stderr)
                continue
            try:
                for workers in args.workers:
                    with server(root, workers) as (url, pid):
                        check(url, args.entities)
                        for workload in WORKLOADS:
                            for conc in args.concurrency:
                                cell = Cell(store, workload, workers, conc)
                                cells.append(measure(cell, url, pid, args))
            finally:
                if store == "redis":
                    teardown(root)
    return cells


def measure(cell: Cell, url: str, pid: int, args: argparse.Namespace) -> Cell:
    for _ in range(args.runs):
        cell.load.append(os.getloadavg()[0])
        refs = WORKLOADS[cell.workload]
        rps, p50, p99, errors, cpu = load(
            url, refs, args.entities, cell.concurrency, args.duration, pid
        )
        cell.cpu_us.append(cpu)
        cell.rps.append(rps)
        cell.p50_ms.append(p50)
        cell.p99_ms.append(p99)
        cell.errors += int(errors)
    rps = statistics.median(cell.rps)
    print(
        f"  {cell.store} | {cell.workload} | workers {cell.workers} | c{cell.concurrency}: "
        f"{rps:,.0f} req/s, p99 "
        f"{statistics.median(cell.p99_ms):.2f} ms",
        file=sys.stderr,
        flush=True,
    )
    return cell


def verdict(cell: Cell) -> str:
    if cell.concurrency != 8 or cell.workload not in TARGETS:
        return "-"
    rps_min, p99_max = TARGETS[cell.workload]
    ok = statistics.median(cell.rps) >= rps_min and cell.errors == 0
    if p99_max is not None:
        ok = ok and statistics.median(cell.p99_ms) <= p99_max
    return "pass" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,redis", help="comma separated")
    parser.add_argument("--workers", default="1,2", help="comma separated worker counts")
    parser.add_argument("--concurrency", default="1,8", help="comma separated connections")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=1, help="runs per cell (medians shown)")
    parser.add_argument("--entities", type=int, default=10_000, help="entities materialized")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1,000 entities")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.entities, args.runs = 3.0, 1000, 1
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    args.workers = [int(w) for w in args.workers.split(",")]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    cells = run(args)
    tool = "wrk -t1" if shutil.which("wrk") else "python load generator"
    print(
        f"HTTP get-online-features, 1 random entity per request, {tool}, {args.runs} run(s) "
        f"x {args.duration:g} s per cell, {args.entities:,} entities; medians over runs; "
        f"{os.cpu_count()} CPUs"
    )
    header = [
        "store",
        "workload",
        "workers",
        "conc.",
        "req/s",
        "p50 ms",
        "p99 ms",
        "server CPU µs/req",
        "load",
        "errors",
        "target (c8)",
        "pass/fail",
    ]
    rows = []
    for c in cells:
        rps_min, p99_max = TARGETS.get(c.workload, (0, None))
        target = f"≥ {rps_min:,} req/s" + (f", p99 ≤ {p99_max:g} ms" if p99_max else "")
        target = target if c.concurrency == 8 and rps_min else "-"
        rows.append(
            [
                c.store,
                c.workload,
                c.workers,
                c.concurrency,
                f"{statistics.median(c.rps):,.0f}",
                f"{statistics.median(c.p50_ms):.2f}",
                f"{statistics.median(c.p99_ms):.2f}",
                f"{statistics.median(c.cpu_us):.0f}",
                f"{statistics.median(c.load):.1f}",
                c.errors,
                target,
                verdict(c),
            ]
        )
    print(markdown_table(header, rows))


if __name__ == "__main__":
    if sys.argv[1:2] == ["_loadgen"]:
        loadgen(*sys.argv[2:])
    else:
        main()
