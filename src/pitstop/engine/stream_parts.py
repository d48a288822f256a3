"""Offline copies of stream entries, each entry written once however often it is delivered.

The ingestion worker appends every batch to the push source's batch source as one labelled
append of the offline engine (atomic; appending under the same label again replaces it). The
label is ``stream-<tag>-<first id>-<last id>`` (``tag``: a hash of the stream key) and the
append's schema metadata holds the stream key (``pitstop.stream``) and the ids it holds
(``pitstop.ids``: a JSON list of ``[first, last]`` id ranges). A fresh read holds every entry
between its first and last id, so one range says it all; a batch of redelivered entries lists
its ids one by one, and leaves out those an earlier append already holds (only appends whose
labels overlap its ids have their metadata read).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pitstop.engine.streams import stream_id as _sid
from pitstop.offline.sources import stored_names

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.offline.base import OfflineEngine
    from pitstop.offline.pit import SourceRef


_LABEL = re.compile(r"stream-[0-9a-f]+-(\d+-\d+)-(\d+-\d+)")


class StreamParts:
    """The offline appends one stream wrote into ``source``."""

    def __init__(self, offline: OfflineEngine, source: SourceRef, stream: str) -> None:
        self.offline = offline
        self.source = source
        self.stream = stream
        self.tag = hashlib.sha256(stream.encode()).hexdigest()[:12]

    def append(self, table: pa.Table, ids: Sequence[str], span: tuple[str, str] | None) -> int:
        """Append ``table`` (one row per id of ``ids``); ``span``: the first and last id of a
        fresh read, ``None`` for redelivered entries. Returns the rows written."""
        if span is None:
            held = self.held(ids)
            if held:
                keep = [k for k, i in enumerate(ids) if i not in held]
                if not keep:
                    return 0
                table, ids = table.take(keep), [ids[k] for k in keep]
            ranges = [[i, i] for i in ids]
            first, last = min(ids, key=_sid), max(ids, key=_sid)
        else:
            ranges, (first, last) = [list(span)], span
        metadata = {
            **(table.schema.metadata or {}),
            b"pitstop.stream": self.stream.encode(),
            b"pitstop.ids": json.dumps(ranges).encode(),
        }
        stored = table.rename_columns(stored_names(self.source, table.column_names))
        label = f"stream-{self.tag}-{first}-{last}"
        self.offline.append(self.source, stored.replace_schema_metadata(metadata), label=label)
        return table.num_rows

    def held(self, ids: Sequence[str]) -> set[str]:
        """The ids of ``ids`` some append of this stream already holds."""
        if not ids:
            return set()
        wanted = {i: _sid(i) for i in ids}
        lo, hi = min(wanted.values()), max(wanted.values())
        held: set[str] = set()
        labels = self.offline.labels(self.source, f"stream-{self.tag}-")
        for label in labels:
            match = _LABEL.fullmatch(label)
            if match is None or _sid(match[2]) < lo or _sid(match[1]) > hi:
                continue
            meta = labels[label]
            ranges = [(_sid(a), _sid(b)) for a, b in json.loads(meta.get(b"pitstop.ids", b"[]"))]
            held.update(i for i, s in wanted.items() if any(a <= s <= b for a, b in ranges))
        return held
