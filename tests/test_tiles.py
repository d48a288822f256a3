"""Unit tests of the online tile algebra (pitstop.engine.tiles)."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitstop.definitions.stream import Aggregation
from pitstop.engine import tiles as T
from pitstop.errors import DefinitionError, PitstopError

S = T.SECOND_US
MIN = 60 * S
HOUR = 60 * MIN
BASE = 1_700_000_000 * S // HOUR * HOUR  # an hour boundary
FUNCS = ("count", "sum", "mean", "min", "max", "last", "count_distinct")


def layout(
    functions: tuple[str, ...] = FUNCS,
    column: str = "x",
    window: timedelta = timedelta(minutes=10),
    slide: timedelta | None = timedelta(minutes=1),
) -> T.TileLayout:
    aggs = [Aggregation(column, f, window, slide, name=f) for f in functions]
    return T.TileLayout.of(aggs)


def run(lay: T.TileLayout, events: list[tuple[int, dict[str, Any]]], t: int) -> dict[str, Any]:
    tiles: dict[int, T.Tile] = {}
    T.add_events(lay, tiles, events)
    return T.finalize(lay, tiles, t)


# --- sizes and boundaries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "slide", "size"),
    [
        (timedelta(hours=1), None, MIN),
        (timedelta(minutes=10), None, 10 * S),
        (timedelta(seconds=30), None, S),
        (timedelta(seconds=90), None, S),
        (timedelta(days=1), None, 24 * MIN),
        (timedelta(hours=1), timedelta(minutes=5), 5 * MIN),
    ],
)
def test_tile_size_of_one_aggregation(
    window: timedelta, slide: timedelta | None, size: int
) -> None:
    assert T.tile_size(Aggregation("x", "sum", window, slide)) == size


def test_view_tile_size_is_gcd_of_sizes_and_windows() -> None:
    aggs = [
        Aggregation("x", "sum", timedelta(hours=1), timedelta(minutes=7)),
        Aggregation("x", "count", timedelta(minutes=10)),
    ]
    # gcd(7 min, 10 s, 1 h, 10 min) = 10 s
    assert T.view_tile_size(aggs) == 10 * S
    assert T.view_tile_size(aggs[:1]) == MIN  # 7 min does not divide 1 h
    with pytest.raises(DefinitionError):
        T.view_tile_size([])


def test_tile_end_is_right_closed() -> None:
    assert T.tile_end(BASE, MIN) == BASE
    assert T.tile_end(BASE + 1, MIN) == BASE + MIN
    assert T.tile_end(BASE - 1, MIN) == BASE
    assert T.tile_end(0, MIN) == 0
    assert T.tile_end(-1, MIN) == 0
    assert T.tile_end(-MIN, MIN) == -MIN
    assert T.tile_end(-MIN - 1, MIN) == -MIN


def test_event_on_boundary_goes_to_tile_ending_there() -> None:
    lay = layout(("count",))
    tiles: dict[int, T.Tile] = {}
    touched = T.add_events(lay, tiles, [(BASE, {"x": 1}), (BASE + 1, {"x": 1})])
    assert touched == {BASE, BASE + MIN}
    assert tiles[BASE]["x"][0] == 1
    assert tiles[BASE + MIN]["x"][0] == 1


def test_window_is_open_left_closed_right() -> None:
    lay = layout(("count", "sum"))
    w = 10 * MIN
    t = BASE + HOUR
    events = [
        (t - w, {"x": 1}),  # exactly t - w: excluded
        (t - w + 1, {"x": 10}),  # just inside
        (t, {"x": 100}),  # exactly t: included
        (t + 1, {"x": 1000}),  # after t: excluded
    ]
    assert run(lay, events, t) == {"count": 2, "sum": 110}
    assert run(lay, events, t - w) == {"count": 1, "sum": 1}


def test_unaligned_time_answers_for_next_boundary() -> None:
    lay = layout(("count",))
    events = [(ts, {"x": 1}) for ts in (BASE + 30 * S, BASE + 50 * S, BASE - 9 * MIN - 20 * S)]
    # at BASE + 30 s the window is taken as (BASE + 1 min - 10 min, BASE + 1 min]: the whole
    # current tile counts, the tile ending at BASE - 9 min has left
    assert run(lay, events, BASE + 30 * S) == {"count": 2}
    assert run(lay, events, BASE + MIN) == {"count": 2}
    assert run(lay, events, BASE) == {"count": 1}


# --- functions, nulls, empty windows -------------------------------------------------------


def test_every_function() -> None:
    lay = layout()
    events = [
        (BASE + 1 * MIN, {"x": 5}),
        (BASE + 2 * MIN + 3, {"x": 2}),
        (BASE + 2 * MIN + 1, {"x": 9}),  # late within its tile, earlier than the previous
        (BASE + 4 * MIN, {"x": 2}),
    ]
    out = run(lay, events, BASE + 5 * MIN)
    assert out == {
        "count": 4,
        "sum": 18,
        "mean": 4.5,
        "min": 2,
        "max": 9,
        "last": 2,
        "count_distinct": 3,
    }
    assert isinstance(out["sum"], int)


def test_avg_is_mean() -> None:
    lay = T.TileLayout.of([Aggregation("x", "avg", timedelta(minutes=10))])
    assert lay.aggregations[0].function == "mean"
    assert run(lay, [(BASE, {"x": 1}), (BASE, {"x": 2})], BASE) == {"avg_x_10m": 1.5}


def test_nulls_are_ignored_and_count_counts_non_null() -> None:
    lay = layout()
    events: list[tuple[int, dict[str, Any]]] = [
        (BASE + MIN, {"x": 3}),
        (BASE + 2 * MIN, {"x": None}),
        (BASE + 3 * MIN, {}),  # column missing: null
        (BASE + 3 * MIN, {"y": 1}),
    ]
    out = run(lay, events, BASE + 5 * MIN)
    assert out == {
        "count": 1,
        "sum": 3,
        "mean": 3.0,
        "min": 3,
        "max": 3,
        "last": 3,  # the latest non-null value
        "count_distinct": 1,
    }


def test_only_null_events_is_an_empty_window() -> None:
    lay = layout()
    empty = {
        "count": 0,
        "sum": None,
        "mean": None,
        "min": None,
        "max": None,
        "last": None,
        "count_distinct": 0,
    }
    assert run(lay, [(BASE, {"x": None})], BASE) == empty
    assert run(lay, [], BASE) == empty
    assert run(lay, [(BASE, {"x": 1})], BASE + HOUR) == empty


def test_strings_for_min_max_last_distinct() -> None:
    lay = layout(("min", "max", "last", "count_distinct", "count"))
    events = [(BASE + 1, {"x": "pear"}), (BASE + 3, {"x": "apple"}), (BASE + 2, {"x": "pear"})]
    assert run(lay, events, BASE + MIN) == {
        "min": "apple",
        "max": "pear",
        "last": "apple",
        "count_distinct": 2,
        "count": 3,
    }


def test_nan_sorts_above_numbers_in_min_and_max() -> None:
    lay = layout(("min", "max"))
    for order in ([math.nan, 1.0, 2.0], [1.0, math.nan, 2.0], [2.0, 1.0, math.nan]):
        one_tile = run(lay, [(BASE, {"x": v}) for v in order], BASE)
        many = run(lay, [(BASE - i * MIN, {"x": v}) for i, v in enumerate(order)], BASE)
        for out in (one_tile, many):
            assert out["min"] == 1.0
            assert math.isnan(out["max"])
    assert math.isnan(run(lay, [(BASE, {"x": math.nan})], BASE)["min"])


# --- last: ties ----------------------------------------------------------------------------


def test_last_ties_go_to_later_arrival_then_greater_seq() -> None:
    lay = layout(("last",))
    assert run(lay, [(BASE, {"x": "a"}), (BASE, {"x": "b"})], BASE) == {"last": "b"}
    tiles: dict[int, T.Tile] = {}
    T.add_events(lay, tiles, [(BASE, {"x": "new"})], seq=5)
    T.add_events(lay, tiles, [(BASE, {"x": "old"})], seq=4)  # arrives later, smaller seq
    assert T.finalize(lay, tiles, BASE) == {"last": "new"}
    T.add_events(lay, tiles, [(BASE - 1, {"x": "older"})], seq=9)
    assert T.finalize(lay, tiles, BASE) == {"last": "new"}


def test_merge_takes_second_argument_as_later_on_ties() -> None:
    lay = layout(("last", "count"))
    a: dict[int, T.Tile] = {}
    b: dict[int, T.Tile] = {}
    T.add_events(lay, a, [(BASE, {"x": "a"})])
    T.add_events(lay, b, [(BASE, {"x": "b"})])
    assert T.finalize(lay, {BASE: T.merge(a[BASE], b[BASE])}, BASE) == {"last": "b", "count": 2}
    assert T.finalize(lay, {BASE: T.merge(b[BASE], a[BASE])}, BASE) == {"last": "a", "count": 2}


# --- out of order, merge ---------------------------------------------------------------------


def test_arrival_order_does_not_matter() -> None:
    lay = layout(FUNCS, window=timedelta(hours=1), slide=timedelta(minutes=5))
    rng = random.Random(7)
    stamps = rng.sample(range(BASE, BASE + 2 * HOUR, S), 300)  # distinct: no last ties
    events = [(ts, {"x": rng.choice([None, *range(20)])}) for ts in stamps]
    expected = {t: run(lay, events, t) for t in range(BASE, BASE + 2 * HOUR + 1, 5 * MIN)}
    for _ in range(3):
        rng.shuffle(events)  # late events within and across tiles
        for t, want in expected.items():
            got = run(lay, events, t)
            assert got["mean"] == pytest.approx(want["mean"])
            assert {**got, "mean": 0} == {**want, "mean": 0}


def _tile_of(lay: T.TileLayout, events: list[tuple[int, dict[str, Any]]]) -> T.Tile:
    tiles: dict[int, T.Tile] = {}
    T.add_events(lay, tiles, events)
    return tiles.get(BASE, {})


values = st.one_of(st.none(), st.integers(-50, 50))
chunk = st.lists(st.tuples(st.integers(BASE - MIN + 1, BASE), values), max_size=6)


@settings(max_examples=150, deadline=None)
@given(chunk, chunk, chunk)
def test_merge_is_associative_and_equals_adding_everything(
    c1: list[tuple[int, Any]], c2: list[tuple[int, Any]], c3: list[tuple[int, Any]]
) -> None:
    lay = layout()
    a, b, c = (_tile_of(lay, [(ts, {"x": v}) for ts, v in ch]) for ch in (c1, c2, c3))
    everything = _tile_of(lay, [(ts, {"x": v}) for ts, v in c1 + c2 + c3])
    left = T.merge(T.merge(a, b), c)
    right = T.merge(a, T.merge(b, c))
    want = T.finalize(lay, {BASE: everything}, BASE)
    for merged in (left, right):
        got = T.finalize(lay, {BASE: merged}, BASE)
        assert got.pop("mean") == pytest.approx(want["mean"])
        assert got == {k: v for k, v in want.items() if k != "mean"}
    swapped = T.finalize(lay, {BASE: T.merge(b, a)}, BASE)
    straight = T.finalize(lay, {BASE: T.merge(a, b)}, BASE)
    assert swapped["count_distinct"] == straight["count_distinct"]
    assert swapped["sum"] == straight["sum"]


def test_merge_does_not_modify_its_arguments() -> None:
    lay = layout()
    a = _tile_of(lay, [(BASE, {"x": 1})])
    b = _tile_of(lay, [(BASE, {"x": 2})])
    before = (T.encode_state(a), T.encode_state(b))
    merged = T.merge(a, b)
    merged["x"][7].add(99)
    assert (T.encode_state(a), T.encode_state(b)) == before


# --- encoding, expiry, layouts ---------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    aggs = [Aggregation("x", f, timedelta(minutes=10), name=f) for f in FUNCS]
    lay2 = T.TileLayout.of([*aggs, Aggregation("s", "last", timedelta(minutes=10), name="s")])
    tile = _tile_of(
        lay2,
        [(BASE - 3, {"x": 1.5, "s": "é"}), (BASE - 2, {"x": 7, "s": None}), (BASE, {"x": -2})],
    )
    data = T.encode_state(tile)
    assert data[0] == T.STATE_VERSION
    back = T.decode_state(data)
    assert back == tile
    assert T.finalize(lay2, {BASE: back}, BASE) == T.finalize(lay2, {BASE: tile}, BASE)
    assert T.decode_state(T.encode_state({})) == {}


def test_decode_rejects_other_versions() -> None:
    with pytest.raises(PitstopError, match="version 2"):
        T.decode_state(b"\x02\x80")
    with pytest.raises(PitstopError, match="version None"):
        T.decode_state(b"")


def test_expired() -> None:
    w = 10 * MIN
    assert T.expired(BASE, BASE + w, w)
    assert not T.expired(BASE + 1, BASE + w, w)
    assert not T.expired(BASE + MIN, BASE + w, w)
    lay = layout(("count",), window=timedelta(hours=1))
    assert lay.max_window_us == HOUR
    assert lay.outputs == ("count",)


def test_expired_tiles_are_not_needed_by_later_reads() -> None:
    lay = layout(("count",))
    now = BASE + 37 * S
    tiles: dict[int, T.Tile] = {}
    T.add_events(lay, tiles, [(ts, {"x": 1}) for ts in range(BASE - HOUR, now, 7 * S)])
    live = {e: t for e, t in tiles.items() if not T.expired(e, now, lay.max_window_us)}
    for t in (now, now + 1, now + MIN, now + 2 * HOUR):
        assert T.finalize(lay, live, t) == T.finalize(lay, tiles, t)


def test_layout_validation() -> None:
    agg = T.TileAggregation("out", "sum", "x", HOUR)
    with pytest.raises(DefinitionError, match="multiple of the tile size"):
        T.TileLayout(7 * MIN, (agg,))
    with pytest.raises(DefinitionError, match="positive"):
        T.TileLayout(0, (agg,))
    with pytest.raises(DefinitionError, match="not supported"):
        T.TileAggregation("out", "median", "x", HOUR)
    with pytest.raises(DefinitionError, match="window"):
        T.TileAggregation("out", "sum", "x", 0)
    with pytest.raises(DefinitionError, match="output name"):
        T.TileLayout.of([Aggregation("x", "sum", timedelta(hours=1))], names=["a", "b"])
    named = T.TileLayout.of([Aggregation("x", "sum", timedelta(hours=1))], names=["total"])
    assert named.outputs == ("total",)


def test_tiles_of_an_older_layout_are_reported() -> None:
    old = layout(("sum",))
    new = layout(("sum", "count_distinct"))
    tiles: dict[int, T.Tile] = {}
    T.add_events(old, tiles, [(BASE, {"x": 1})])
    with pytest.raises(PitstopError, match="rebuild"):
        T.finalize(new, tiles, BASE)
    merged = T.merge(tiles[BASE], _tile_of(new, [(BASE, {"x": 2})]))
    with pytest.raises(PitstopError, match="distinct partial"):
        T.finalize(new, {BASE: merged}, BASE)
