"""Property tests: every engine agrees with the reference engine, which agrees with the rules.

Random small datasets (few keys so they collide, minute-grid timestamps so event and created
times tie, null keys and created timestamps, TTL None/0/positive, the created-time filter) are
joined by the reference engine, checked row by row against :func:`rules` (the rules of
DESIGN.md §3 in a few lines), and by every other engine configuration (the DuckDB engine under
each join strategy, and the Spark engine), whose rows must rank equal to the reference engine's
(rows equal on event and created time are interchangeable). Windowed aggregations are compared
the same way. Each engine runs as many examples as its harness says (Spark's cost seconds).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitstop.offline import OfflineEngine, PitPlan, SourceRef, ViewJoin
from pitstop.offline.pit import AggregateJoin

from .conftest import CONFIGS, ENGINES, Harness
from .reference import ReferenceEngine

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


def rules(
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


OTHERS = [h for h in CONFIGS if h.name != "reference"] + [
    h for h in ENGINES if h.name not in {c.name for c in CONFIGS}
]
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@pytest.fixture(scope="module", params=OTHERS, ids=str)
def other(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OfflineEngine, settings]]:
    """Each engine configuration but the reference, and the settings its examples run with
    (:attr:`Harness.property_examples` of them)."""
    harness: Harness = request.param
    made = harness.engine(tmp_path_factory.mktemp("engine"))
    yield made, settings(SETTINGS, max_examples=harness.property_examples)
    made.close()


def _plan(
    src_a: SourceRef, src_b: SourceRef, ttl_a: int | None, ttl_b: int | None, created: bool
) -> PitPlan:
    cols = (("rid", "{}_rid"), ("maybe", "{}_maybe"))

    def view(name: str, src: SourceRef, keys: tuple[str, ...], ttl: int | None) -> ViewJoin:
        named = tuple((c, o.format(name)) for c, o in cols)
        delta = None if ttl is None else ttl * MINUTE
        return ViewJoin(name, src, keys, keys, named, delta)

    return PitPlan(
        (view("a", src_a, ("k1",), ttl_a), view("b", src_b, ("k1", "k2"), ttl_b)),
        timestamp_column="t",
        filter_by_created_timestamp=created,
    )


def _entity(entity_rows: list[Query]) -> pa.Table:
    return pa.table(
        {
            "k1": pa.array([q.k1 for q in entity_rows], pa.int64()),
            "k2": pa.array([q.k2 for q in entity_rows], pa.string()),
            "t": _minutes([q.t for q in entity_rows]),
            "idx": pa.array(range(len(entity_rows)), pa.int64()),
        }
    )


def _joined(
    engines: list[OfflineEngine],
    rows_a: list[Row],
    rows_b: list[Row],
    entity_rows: list[Query],
    ttl_a: int | None,
    ttl_b: int | None,
    created_filter: bool,
) -> list[pa.Table]:
    """The join of sources ``a`` (key ``k1``) and ``b`` (keys ``k1, k2``) by each engine."""
    with tempfile.TemporaryDirectory() as tmp:
        src_a = write_source(Path(tmp) / "a.parquet", rows_a)
        src_b = write_source(Path(tmp) / "b.parquet", rows_b)
        plan = _plan(src_a, src_b, ttl_a, ttl_b, created_filter)
        entity = _entity(entity_rows)
        return [engine.historical(entity, plan).to_arrow() for engine in engines]


JOIN_ARGS = {
    "rows_a": source_rows(),
    "rows_b": source_rows(),
    "entity_rows": queries(),
    "ttl_a": ttls,
    "ttl_b": ttls,
    "created_filter": st.booleans(),
}


@SETTINGS
@given(**JOIN_ARGS)
def test_reference_engine_follows_the_rules(
    rows_a: list[Row],
    rows_b: list[Row],
    entity_rows: list[Query],
    ttl_a: int | None,
    ttl_b: int | None,
    created_filter: bool,
) -> None:
    (out,) = _joined([ReferenceEngine()], rows_a, rows_b, entity_rows, ttl_a, ttl_b, created_filter)
    assert out.column("idx").to_pylist() == list(range(len(entity_rows)))
    for label, rows, compound, ttl in (("a", rows_a, False, ttl_a), ("b", rows_b, True, ttl_b)):
        got = out.column(f"{label}_rid").to_pylist()
        maybe = out.column(f"{label}_maybe").to_pylist()
        by_rid = {r.rid: r.maybe for r in rows}
        for i, query in enumerate(entity_rows):
            allowed = rules(query, rows, compound, ttl, created_filter)
            assert got[i] in allowed, (label, i, query, got[i], allowed)
            # all features of a row come from the same source row
            assert maybe[i] == (None if got[i] is None else by_rid[got[i]])


def test_engines_match_the_reference_engine(other: tuple[OfflineEngine, settings]) -> None:
    engine, its_settings = other

    @its_settings
    @given(**JOIN_ARGS)
    def check(**example: Any) -> None:
        _matches_reference(engine, **example)

    check()


def _matches_reference(
    engine: OfflineEngine,
    rows_a: list[Row],
    rows_b: list[Row],
    entity_rows: list[Query],
    ttl_a: int | None,
    ttl_b: int | None,
    created_filter: bool,
) -> None:
    engines = [ReferenceEngine(), engine]
    want, out = _joined(engines, rows_a, rows_b, entity_rows, ttl_a, ttl_b, created_filter)
    assert out.column_names == want.column_names
    assert out.column("idx").to_pylist() == list(range(len(entity_rows)))
    for label, rows in (("a", rows_a), ("b", rows_b)):
        rank = {r.rid: (r.event, -1 if r.created is None else r.created) for r in rows}
        got = out.column(f"{label}_rid").to_pylist()
        ref = want.column(f"{label}_rid").to_pylist()
        for i in range(len(entity_rows)):
            assert rank.get(got[i]) == rank.get(ref[i]), (label, i, got[i], ref[i])
        maybe = out.column(f"{label}_maybe").to_pylist()
        by_rid = {r.rid: r.maybe for r in rows}
        assert maybe == [None if g is None else by_rid[g] for g in got]


FUNCTIONS = ("count", "sum", "mean", "min", "max", "last", "count_distinct")


def test_aggregations_match_the_reference_engine(other: tuple[OfflineEngine, settings]) -> None:
    engine, its_settings = other

    @its_settings
    @given(
        rows=source_rows(),
        entity_rows=queries(),
        windows=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    )
    def check(rows: list[Row], entity_rows: list[Query], windows: list[int]) -> None:
        _aggregates_match_reference(engine, rows, entity_rows, windows)

    check()


def _aggregates_match_reference(
    other: OfflineEngine, rows: list[Row], entity_rows: list[Query], windows: list[int]
) -> None:
    aggs = [
        (f, column, w * MINUTE, f"{f}_{column}_{w}_{n}")
        for n, w in enumerate(windows)
        for f in FUNCTIONS
        for column in ("maybe", "rid")
    ]
    with tempfile.TemporaryDirectory() as tmp:
        src = write_source(Path(tmp) / "events.parquet", rows)
        join = AggregateJoin("w", src, ("k1", "k2"), ("k1", "k2"), tuple(aggs))
        plan = PitPlan((), timestamp_column="t", aggregates=(join,))
        entity = _entity(entity_rows)
        want = ReferenceEngine().historical(entity, plan).to_arrow()
        out = other.historical(entity, plan).to_arrow()
    assert out.schema == want.schema
    for name in join.output_columns:
        for got, ref in zip(
            out.column(name).to_pylist(), want.column(name).to_pylist(), strict=True
        ):
            if isinstance(ref, float):
                assert math.isclose(got, ref, rel_tol=1e-12), (name, got, ref)
            else:
                assert got == ref, name
