"""Stream feature views online: events fold into tiles, reads combine the tiles in the window.

Each entity of an aggregating stream view has one online row holding its live tiles
(:mod:`pitstop.engine.tiles`): the value is the version byte ``0x01`` followed by a msgpack map
``{"tiles": {tile_end_us: tile_state_bytes}, "marks": {stream: mark}}``; the row's event time
is the newest event seen. Pushes update rows with the store's atomic
:meth:`~pitstop.online.base.OnlineStore.modify`, so concurrent writers never lose an event;
tiles older than the longest window are dropped on every write, and events too old to be in
any window at arrival are ignored.

**Marks** make stream ingestion exact under redelivery, in any order and with several
consumers: a stream id is ``(ms, seq)`` and an entity's mark records which ids of a stream it
has applied, as ``{"below": id, "done": [[lo_ms, lo_seq, hi_ms, hi_seq], ...]}``: every id
below ``below`` and every id in a ``done`` range. A :class:`Delivery` says which ids a batch
covers (a range when it holds every entry between its first and last id, else its ids one by
one) and which id every entry below is settled (acknowledged, so never delivered again), which
moves ``below`` up and prunes ``done``. An event whose id the mark covers is skipped. (An older
mark ``[ms, seq]`` means every id up to it.) Any source whose positions grow within a
partition uses the same marks, one per partition: ids are pairs of integers.

Sources without a growing position (an MQTT topic, a RabbitMQ queue) give each event a stable
id instead (:attr:`Delivery.ordered` false): the mark then records the ids applied per tile,
``{"seen": {tile_end: [[a, b], ...]}}``, and forgets them with the tile. An event older than
every window is ignored on arrival anyway, so an id needs remembering only while its tile lives.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgpack

from pitstop.definitions.stream import StreamFeatureView
from pitstop.engine.tiles import (
    Tile,
    TileLayout,
    add_events,
    finalize,
    tile_end,
)
from pitstop.engine.write import micros
from pitstop.errors import PitstopError
from pitstop.online.base import ReadRow, StoredRow
from pitstop.online.encoding import encode_keys

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.online.base import OnlineStore

VERSION = 1
_PREFIX = bytes([VERSION])
_DISTINCT = 7  # index of the distinct-values set in a partial (see tiles.py)
_packb = msgpack.Packer(use_bin_type=True).pack


def _as_list(value: Any) -> Any:
    if isinstance(value, set):  # count_distinct values: an array, in any order
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a tile")


_pack_tiles = msgpack.Packer(use_bin_type=True, default=_as_list).pack


@lru_cache(maxsize=256)
def _layout(spec: str, view: StreamFeatureView) -> TileLayout:
    return TileLayout.of(view.aggregations, [f.name for f in view.features])


def layout_of(view: StreamFeatureView) -> TileLayout:
    """The tile layout of an aggregating stream view (cached per view definition)."""
    return _layout(view.to_json(), view)


Marks = dict[str, Any]


def encode_tiles(tiles: dict[int, Tile], marks: Marks | None = None) -> bytes:
    """One msgpack document for all tiles (each tile as in :func:`tiles.encode_state`)."""
    return _PREFIX + _pack_tiles({"tiles": tiles, "marks": marks or {}})


def decode_row(data: bytes, distinct: bool = True) -> tuple[dict[int, Tile], Marks]:
    """Tiles and stream marks of a stored row; ``distinct``: rebuild count_distinct sets."""
    if not data or data[0] != VERSION:
        raise PitstopError(
            "online tiles written with another format version; re-materialize the stream view"
        )
    body = msgpack.unpackb(data[1:], raw=False, strict_map_key=False)
    tiles: dict[int, Tile] = body["tiles"]
    if distinct:
        for tile in tiles.values():
            for p in tile.values():
                if p[_DISTINCT] is not None:
                    p[_DISTINCT] = set(p[_DISTINCT])
    return tiles, body["marks"]


def decode_tiles(data: bytes) -> dict[int, Tile]:
    return decode_row(data)[0]


def read_values(layout: TileLayout, row: ReadRow | None, now_us: int) -> dict[str, Any]:
    """The view's aggregation values at ``now_us`` from one stored row (none: empty window)."""
    tiles = decode_tiles(row.value) if row is not None else {}
    return finalize(layout, tiles, now_us)


