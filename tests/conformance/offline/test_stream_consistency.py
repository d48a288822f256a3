"""Online tiles and every offline engine's aggregations agree exactly at tile boundaries.

Random events for several entities (compound keys) over a few hours arrive out of order within
an allowed lateness. Online, they are fed in arrival order through ``tiles.add_events`` while
tiles are stored encoded and expired as a store would; each tile boundary ``t`` is read once
every event with ``event_ts <= t`` can have arrived. Offline, each engine's plan answers
the same ``(entity, t)`` rows from a Parquet file written in arrival order (so the file-order
tie-break of ``last`` is the arrival order too). Both must equal a slow, obviously correct
reference; the offline side also at times between boundaries.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop.definitions.stream import Aggregation
from pitstop.engine import tiles as T
from pitstop.offline import OfflineEngine
from pitstop.offline.pit import AggregateJoin, PitPlan, SourceRef

S = T.SECOND_US
MIN = 60 * S
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
START = 1_714_564_800 * S  # 2024-05-01 12:00 UTC
SPAN = 3 * 60 * MIN
LATENESS = 7 * MIN
FUNCTIONS = ("count", "sum", "mean", "avg", "min", "max", "count_distinct", "last")
#: (column, functions): floats with nulls, integers, strings with nulls
COLUMNS = {
    "amount": FUNCTIONS,
    "qty": ("sum", "mean", "min", "max", "last", "count_distinct"),
    "city": ("count", "min", "max", "last", "count_distinct"),
}

KEYS = [(d, r) for d in (1, 2, 3) for r in ("eu", "us")]

Event = tuple[int, tuple[int, str], dict[str, Any]]  # (ts_us, key, values)


def aggregations(slide: timedelta) -> list[Aggregation]:
    out = []
    for window in (timedelta(minutes=10), timedelta(hours=1)):
        for column, functions in COLUMNS.items():
            for function in functions:
                name = f"{function}_{column}_{int(window.total_seconds() // 60)}"
                out.append(Aggregation(column, function, window, slide, name=name))
    return out


def generate(rng: random.Random) -> tuple[list[Event], list[int]]:
    """Events in arrival order, and their arrival times: event time + a delay < lateness."""
    arrivals = []
    for i in range(rng.randint(600, 900)):
        key = rng.choice(KEYS[:-1])  # the last key never has events
        # mostly whole seconds: many events on tile boundaries and some exact ties
        ts = START + rng.randrange(-SPAN // 10, SPAN, S if rng.random() < 0.7 else 1)
        values = {
            "amount": None if rng.random() < 0.15 else round(rng.uniform(-50, 100), 3),
            "qty": rng.randint(-5, 20),
            "city": None if rng.random() < 0.2 else rng.choice("abcdefgh") * rng.randint(1, 2),
        }
        arrivals.append((ts + rng.randrange(LATENESS), i, (ts, key, values)))
    arrivals.sort()
    return [event for _, _, event in arrivals], [arrival for arrival, _, _ in arrivals]


def reference(aggs: Sequence[Aggregation], events: list[Event], key: Any, t: int) -> dict:
    """Straight from the definition: events of ``key`` with ``t - w < ts <= t``."""
    mine = [(ts, order, v) for order, (ts, k, v) in enumerate(events) if k == key and ts <= t]
    out: dict[str, Any] = {}
    for agg in aggs:
        w = agg.time_window // timedelta(microseconds=1)
        hits = [(ts, n, v[agg.column]) for ts, n, v in mine if ts > t - w]
        hits = [hit for hit in hits if hit[2] is not None]
        values = [v for _, _, v in hits]
        fn = agg.function
        if fn == "count":
            out[agg.name] = len(values)
        elif fn == "count_distinct":
            out[agg.name] = len(set(values))
        elif not values:
            out[agg.name] = None
        elif fn in ("mean", "avg"):
            out[agg.name] = math.fsum(values) / len(values)
        elif fn == "sum":
            out[agg.name] = math.fsum(values) if isinstance(values[0], float) else sum(values)
        elif fn == "last":
            out[agg.name] = max(hits)[2]  # greatest event time, then latest arrival
        else:
            out[agg.name] = min(values) if fn == "min" else max(values)
    return out


def online(
    layout: T.TileLayout, events: list[Event], arrivals: list[int], times: list[int]
) -> dict[tuple[Any, int], dict[str, Any]]:
    """Feed events in arrival order; read ``t`` once the clock reaches ``t + LATENESS`` (every
    event with ``ts <= t`` has arrived by then). Tiles live encoded in a dict standing in for
    an online store, and are dropped once expired."""
    store: dict[tuple[Any, int], bytes] = {}
    pending = sorted(times)
    results: dict[tuple[Any, int], dict[str, Any]] = {}

    def read(t: int) -> None:
        for key in KEYS:
            tiles = {e: T.decode_state(b) for (k, e), b in store.items() if k == key}
            results[key, t] = T.finalize(layout, tiles, t)

    for (ts, key, values), clock in zip(events, arrivals, strict=True):
        while pending and pending[0] + LATENESS <= clock:
            read(pending.pop(0))
        tiles = {}
        end = T.tile_end(ts, layout.size_us)
        if (key, end) in store:
            tiles[end] = T.decode_state(store[key, end])
        for changed in T.add_events(layout, tiles, [(ts, values)]):
            store[key, changed] = T.encode_state(tiles[changed])
        oldest_read = clock - LATENESS  # no later read is for an earlier time
        for stale in [k for k in store if T.expired(k[1], oldest_read, layout.max_window_us)]:
            del store[stale]
    for t in pending:
        read(t)
    return results


def offline(
    engine: OfflineEngine,
    tmp_path: Path,
    aggs: Sequence[Aggregation],
    events: list[Event],
    rows: list[tuple],
) -> list[dict]:
    path = tmp_path / "events.parquet"
    pq.write_table(
        pa.table(
            {
                "driver": [k[0] for _, k, _ in events],
                "region": [k[1] for _, k, _ in events],
                "ts": pa.array([ts for ts, _, _ in events], pa.timestamp("us", "UTC")),
                **{c: [v[c] for _, _, v in events] for c in COLUMNS},
            }
        ),
        path,
        row_group_size=256,
    )
    join = AggregateJoin(
        name="trips",
        source=SourceRef(path=str(path), file_format="parquet", timestamp_field="ts"),
        entity_keys=("driver_id", "region"),
        source_keys=("driver", "region"),
        aggregations=tuple((a.function, a.column, a.time_window, a.name) for a in aggs),
    )
    entity = pa.table(
        {
            "driver_id": [key[0] for key, _ in rows],
            "region": [key[1] for key, _ in rows],
            "event_timestamp": [EPOCH + timedelta(microseconds=t) for _, t in rows],
        }
    )
    plan = PitPlan((), aggregates=(join,))
    out = engine.historical(entity, plan).to_arrow()
    return out.select(list(join.output_columns)).to_pylist()


def same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name, value in want.items():
        if isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
        else:
            assert got[name] == value, name
            assert type(got[name]) is type(value), name


@pytest.mark.parametrize(("seed", "slide"), [(1, 1), (2, 5), (3, 1), (4, 5)])
def test_online_equals_offline_at_tile_boundaries(
    engine: OfflineEngine, tmp_path: Path, seed: int, slide: int
) -> None:
    rng = random.Random(seed)
    aggs = aggregations(timedelta(minutes=slide))
    layout = T.TileLayout.of(aggs)
    assert layout.size_us == slide * MIN
    events, arrivals = generate(rng)
    times = list(range(START - 20 * MIN, START + SPAN + 70 * MIN, layout.size_us))
    on = online(layout, events, arrivals, times)
    assert len(on) == len(times) * len(KEYS)
    unaligned = [START + rng.randrange(-SPAN // 10, SPAN + 70 * MIN) for _ in range(50)]
    rows = [(key, t) for t in times for key in KEYS] + [(rng.choice(KEYS), t) for t in unaligned]
    off = offline(engine, tmp_path, aggs, events, rows)
    assert len(off) == len(rows)
    busy = 0
    for (key, t), got in zip(rows, off, strict=True):
        want = reference(aggs, events, key, t)
        same(got, want)
        if t % layout.size_us == 0:
            same(on[key, t], want)
        busy += want["count_amount_10"] > 1
    assert busy > len(rows) // 3  # most windows are not empty
