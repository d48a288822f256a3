"""Training/serving consistency check: online values against an offline point-in-time query.

For a sample of a view's entities, the online store's values are compared with
``get_historical_features`` at the same instant. For windowed aggregations the instant is the
next tile boundary, where online and offline are defined to agree exactly; for other views it is
now (a value that expired online must be null offline too, by the same TTL rule).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.stream import StreamFeatureView
from pitstop.engine.historical import view_join
from pitstop.engine.streams import layout_of
from pitstop.engine.tiles import tile_end
from pitstop.errors import RetrievalError

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore


@dataclass(frozen=True)
class Mismatch:
    entity: dict[str, Any]
    feature: str
    online: Any
    offline: Any


@dataclass
class VerifyReport:
    view: str
    at: datetime
    entities: int
    features: int
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def same(a: Any, b: Any) -> bool:
    """Equal values, floats to a relative 1e-6 (online and offline sum in different orders)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return False
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=1e-6, abs_tol=1e-9)
    return bool(a == b)


def verify(store: FeatureStore, view_name: str, sample: int = 100, seed: int = 0) -> VerifyReport:
    """Compare online and offline values of ``sample`` entities of ``view_name``."""
    import pyarrow as pa

    snap = store.registry.snapshot(fresh=True)
    view = snap.view(view_name)
    if not isinstance(view, FeatureView):
        raise RetrievalError(f"{view_name!r} is an on-demand view; verify its source views")
    now = datetime.now(UTC)
    if isinstance(view, StreamFeatureView) and view.aggregations:
        size = layout_of(view).size_us
        now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=tile_end(int(now.timestamp() * 1e6), size)
        )
    keys = _sample_keys(store, view, now, sample, seed)
    refs = [f"{view.name}:{f.name}" for f in view.features]
    report = VerifyReport(view.name, now, len(keys), len(refs))
    if not keys:
        return report
    columns = {k: [row[i] for row in keys] for i, k in enumerate(view.join_keys)}
    online = store.get_online_features(refs, columns).values
    entity = pa.table(
        {**columns, "event_timestamp": pa.array([now] * len(keys), pa.timestamp("us", tz="UTC"))}
    )
    offline = store.get_historical_features(entity, refs).to_arrow()
    for f in view.features:
        off = offline.column(f.name).to_pylist()
        for i, (a, b) in enumerate(zip(online[f.name], off, strict=True)):
            if not same(a, b):
                ent = {k: columns[k][i] for k in view.join_keys}
                report.mismatches.append(Mismatch(ent, f.name, a, b))
    return report


def _sample_keys(
    store: FeatureStore, view: FeatureView, now: datetime, sample: int, seed: int
) -> list[tuple[Any, ...]]:
    """Up to ``sample`` distinct entity keys that have offline rows before ``now``."""
    join = view_join(view, store.repo_path, columns=())
    rows = store.offline.range(join, None, now).to_arrow()
    keys = sorted(set(zip(*(rows.column(k).to_pylist() for k in view.join_keys), strict=True)))
    random.Random(seed).shuffle(keys)
    return keys[:sample]
