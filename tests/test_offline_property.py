"""Property test: the DuckDB engine agrees with an obviously correct pure-Python join.

Random small datasets (few keys so they collide, minute-grid timestamps so event and created
times tie, null keys and created timestamps, TTL None/0/positive, the created-time filter) are
joined by every DuckDB strategy and compared row by row with :func:`reference`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitstop.offline import DuckDBEngine, PitPlan, SourceRef, ViewJoin

BASE = datetime(2024, 1, 1)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Row:
    """A source row; ``rid`` identifies it in the output."""

    k1: int | None
    k2: str | None
    event: int  # minutes after BASE
    created: int | None
    rid: int
    maybe: int | None  # a feature that is sometimes null


@dataclass(frozen=True)
class Query:
    k1: int | None
    k2: str | None
    t: int | None


keys1 = st.sampled_from([0, 1, 2, 3, 3, 2, None])
keys2 = st.sampled_from(["a", "b", "b", None])
ttls = st.sampled_from([None, 0, 1, 3, 7])


@st.composite
def source_rows(draw: st.DrawFn) -> list[Row]:
    n = draw(st.integers(0, 25))
    rows = []
    for rid in range(n):
        event = draw(st.integers(0, 20))
        created = draw(st.one_of(st.none(), st.integers(0, 25)))
        maybe = draw(st.one_of(st.none(), st.integers(-5, 5)))
        rows.append(Row(draw(keys1), draw(keys2), event, created, rid, maybe))
    return rows


@st.composite
def queries(draw: st.DrawFn) -> list[Query]:
    n = draw(st.integers(0, 30))
    ks = st.sampled_from([0, 1, 2, 3, 9, None])
    times = st.one_of(st.integers(-2, 27), st.integers(-2, 27), st.none())
    return [Query(draw(ks), draw(keys2), draw(times)) for _ in range(n)]


def reference(
    query: Query, rows: list[Row], compound: bool, ttl: int | None, created_filter: bool
) -> set[int | None]:
    """The set of row ids that may be returned (ties on event and created time are ambiguous)."""
    if query.t is None or query.k1 is None or (compound and query.k2 is None):
        return {None}
    candidates = []
    for row in rows:
        if row.k1 != query.k1 or (compound and row.k2 != query.k2):
            continue
        if row.event > query.t or (ttl and row.event < query.t - ttl):
            continue
        if created_filter and row.created is not None and row.created > query.t:
            continue
        candidates.append(row)
    if not candidates:
        return {None}

    def order(row: Row) -> tuple[int, float]:
        return (row.event, float("-inf") if row.created is None else row.created)

    best = max(map(order, candidates))
    return {row.rid for row in candidates if order(row) == best}


def _minutes(values: list[int | None]) -> pa.Array:
    return pa.array([None if v is None else BASE + v * MINUTE for v in values], pa.timestamp("us"))


def write_source(path: Path, rows: list[Row]) -> SourceRef:
    table = pa.table(
        {
            "k1": pa.array([r.k1 for r in rows], pa.int64()),
            "k2": pa.array([r.k2 for r in rows], pa.string()),
            "ts": _minutes([r.event for r in rows]),
            "created": _minutes([r.created for r in rows]),
            "rid": pa.array([r.rid for r in rows], pa.int64()),
            "maybe": pa.array([r.maybe for r in rows], pa.int64()),
        }
    )
    pq.write_table(table, path)
    return SourceRef(str(path), "parquet", "ts", "created", {}, path.stem)


ENGINES = {"hash": 10_000, "sort": 0, "split": 2}


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, DuckDBEngine]]:
    made = {name: DuckDBEngine(threads=2, hash_max_rows_per_key=n) for name, n in ENGINES.items()}
    yield made
    for eng in made.values():
        eng.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rows_a=source_rows(),
    rows_b=source_rows(),
    entity_rows=queries(),
    ttl_a=ttls,
    ttl_b=ttls,
    created_filter=st.booleans(),
)
def test_engine_matches_reference(
    engines: dict[str, DuckDBEngine],
    rows_a: list[Row],
    rows_b: list[Row],
    entity_rows: list[Query],
    ttl_a: int | None,
    ttl_b: int | None,
    created_filter: bool,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src_a = write_source(Path(tmp) / "a.parquet", rows_a)
        src_b = write_source(Path(tmp) / "b.parquet", rows_b)
        cols = (("rid", "{}_rid"), ("maybe", "{}_maybe"))

        def view(name: str, src: SourceRef, keys: tuple[str, ...], ttl: int | None) -> ViewJoin:
            named = tuple((c, o.format(name)) for c, o in cols)
            delta = None if ttl is None else ttl * MINUTE
            return ViewJoin(name, src, keys, keys, named, delta)

        plan = PitPlan(
            (view("a", src_a, ("k1",), ttl_a), view("b", src_b, ("k1", "k2"), ttl_b)),
            timestamp_column="t",
            filter_by_created_timestamp=created_filter,
        )
        entity = pa.table(
            {
                "k1": pa.array([q.k1 for q in entity_rows], pa.int64()),
                "k2": pa.array([q.k2 for q in entity_rows], pa.string()),
                "t": _minutes([q.t for q in entity_rows]),
                "idx": pa.array(range(len(entity_rows)), pa.int64()),
            }
        )
        for name, eng in engines.items():
            out = eng.historical(entity, plan).to_arrow()
            assert out.column("idx").to_pylist() == list(range(len(entity_rows))), name
            for label, rows, compound, ttl in (
                ("a", rows_a, False, ttl_a),
                ("b", rows_b, True, ttl_b),
            ):
                got = out.column(f"{label}_rid").to_pylist()
                maybe = out.column(f"{label}_maybe").to_pylist()
                by_rid = {r.rid: r.maybe for r in rows}
                for i, query in enumerate(entity_rows):
                    allowed = reference(query, rows, compound, ttl, created_filter)
                    assert got[i] in allowed, (name, label, i, query, got[i], allowed)
                    # all features of a row come from the same source row
                    assert maybe[i] == (None if got[i] is None else by_rid[got[i]]), name