def _group(
    view: StreamFeatureView, table: pa.Table, ids: Sequence[Any] | None = None
) -> tuple[list[bytes], list[list[Any]]]:
    """Entity keys (first-seen order) and each key's events ``(ts_us, {column: value}, id)``."""
    names = sorted(view.join_keys)
    keys = encode_keys(names, [table.column(k).combine_chunks() for k in names])
    stamps = micros(table.column(view.timestamp_field)).to_pylist()
    columns = list(dict.fromkeys(a.column for a in view.aggregations))
    rows = [
        dict(zip(columns, vals, strict=True))
        for vals in zip(*(table.column(c).to_pylist() for c in columns), strict=True)
    ]
    event_ids = ids if ids is not None else [None] * len(keys)
    by_key: dict[bytes, list[Any]] = {}
    for key, ts, row, event_id in zip(keys, stamps, rows, event_ids, strict=True):
        if ts is not None:
            by_key.setdefault(key, []).append((ts, row, event_id))
    return list(by_key), list(by_key.values())


StreamId = tuple[int, int]  # (milliseconds, sequence) of a Redis stream entry


def stream_id(text: str) -> StreamId:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``, which compare in stream order."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class Delivery:
    """Where a batch of events comes from: ``stream`` (the mark's name: a source, or one
    partition of it), one growing id per row (``ids``), ``span`` (first, last id) when the
    batch holds every entry between them (a fresh read), and ``settled``: every id below it
    was handled and will not be delivered again. ``ordered`` false: the ids are stable but
    do not grow (no span, no settled id); see the module's notes."""

    stream: str
    ids: Sequence[StreamId]
    span: tuple[StreamId, StreamId] | None = None
    settled: StreamId | None = None
    ordered: bool = True


def _mark(raw: Any) -> tuple[StreamId, list[tuple[StreamId, StreamId]]]:
    """``(below, done ranges)`` of a stored mark (none: nothing applied)."""
    if not raw:
        return (0, 0), []
    if isinstance(raw, list):  # an older mark: the greatest id applied
        return (raw[0], raw[1] + 1), []
    below = tuple(raw["below"])
    return (below[0], below[1]), [((r[0], r[1]), (r[2], r[3])) for r in raw["done"]]


