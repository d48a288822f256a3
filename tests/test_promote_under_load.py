"""Promotions and rollbacks while ``pitstop serve`` answers ``/get-online-features`` under load:
no request may fail or see a wrong value, on every registry backend.

The repo is the one ``benchmarks/promote_under_load.py`` builds: a view ``users`` in two
versions that differ in TTL only, a feature service of it and one pinned to ``users@v1``. The
server runs in a subprocess (refreshing its registry every 50 ms); that script's ``_flip``
promotes and rolls back ``users`` every 0.1 s in another process; four client threads send
requests — unpinned, pinned to each version, through each service — and check every answer.
The script itself does the same with ``wrk`` for 30 s.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pitstop import FeatureStore
from test_server import start_cli, stop

SECONDS = 4.0
ENTITIES = 50
#: builds the repo (``_repo``) and changes the registry (``_flip``) for the test as for wrk
BENCH = Path(__file__).parent.parent / "benchmarks" / "promote_under_load.py"


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          timeout=timeout, check=True)  # fmt: skip


#: request body -> the values every answer must hold (after the join key column)
REQUESTS: list[tuple[dict[str, Any], Any]] = [
    ({"features": ["users:a", "users:b"]}, lambda k: [k * 10, k * 0.5]),
    ({"features": ["users@v1:a", "users@v2:b"], "full_feature_names": True},
     lambda k: [k * 10, k * 0.5]),
    ({"feature_service": "pinned"}, lambda k: [k * 10]),
    ({"feature_service": "plain"}, lambda k: [k * 10, k * 0.5]),
]  # fmt: skip


def client(url: str, stop_at: threading.Event, seed: int, out: dict[str, Any]) -> None:
    """Send the requests round robin until ``stop_at``; count answers, keep every failure."""
    n = seed
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop_at.is_set():
            body, expected = REQUESTS[n % len(REQUESTS)]
            key = n % ENTITIES + 1
            n += 1
            try:
                r = http.post("/get-online-features", json={**body, "entities": {"user_id": [key]}})
            except httpx.HTTPError as exc:
                out["failures"].append(f"{body}: {type(exc).__name__}: {exc}")
                continue
            out["requests"] += 1
            if r.status_code != 200:
                out["failures"].append(f"{body}: HTTP {r.status_code} {r.text[:300]}")
                continue
            results = r.json()["results"]
            values = [res["values"][0] for res in results[1:]]
            statuses = {s for res in results for s in res["statuses"]}
            if values != expected(key) or statuses != {"PRESENT"}:
                out["failures"].append(f"{body} for {key}: {values} {statuses}")


@pytest.fixture
def served(tmp_path: Path, registry_url: str) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "repo"
    postgres = registry_url.startswith("postgresql")
    bench("_repo", str(root), registry_url if postgres else "-", str(ENTITIES))
    with (tmp_path / "server.log").open("wb") as log:
        proc, url = start_cli(root, "--registry-ttl-sec", "0.05", log=log)
        yield root, url
        stop(proc)


def test_promotions_and_rollbacks_lose_no_request(served: tuple[Path, str]) -> None:
    root, url = served
    flip = [sys.executable, str(BENCH), "_flip", str(root), str(SECONDS), "0.1"]
    flipper = subprocess.Popen(flip, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stop_at = threading.Event()
    outs = [{"requests": 0, "failures": []} for _ in range(4)]
    threads = [threading.Thread(target=client, args=(url, stop_at, i, out))
               for i, out in enumerate(outs)]  # fmt: skip
    for t in threads:
        t.start()
    try:
        flipped, err = flipper.communicate(timeout=SECONDS + 60)
    finally:
        time.sleep(0.2)  # requests after the last change, too
        stop_at.set()
        for t in threads:
            t.join(30)
    assert flipper.returncode == 0, err.decode()
    failures = [f for out in outs for f in out["failures"]]
    requests = sum(out["requests"] for out in outs)
    assert not failures, f"{len(failures)} of {requests} requests failed: {failures[:5]}"
    assert int(flipped) >= 8  # promotions and rollbacks, each served while requests ran
    assert requests >= 200
    with FeatureStore(repo_path=root) as store:
        history = store.history("users")
    assert len(history) >= 2 + int(flipped) // 4  # every rollback wrote a version
    assert [r.status for r in history].count("served") == 1
