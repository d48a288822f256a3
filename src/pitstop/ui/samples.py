"""A few rows of a view's offline data, read cheaply: the first record batch of an unordered
scan, cut to :data:`ROWS` rows (the offline engine streams, so a large source is not read
whole). A stream view with aggregations shows the raw columns it aggregates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import PitstopError

if TYPE_CHECKING:
    from pitstop.definitions.feature_view import FeatureView
    from pitstop.feature_store import FeatureStore

ROWS = 5


@dataclass
class SampleTable:
    """Column names, rows of display text, and a note when there is nothing to show."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""
    source: str = ""


def sample_rows(store: FeatureStore, view: FeatureView, limit: int = ROWS) -> SampleTable:
    """Up to ``limit`` rows of ``view``'s offline data: keys, event timestamp, features."""
    from pitstop.engine.historical import check_capabilities, view_join

    columns = None
    if isinstance(view, StreamFeatureView) and view.aggregations:
        raw = dict.fromkeys(a.column for a in view.aggregations)
        columns = [(c, c) for c in raw]
    join = view_join(view, store.repo_path, columns=columns)
    table = SampleTable(source=view.batch_source.name)
    try:
        offline = store.offline
        check_capabilities(offline, [join.source])
        if not offline.has_rows(join.source):
            table.note = "No offline rows yet: nothing has been pushed to this view's source."
            return table
        reader = offline.range(join, None, None).to_batches()
        table.columns = list(reader.schema.names)
        for batch in reader:
            for row in batch.slice(0, limit - len(table.rows)).to_pylist():
                table.rows.append([_show(row[c]) for c in table.columns])
            if len(table.rows) >= limit:
                break
        reader.close()
    except PitstopError as exc:  # a missing file, an engine that cannot read the source
        table.note = f"The offline data cannot be read: {exc}"
        return table
    if not table.rows:
        table.note = "The source has no rows."
    return table


def _show(value: Any) -> str:
    """A cell as text: timestamps in ISO 8601, floats to 6 significant digits."""
    if value is None:
        return "null"
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, float):
        return repr(value) if math.isnan(value) or math.isinf(value) else f"{value:.6g}"
    if isinstance(value, bytes):
        return value[:24].hex() + ("…" if len(value) > 24 else "")
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"
