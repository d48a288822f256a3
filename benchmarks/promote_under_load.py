"""Promotions and rollbacks under load: ``pitstop serve`` answers ``/get-online-features``
(``wrk``) while another process changes which version of the view is served.

A feature repo with one view ``users`` in two versions (they differ in TTL and description,
not in what they read) and two feature services (one pinned to ``users@v1``) is written to a
temporary directory, applied and materialized (``--entities`` entities). ``pitstop serve``
runs with ``--registry-ttl-sec 0.05``, so every change is served within 50 ms. ``wrk``
(2 threads, ``--connections``) sends four kinds of request round robin — unpinned features,
``users@v1:a`` + ``users@v2:b``, each service — for one random entity each, and checks every
answer in Lua: HTTP 200, the entity's values, every status ``PRESENT``. Each run is done
twice: without registry changes (the baseline), and while a separate process promotes and
rolls back ``users`` every ``--every`` seconds (``promote 1, promote 2, rollback 1,
rollback 2``, round and round). ``wrk`` is required (``apt-get install -y wrk``).

    .venv/bin/python benchmarks/promote_under_load.py                 # 30 s runs, 3 each
    .venv/bin/python benchmarks/promote_under_load.py --duration 5 --runs 1
    .venv/bin/python benchmarks/promote_under_load.py --registry postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _util import markdown_table
from server import call, server

#: request bodies, without the entity
REQUESTS: list[dict[str, Any]] = [
    {"features": ["users:a", "users:b"]},
    {"features": ["users@v1:a", "users@v2:b"], "full_feature_names": True},
    {"feature_service": "pinned"},
    {"feature_service": "plain"},
]

LUA = """
local bodies, n = %s, %d
local headers = {["Content-Type"] = "application/json"}
local counter = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) wrong, sample = 0, "" end
request = function()
  counter = counter + 1
  local body = string.format(bodies[counter %% #bodies + 1], math.random(1, n))
  return wrk.format("POST", "/get-online-features", headers, body)
end
-- the answer names the entity (its join key column comes first) and the features: a = 10 k,
-- b = k / 2, each PRESENT
response = function(status, headers, body)
  if status ~= 200 then return end  -- counted by wrk as a non-2xx answer
  local k = tonumber(body:match('"values":%%[(%%d+)%%]'))
  local ok = k ~= nil and body:find('"values":[' .. (k * 10) .. ']', 1, true) ~= nil
  if ok and (body:find('"b"', 1, true) or body:find('__b"', 1, true)) then
    ok = body:find(string.format('"values":[%%.1f]', k * 0.5), 1, true) ~= nil
  end
  ok = ok and not (body:find("NOT_FOUND", 1, true) or body:find("OUTSIDE_MAX_AGE", 1, true)
                   or body:find("NULL_VALUE", 1, true))
  if not ok then
    wrong = wrong + 1
    if sample == "" then sample = body:sub(1, 300) end
  end
end
done = function(summary, latency, requests)
  local bad, sample = 0, ""
  for _, t in ipairs(threads) do
    bad = bad + t:get("wrong")
    if sample == "" then sample = t:get("sample") end
  end
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout, bad))
  if sample ~= "" then io.write("WRONG " .. sample .. "\\n") end
