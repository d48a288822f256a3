"""Catalog latency: search over a registry of 10,000 features, on SQLite and PostgreSQL.

A registry is filled with ``--features`` features in views of 10 (plus their entities,
sources and a feature service per 20 views), with names, descriptions, tags and owners drawn
from a fixed vocabulary, so queries hit every tier: exact names, name prefixes, words of
descriptions/tags/owners/dtypes, two-word queries, typos and filtered queries. Each query
kind is timed ``--iterations`` times per round after a warm-up (query text varies per call),
the kinds taking turns, ``--rounds`` times; the table shows the median over rounds of p50 and
p99 per kind and over all calls. PostgreSQL runs in a schema of its own
(dropped at the end) and is skipped with a note when unreachable.

    .venv/bin/python benchmarks/catalog.py                     # 10k features, SQLite and PG
    .venv/bin/python benchmarks/catalog.py --quick             # a few seconds (smoke test)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from _util import markdown_table, parse_count, percentiles_us

POSTGRES_URL = os.environ.get("PITSTOP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
TARGET_P99_MS = 20.0
TARGET_LINEAGE_MS = 50.0

SUBJECTS = [
    "user",
    "merchant",
    "driver",
    "order",
    "session",
    "device",
    "account",
    "card",
    "store",
    "product",
    "campaign",
    "region",
    "courier",
    "basket",
    "payment",
]
MEASURES = ["count", "sum", "avg", "max", "min", "ratio", "rate", "share", "stddev", "median"]
THINGS = [
    "purchases",
    "refunds",
    "clicks",
    "logins",
    "trips",
    "ratings",
    "complaints",
    "discounts",
    "deliveries",
    "cancellations",
    "searches",
    "views",
    "returns",
    "transfers",
    "declines",
]
WINDOWS = ["1h", "6h", "1d", "7d", "30d", "90d"]
TEAMS = ["growth", "risk", "fraud", "pricing", "logistics", "marketing", "search", "payments"]
DTYPES = ["Int64", "Float32", "Float64", "String", "Bool", "Int32"]  # fmt: skip


def definitions(features: int, seed: int = 7) -> list[Any]:
    """Entities, sources, views of 10 features each, and services over them."""
    from pitstop import Entity, FeatureService, FeatureView, Field, FileSource
    from pitstop.types import parse_dtype

    rng = random.Random(seed)
    entities = {s: Entity(name=f"{s}_id", description=f"A {s}") for s in SUBJECTS}
    views = []
    for i in range(features // 10):
        subject, team = SUBJECTS[i % len(SUBJECTS)], TEAMS[i % len(TEAMS)]
        thing = THINGS[(i // len(SUBJECTS)) % len(THINGS)]
        name = f"{subject}_{thing}_{i}"
        fields = [
            Field(name=f"{rng.choice(MEASURES)}_{thing}_{WINDOWS[j % len(WINDOWS)]}_{j}",
                  dtype=parse_dtype(rng.choice(DTYPES), what="bench"),
                  description=f"{rng.choice(MEASURES)} of {thing} per {subject}")
            for j in range(10)
        ]  # fmt: skip
        source = FileSource(name=f"{name}_source", path=f"data/{name}.parquet",
                            timestamp_field="event_timestamp")  # fmt: skip
        views.append(FeatureView(
            name=name, entities=[entities[subject]], ttl=timedelta(days=1), schema=fields,
            source=source, description=f"{thing.capitalize()} of each {subject}, by window",
            tags={"team": team, "tier": rng.choice(["gold", "silver", "bronze"])},
            owner=f"{team}@example.com",
        ))  # fmt: skip
    services = [
        FeatureService(name=f"model_{k}", features=views[k * 20 : (k + 1) * 20],
                       owner=f"{TEAMS[k % len(TEAMS)]}@example.com")
        for k in range(len(views) // 20)
    ]  # fmt: skip
    from pitstop.definitions import Model, SavedDataset, SavedDatasetFileStorage

    datasets = [
        SavedDataset(name=f"train_{svc.name}", feature_service=svc.name, join_keys=["id"],
                     features=[f"{views[0].name}:{views[0].features[0].name}"],
                     storage=SavedDatasetFileStorage(path=f"data/train_{svc.name}.parquet"))
        for svc in services
    ]  # fmt: skip
    models = [Model(name=f"model_{svc.name}", feature_service=svc.name,
                    training_datasets=[f"train_{svc.name}"]) for svc in services]  # fmt: skip
    return [*entities.values(), *views, *services, *datasets, *models]


def query_kinds(
    names: list[str], features: list[str]
) -> dict[str, Callable[[random.Random], dict[str, Any]]]:
    """Query makers by kind; each returns search() keyword arguments."""
    from pitstop import FeatureView, Field

    def typo(word: str, rng: random.Random) -> str:
        i = rng.randrange(1, len(word) - 1)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap two neighbours

    return {
        "exact view name": lambda r: {"query": r.choice(names)},
        "exact feature name": lambda r: {"query": r.choice(features)},
        "name prefix": lambda r: {"query": r.choice(names)[: r.randint(3, 8)]},
        "one word": lambda r: {"query": r.choice(THINGS + SUBJECTS + TEAMS)},
        "two words": lambda r: {"query": f"{r.choice(MEASURES)} {r.choice(THINGS)}"},
        "dtype, features only": lambda r: {"query": r.choice(DTYPES), "kinds": [Field]},
        "typo": lambda r: {"query": typo(r.choice(THINGS), r)},
        "word + tag + kind": lambda r: {"query": r.choice(THINGS), "kinds": [FeatureView],
                                        "tags": {"team": r.choice(TEAMS)}},
    }  # fmt: skip


def _median(stats: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p for p, _ in stats), statistics.median(p for _, p in stats)


def run(url: str, label: str, features: int, iterations: int, rounds: int) -> list[list[object]]:
    from pitstop.catalog import Catalog
    from pitstop.registry import Registry

    objects = definitions(features)
    registry = Registry(url, f"bench_{uuid.uuid4().hex[:8]}")
    catalog = Catalog(registry)
    started = time.perf_counter()
    catalog.apply(objects[: len(objects) // 2])  # two registry versions
    catalog.apply(objects)
    applied = time.perf_counter() - started
    snapshot = catalog.snapshot(fresh=True)
    names = sorted(snapshot.feature_views)
    feats = sorted({f.name for v in snapshot.feature_views.values() for f in v.features})
    count = sum(len(v.features) for v in snapshot.feature_views.values())
    print(f"{label}: {count:,} features in {len(names):,} views, applied in {applied:.1f} s",
          flush=True)  # fmt: skip
    rng = random.Random(1)
    catalog.search("warm up")
    makers = query_kinds(names, feats)
    for make in makers.values():
        for _ in range(20):
            catalog.search(**make(rng))
    per_kind: dict[str, list[tuple[float, float]]] = {kind: [] for kind in makers}
    overall: list[tuple[float, float]] = []
    hits = dict.fromkeys(makers, 0)
    for _ in range(rounds):  # kinds take turns, so that a busy moment hits all of them
        everything: list[int] = []
        for kind, make in makers.items():
            samples = []
            for _ in range(iterations):
                args = make(rng)
                t0 = time.perf_counter_ns()
                found = catalog.search(**args)
                samples.append(time.perf_counter_ns() - t0)
                hits[kind] += len(found)
            everything += samples
            per_kind[kind].append(percentiles_us(samples))
        overall.append(percentiles_us(everything))
    rows = []
    for kind, stats in per_kind.items():
        p50, p99 = _median(stats)
        rows.append([label, kind, f"{hits[kind] / iterations / rounds:.1f}", f"{p50 / 1000:.2f}",
                     f"{p99 / 1000:.2f}"])  # fmt: skip
    p50, p99 = _median(overall)
    verdict = "ok" if p99 / 1000 <= TARGET_P99_MS else "MISSED"
    rows.append([label, "**all queries**", "", f"{p50 / 1000:.2f}",
                 f"**{p99 / 1000:.2f}** ({verdict}, target ≤ {TARGET_P99_MS:g})"])  # fmt: skip
    rows += lineage_rows(catalog, label, iterations, rounds)
    catalog.teardown()
    registry.close()
    return rows


def lineage_rows(catalog: Any, label: str, iterations: int, rounds: int) -> list[list[object]]:
    """Lineage of random objects now, and at the previous registry version (read again)."""
    from pitstop.catalog.kinds import parse_kind

    snapshot = catalog.snapshot(fresh=True)
    objects = [(parse_kind(kind), name) for kind, by in snapshot.objects.items() for name in by]
    rng = random.Random(2)
    catalog.lineage(objects[0][1], objects[0][0])
    stats: list[tuple[float, float]] = []
    for _ in range(rounds):
        samples = []
        for _ in range(iterations):
            cls, name = rng.choice(objects)
            t0 = time.perf_counter_ns()
            catalog.lineage(name, cls, fresh=True)
            samples.append(time.perf_counter_ns() - t0)
        stats.append(percentiles_us(samples))
    p50, p99 = _median(stats)
    verdict = "ok" if p99 / 1000 <= TARGET_LINEAGE_MS else "MISSED"
    rows: list[list[object]] = [[label, "lineage, current version", "", f"{p50 / 1000:.2f}",
                                 f"**{p99 / 1000:.2f}** ({verdict}, target ≤ "
                                 f"{TARGET_LINEAGE_MS:g})"]]  # fmt: skip
    old = catalog.serial() - 1
    samples = []
    for _ in range(max(5, iterations // 20)):
        cls, name = rng.choice(objects)
        catalog._graphs.clear()  # a version not seen before: read and decoded again
        t0 = time.perf_counter_ns()
        with contextlib.suppress(LookupError):  # an object the older version did not have
            catalog.lineage(name, cls, version=old)
        samples.append(time.perf_counter_ns() - t0)
    p50, p99 = percentiles_us(samples)
    rows.append([label, f"lineage at version {old} (uncached)", "", f"{p50 / 1000:.2f}",
                 f"{p99 / 1000:.2f}"])  # fmt: skip
    return rows


def _postgres_schema() -> tuple[str, Callable[[], None]] | None:
    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL skipped: {exc}".splitlines()[0], file=sys.stderr)
        return None
    schema = f"pitstop_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()

    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", default="10k", help="features in the registry")
    parser.add_argument("--iterations", type=int, default=200, help="calls per kind per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are shown)")
    parser.add_argument("--registries", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="1k features, 30 calls")
    args = parser.parse_args()
    features, iterations, rounds = parse_count(args.features), args.iterations, args.rounds
    if args.quick:
        features, iterations, rounds = 1000, 30, 1
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.registries:
            rows += run(f"sqlite:///{Path(tmp) / 'registry.db'}", "SQLite", features, iterations,
                        rounds)  # fmt: skip
        pg = _postgres_schema() if "postgres" in args.registries else None
        if pg is not None:
            try:
                rows += run(pg[0], "PostgreSQL", features, iterations, rounds)
            finally:
                pg[1]()
    header = ["registry", "search", "hits", "p50 ms", "p99 ms"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
