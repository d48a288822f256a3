"""Offline copies of stream entries, each entry written once however often it is delivered.

The ingestion worker appends every batch to the push source's batch source as one Parquet part
(:func:`pitstop.engine.push.append_offline`, written under a temporary name and renamed). The
part is named ``stream-<tag>-<first id>-<last id>.parquet`` (``tag``: a hash of the stream
key) and its schema metadata holds the stream key (``pitstop.stream``) and the ids it holds
(``pitstop.ids``: a JSON list of ``[first, last]`` id ranges). A fresh read holds every entry
between its first and last id, so one range says it all; a batch of redelivered entries lists
its ids one by one, and leaves out those an earlier part already holds (only parts whose
names overlap its ids are opened, and only their footers are read).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pitstop.engine.push import append_offline
from pitstop.engine.streams import stream_id as _sid
from pitstop.offline.files import pushed_folder

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.definitions.sources import FileSource


_NAME = re.compile(r"stream-[0-9a-f]+-(\d+-\d+)-(\d+-\d+)\.parquet")


class StreamParts:
    """The offline parts one stream wrote into ``source``."""

    def __init__(self, source: FileSource, repo_path: Path, stream: str) -> None:
        self.source = source
        self.repo_path = repo_path
        self.stream = stream
        self.tag = hashlib.sha256(stream.encode()).hexdigest()[:12]

    def append(
        self, table: pa.Table, ids: Sequence[str], span: tuple[str, str] | None, *,
        check: bool = True,
    ) -> int:  # fmt: skip
        """Append ``table`` (one row per id of ``ids``); ``span``: the first and last id of a
        fresh read, ``None`` for redelivered entries (or ids that do not follow one another;
        ``check=False``: first deliveries, which no part can hold). Returns the rows written."""
        if span is None:
            held = self.held(ids) if check else set()
            if held:
                keep = [k for k, i in enumerate(ids) if i not in held]
                if not keep:
                    return 0
                table, ids = table.take(keep), [ids[k] for k in keep]
            ranges = [[i, i] for i in dict.fromkeys(ids)]
            first, last = min(ids, key=_sid), max(ids, key=_sid)
        else:
            ranges, (first, last) = [list(span)], span
        metadata = {
            **(table.schema.metadata or {}),
            b"pitstop.stream": self.stream.encode(),
            b"pitstop.ids": json.dumps(ranges).encode(),
        }
        name = f"stream-{self.tag}-{first}-{last}.parquet"
        append_offline(self.source, self.repo_path, table.replace_schema_metadata(metadata), name)
        return table.num_rows

    def held(self, ids: Sequence[str]) -> set[str]:
        """The ids of ``ids`` some part of this stream already holds."""
        import pyarrow.parquet as pq

        folder = pushed_folder(self.source, self.repo_path)
        if not ids or not folder.is_dir():
            return set()
        wanted = {i: _sid(i) for i in ids}
        lo, hi = min(wanted.values()), max(wanted.values())
        held: set[str] = set()
        for path in folder.glob(f"stream-{self.tag}-*.parquet"):
            match = _NAME.fullmatch(path.name)
            if match is None or _sid(match[2]) < lo or _sid(match[1]) > hi:
                continue
            meta = pq.read_schema(path).metadata or {}
            ranges = [(_sid(a), _sid(b)) for a, b in json.loads(meta.get(b"pitstop.ids", b"[]"))]
            held.update(i for i, s in wanted.items() if any(a <= s <= b for a, b in ranges))
        return held