end
"""


@dataclass
class Row:
    case: str
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    wrong: int = 0
    changes: int = 0


def build_repo(root: Path, registry: str | None, entities: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from pitstop import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource
    from pitstop.types import Float64, Int64

    (root / "data").mkdir(parents=True)
    config = {
        "project": f"bench_promote_{uuid.uuid4().hex[:8]}",
        "registry": {"registry_type": "sql", "path": registry} if registry else "data/registry.db",
        "online_store": {"type": "sqlite", "path": "data/online.db"},
    }
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config))
    ids = list(range(1, entities + 1))
    ts = pa.array([datetime.now(UTC) - timedelta(hours=1)] * entities, pa.timestamp("us", "UTC"))
    table = pa.table({"user_id": ids, "ts": ts, "a": [i * 10 for i in ids],
                      "b": [i * 0.5 for i in ids]})  # fmt: skip
    pq.write_table(table, root / "data/users.parquet")
    user = Entity(name="user", join_keys=["user_id"])
    source = FileSource(path="data/users.parquet", timestamp_field="ts")

    def users(version: int) -> FeatureView:
        return FeatureView(name="users", entities=[user], ttl=timedelta(days=version),
                           schema=[Field(name="a", dtype=Int64), Field(name="b", dtype=Float64)],
                           source=source, description=f"v{version}")  # fmt: skip

    with FeatureStore(repo_path=root) as store:
        store.apply([user, users(1)])
        store.apply([user, users(2)])
        store.apply(
            [
                FeatureService(name="plain", features=[users(2)]),
                FeatureService(name="pinned", features=[users(1).with_version(1)[["a"]]]),
            ]
        )
        store.materialize(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))


def flip(root: str, seconds: str, every: str) -> None:
    """Promote and roll back ``users`` until ``seconds`` have passed; print how many times."""
    from pitstop import FeatureStore

    with FeatureStore(repo_path=root) as store:
        deadline, done = time.monotonic() + float(seconds), 0
        while time.monotonic() < deadline:
            step = done % 4
            if step < 2:
                store.promote("users", 1 if step == 0 else 2)
            else:
                store.rollback("users", 1 if step == 2 else 2)
            done += 1
            time.sleep(float(every))
    print(done)


def run_wrk(url: str, script: str, args: argparse.Namespace, root: Path, changes: bool) -> Row:
    row = Row("promote/rollback" if changes else "no changes")
    cmd = ["wrk", "-t2", f"-c{args.connections}", "-s", script, f"{url}/get-online-features"]
    subprocess.run([*cmd, "-d1s"], capture_output=True, check=True)  # warm-up
    flipper = None
    if changes:
        flipper = subprocess.Popen(
            [sys.executable, __file__, "_flip", str(root), str(args.duration), str(args.every)],
            stdout=subprocess.PIPE,
            text=True,
        )
    out = subprocess.run([*cmd, f"-d{args.duration:g}s"], capture_output=True, text=True,
                         check=True)  # fmt: skip
    if flipper is not None:
        flipped, _ = flipper.communicate(timeout=120)
        if flipper.returncode != 0:
            raise SystemExit("the process changing the registry failed")
        row.changes = int(flipped)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    n, duration_us, p50, p99, non_2xx, sockets, wrong = (int(x) for x in line.split()[1:])
    for ln in out.stdout.splitlines():
        if ln.startswith("WRONG"):
            print(f"  a wrong answer: {ln[6:]}", file=sys.stderr)
    row.rps.append(n / (duration_us / 1e6))
    row.p50_ms.append(p50 / 1000)
    row.p99_ms.append(p99 / 1000)
    row.requests, row.non_2xx, row.socket_errors, row.wrong = n, non_2xx, sockets, wrong
    return row


def lua(entities: int) -> str:
    bodies = [json.dumps({**body, "entities": {"user_id": [0]}}).replace("[0]", "[%d]")
              for body in REQUESTS]  # fmt: skip
    return LUA % ("{" + ", ".join(json.dumps(b) for b in bodies) + "}", entities)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (medians shown)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--entities", type=int, default=1000, help="entities materialized")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between changes")
    parser.add_argument("--registry", help="a postgresql:// registry (default: a SQLite file)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    rows = {case: Row(case) for case in ("no changes", "promote/rollback")}
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-promote-") as tmp:
        root = Path(tmp) / "repo"
        build_repo(root, args.registry, args.entities)
        script = Path(tmp) / "check.lua"
        script.write_text(lua(args.entities))
        with server(root, 1, registry_ttl=0.05) as (url, _):
            call(f"{url}/health")
            for _ in range(args.runs):
                for changes in (False, True):
                    got = run_wrk(url, str(script), args, root, changes)
                    total = rows[got.case]
                    total.rps += got.rps
                    total.p50_ms += got.p50_ms
                    total.p99_ms += got.p99_ms
                    for name in ("requests", "non_2xx", "socket_errors", "wrong", "changes"):
                        setattr(total, name, getattr(total, name) + getattr(got, name))
                    print(f"  {got.case}: {got.requests:,} requests, {got.non_2xx} non-2xx, "
                          f"{got.wrong} wrong, {got.changes} changes", file=sys.stderr)  # fmt: skip
    where = "PostgreSQL" if args.registry else "SQLite"
    print(
        f"get-online-features while the served version changes: wrk -t2 -c{args.connections}, "
        f"{args.runs} run(s) x {args.duration:g} s per case, {where} registry, SQLite online "
        f"store, {args.entities:,} entities, a change every {args.every:g} s; req/s and "
        f"latencies are medians over runs, counts are totals; {os.cpu_count()} CPUs"
    )
    header = ["case", "requests", "non-2xx", "socket errors", "wrong values", "registry changes",
              "req/s", "p50 ms", "p99 ms"]  # fmt: skip
    table = [
        [r.case, f"{r.requests:,}", r.non_2xx, r.socket_errors, r.wrong, r.changes,
         f"{statistics.median(r.rps):,.0f}", f"{statistics.median(r.p50_ms):.2f}",
         f"{statistics.median(r.p99_ms):.2f}"]
        for r in rows.values()
    ]  # fmt: skip
    print(markdown_table(header, table))
    if any(r.non_2xx or r.socket_errors or r.wrong for r in rows.values()):
        raise SystemExit("some requests failed or were answered wrongly")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_flip"]:  # the process that changes the registry
        flip(*sys.argv[2:])
    elif sys.argv[1:2] == ["_repo"]:  # ROOT REGISTRY|- ENTITIES: the repo, for tests too
        build_repo(Path(sys.argv[2]), None if sys.argv[3] == "-" else sys.argv[3],
                   int(sys.argv[4]))  # fmt: skip
    else:
        main()