def _unseen(delivery: Delivery, raw: Any, evs: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The events of ``evs`` the mark ``raw`` does not cover, and the mark covering them too."""
    below, done = _mark(raw)
    if done:
        fresh = [e for e in evs if e[2] >= below and not any(a <= e[2] <= b for a, b in done)]
    else:
        fresh = [e for e in evs if e[2] >= below]
    done.extend([delivery.span] if delivery.span else [(e[2], e[2]) for e in evs])
    if delivery.settled is not None and delivery.settled > below:
        below = delivery.settled
    done = [r for r in done if r[1] >= below]
    return fresh, {"below": below, "done": [(*a, *b) for a, b in done]}


def _unseen_ids(raw: Any, evs: list[Any], size_us: int, cutoff: int) -> tuple[list[Any], Marks]:
    """Like :func:`_unseen` for stable ids that do not grow: the ids applied, per tile end."""
    seen: dict[int, list[Any]] = raw.get("seen", {}) if isinstance(raw, dict) else {}
    known = {tuple(i) for ids in seen.values() for i in ids}
    fresh = [e for e in evs if e[0] > cutoff and e[2] not in known]  # events of one message
    for e in fresh:  # share its id: all of them are new, or none
        seen.setdefault(tile_end(e[0], size_us), []).append(e[2])
    return fresh, {"seen": {end: ids for end, ids in seen.items() if end > cutoff}}


def push_events(
    online: OnlineStore,
    view: StreamFeatureView,
    table: pa.Table,
    now_us: int | None = None,
    *,
    delivery: Delivery | None = None,
) -> int:
    """Fold the events of ``table`` into the view's online tiles; returns events offered.

    With a ``delivery`` (stream ids of the rows), events an entity already applied are
    skipped: redelivery is harmless.
    """
    layout = layout_of(view)
    now = time.time_ns() // 1000 if now_us is None else now_us
    ids = [tuple(i) for i in delivery.ids] if delivery is not None else None
    keys, events = _group(view, table, ids)
    if not keys:
        return 0
    horizon = now - layout.max_window_us  # tiles ending at or before this are out of every window
    cutoff = horizon // layout.size_us * layout.size_us  # events at or before it: such tiles
    seq = now
    distinct = any(a.function == "count_distinct" for a in layout.aggregations)

    def change(rows: list[ReadRow | None]) -> list[StoredRow | None]:
        out: list[StoredRow | None] = []
        for key, row, evs in zip(keys, rows, events, strict=True):
            tiles, marks = decode_row(row.value, distinct) if row is not None else ({}, {})
            fresh = evs
            if delivery is not None and not delivery.ordered:
                raw = marks.get(delivery.stream)
                fresh, marks[delivery.stream] = _unseen_ids(raw, evs, layout.size_us, cutoff)
            elif delivery is not None:  # the mark covers the too old events as well
                fresh, marks[delivery.stream] = _unseen(delivery, marks.get(delivery.stream), evs)
            fresh = [e for e in fresh if e[0] > cutoff]
            if not fresh:  # nothing to add; only a moved stream mark is worth a write
                keep = delivery is not None and row is not None
                out.append(StoredRow(key, row.event_ts, 0, encode_tiles(tiles, marks))
                           if keep and row is not None else None)  # fmt: skip
                continue
            add_events(layout, tiles, [(e[0], e[1]) for e in fresh], seq)
            if min(tiles) <= horizon:
                tiles = {end: t for end, t in tiles.items() if end > horizon}
            newest = max(e[0] for e in fresh)
            if row is not None and row.event_ts > newest:
                newest = row.event_ts
            out.append(StoredRow(key, newest, 0, encode_tiles(tiles, marks)))
        return out

    online.modify(view.name, keys, change)
    return sum(len(e) for e in events)


def backfill(
    online: OnlineStore,
    view: StreamFeatureView,
    table: pa.Table,
    end_us: int,
    now_us: int | None = None,
) -> int:
    """Rebuild the tiles up to ``end_us`` from offline events (``table``): tiles ending at or
    before ``tile_end(end_us)`` are replaced, newer tiles (from pushes) are kept.

    Only the tiles a read at ``now_us`` (default: the current time) or later can use are
    stored, whether ``end_us`` lies before or after ``now_us``: see :func:`backfill_since`.
    """
    layout = layout_of(view)
    keys, events = _group(view, table)
    cut = tile_end(end_us, layout.size_us)
    horizon = backfill_since(layout, time.time_ns() // 1000 if now_us is None else now_us)

    def change(rows: list[ReadRow | None]) -> list[StoredRow | None]:
        out: list[StoredRow | None] = []
        for key, row, evs in zip(keys, rows, events, strict=True):
            tiles: dict[int, Tile] = {}
            add_events(layout, tiles, [(e[0], e[1]) for e in evs if e[0] <= end_us])
            marks: Marks = {}
            if row is not None:
                old, marks = decode_row(row.value)
                tiles.update({e: t for e, t in old.items() if e > cut})
            tiles = {e: t for e, t in tiles.items() if e > horizon}
            newest = max([e[0] for e in evs] + ([row.event_ts] if row is not None else []))
            out.append(StoredRow(key, newest, 0, encode_tiles(tiles, marks)))
        return out

    if keys:
        online.modify(view.name, keys, change)
    return len(keys)


def backfill_since(layout: TileLayout, now_us: int) -> int:
    """The end of the newest tile no read at ``now_us`` or later can use: tiles (and events)
    at or before it are not needed online. Reads are at the current time, so this depends on
    ``now_us`` only, not on how far a materialization reaches."""
    return tile_end(now_us, layout.size_us) - layout.max_window_us


def input_columns(view: StreamFeatureView) -> Sequence[str]:
    """The event columns an aggregating view reads: keys, timestamp, aggregated columns."""
    return list(dict.fromkeys([*view.join_keys, view.timestamp_field,
                               *(a.column for a in view.aggregations)]))  # fmt: skip
