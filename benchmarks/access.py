"""What access control costs an online read: in-process and through the feature server's app.

A repo ``pitstop init`` creates (SQLite registry and online store) is applied and
materialized; then one online read (1 entity x 3 features) is timed without access policies
and with them (a role and a permission that grant the caller ``read_online``), the two taking
turns block by block, ``--rounds`` times; the table shows the median p50 and the overhead.
The server case calls the ASGI app directly (no sockets), with an API key in the header, so
the figure is the server's own CPU time per request.

    .venv/bin/python benchmarks/access.py
    .venv/bin/python benchmarks/access.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _util import markdown_table, percentiles_us

FEATURES = ["user_features:total_purchases", "user_features:avg_purchase_amount",
            "user_features:tenure_months"]  # fmt: skip
TARGET_US = 10.0


def _store(root: Path, keys: bool) -> Any:
    import yaml

    from pitstop import FeatureStore
    from pitstop.repo import load_repo
    from pitstop.templates.churn import create_repo

    repo = create_repo(root, project="bench_access", users=200)
    if keys:
        config = yaml.safe_load((repo / "feature_store.yaml").read_text())
        (repo / "keys").write_text("bench-key:rw\n")
        config["feature_server"] = {"auth": {"type": "api_key", "keys_file": "keys"}}
        (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    store = FeatureStore(repo_path=repo)
    store.apply(list(load_repo(repo, project=store.project).all()), partial=False)
    now = datetime.now(UTC)
    store.materialize(now - timedelta(days=3650), now)
    return store


def _policy(store: Any, principal: str) -> list[Any]:
    from pitstop.access import ACTIONS
    from pitstop.definitions import Permission, Role

    return [Role(name="bench", principals=[principal]),
            Permission(name="bench", roles=["bench"], actions=list(ACTIONS))]  # fmt: skip


def _time(call: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t0)
    return percentiles_us(samples)[0]


def _compare(call: Callable[[], object], on: Callable[[], None], off: Callable[[], None],
             iterations: int, rounds: int) -> tuple[float, float]:  # fmt: skip
    without: list[float] = []
    with_: list[float] = []
    for i in range(rounds):  # the order alternates, so that a drift favours neither
        for setup, out in ((off, without), (on, with_))[:: 1 if i % 2 == 0 else -1]:
            setup()
            for _ in range(50):
                call()
            out.append(_time(call, iterations))
    return statistics.median(without), statistics.median(with_)


def in_process(iterations: int, rounds: int) -> list[list[object]]:
    from pitstop.access import policy_of
    from pitstop.registry.audit import Actor, acting_as

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp) / "repo", keys=False)
        objects = _policy(store, "bench-user")

        def on() -> None:
            store.apply(objects)
            store.refresh_registry()

        def off() -> None:
            store.apply([], objects)
            store.refresh_registry()

        def read() -> object:
            return store.get_online_features(FEATURES, [{"user_id": 1001}]).to_dict()

        with acting_as(Actor("bench-user", "bench")):
            without, with_ = _compare(read, on, off, iterations, rounds)
            on()
            read()
            retriever = store._retriever
            snapshot = store.registry.snapshot()
            compiled = retriever.compiled(snapshot, FEATURES, False)
            policy = policy_of(snapshot)
            check = _time(lambda: retriever._authorize(policy, snapshot, compiled), iterations)
        store.close()
    return [["in-process get_online_features", f"{without:.1f}", f"{with_:.1f}",
             _verdict(with_ - without)],
            ["the check alone (cached per plan and caller)", "", "", f"{check:.2f}"]]  # fmt: skip


def through_server(iterations: int, rounds: int) -> list[object]:
    import hashlib

    import orjson

    from pitstop.registry.audit import Actor, acting_as
    from pitstop.server import create_app

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp) / "repo", keys=True)
        principal = "api-key:" + hashlib.sha256(b"bench-key").hexdigest()[:12]
        objects = _policy(store, principal)
        app = create_app(store, registry_ttl_sec=60)  # refreshed by on() and off()
        body = orjson.dumps({"features": FEATURES, "entities": {"user_id": [1001]}})
        scope = {"type": "http", "method": "POST", "path": "/get-online-features",
                 "headers": [(b"authorization", b"Bearer bench-key")],
                 "client": ("127.0.0.1", 5000), "query_string": b""}  # fmt: skip
        loop = asyncio.new_event_loop()
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        def request() -> object:
            return loop.run_until_complete(app(scope, receive, send))

        def on() -> None:
            with acting_as(Actor(principal, "bench")):
                store.apply(objects)
            store.refresh_registry()

        def off() -> None:
            with acting_as(Actor(principal, "bench")):
                store.apply([], objects)
            store.refresh_registry()

        without, with_ = _compare(request, on, off, iterations, rounds)
        assert set(statuses) == {200}, set(statuses)
        loop.close()
        store.close()
    return ["server app, POST /get-online-features", f"{without:.1f}", f"{with_:.1f}",
            _verdict(with_ - without)]  # fmt: skip


def _verdict(extra: float) -> str:
    return f"**{extra:+.1f}** ({'ok' if extra <= TARGET_US else 'MISSED'}, target ≤ {TARGET_US:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=3000, help="timed calls per block")
    parser.add_argument("--rounds", type=int, default=5, help="blocks each way (medians shown)")
    parser.add_argument("--quick", action="store_true", help="a few seconds")
    args = parser.parse_args()
    iterations, rounds = (300, 2) if args.quick else (args.iterations, args.rounds)
    rows = [*in_process(iterations, rounds), through_server(iterations, rounds)]
    print(markdown_table(["online read (1 entity x 3 features)", "no policy, p50 µs",
                          "with policy, p50 µs", "authorization, µs"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
