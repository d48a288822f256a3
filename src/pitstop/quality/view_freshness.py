"""Freshness of feature views: how old the values served online are, and why.

Per view (``pitstop status``, and gauges on the feature server's ``/metrics``):

- **last materialization**: when the last ``materialize``/``materialize-incremental`` of the
  view finished, the range ``[start, end]`` it loaded and the rows it wrote. Every run is
  recorded in the registry database (meta key ``last_materialization:<view>``, JSON), next to
  the view's materialization watermark;
- **materialized until**: the watermark ``materialize-incremental`` continues from (the end of
  the last run that completed);
- **newest event online**: the greatest event time the view's online table holds, whoever
  wrote it (materialization, push, ingestion) — asked of online stores that can tell
  (:class:`~pitstop.online.base.EventTimes`: memory, SQLite, PostgreSQL; Redis cannot
  without reading every key, so it is unknown there);
- **watermark** (stream views): the newest event time folded into the view's windows.

Staleness is the time since the newest event online.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pitstop.definitions.stream import StreamFeatureView

if TYPE_CHECKING:
    from pitstop.engine.materialize import MaterializeResult
    from pitstop.feature_store import FeatureStore
    from pitstop.registry.store import RegistryStore

LAST_RUN = "last_materialization:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def record_materialization(meta: RegistryStore, result: MaterializeResult) -> None:
    """Remember ``result`` as the last materialization of its view."""
    run = {
        "start": result.start.isoformat() if result.start else None,
        "end": result.end.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "rows": result.rows,
        "seconds": round(result.seconds, 3),
    }
    meta.set_meta(LAST_RUN + result.view, json.dumps(run))


@dataclass(frozen=True)
class ViewFreshness:
    """What is known about one view's freshness (times are UTC; ``None``: unknown)."""

    view: str
    kind: str  # "batch" or "stream"
    ttl_seconds: float | None
    materialized_at: datetime | None
    materialized_start: datetime | None
    materialized_end: datetime | None
    materialized_rows: int | None
    materialized_until: datetime | None
    newest_event: datetime | None
    watermark: datetime | None  # stream views only

    def staleness(self, now: datetime) -> float | None:
        """Seconds since the newest event online."""
        if self.newest_event is None:
            return None
        return (now - self.newest_event).total_seconds()

    def to_dict(self, now: datetime) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "feature_view": self.view,
            "kind": self.kind,
            "ttl_seconds": self.ttl_seconds,
            "last_materialization": iso(self.materialized_at),
            "materialized_start": iso(self.materialized_start),
            "materialized_end": iso(self.materialized_end),
            "materialized_rows": self.materialized_rows,
            "materialized_until": iso(self.materialized_until),
            "newest_event_online": iso(self.newest_event),
            "watermark": iso(self.watermark),
            "staleness_seconds": self.staleness(now),
        }


def freshness(store: FeatureStore, views: Sequence[str] | None = None) -> list[ViewFreshness]:
    """The freshness of ``views`` (default: every batch and stream view served online)."""
    from pitstop.engine.materialize import online_views, watermark
    from pitstop.online.base import EventTimes

    snap = store.registry.snapshot(fresh=True)
    chosen = online_views([*snap.feature_views.values(), *snap.stream_feature_views.values()],
                          views)  # fmt: skip
    online = store.online
    newest: dict[str, int | None] = {}
    if isinstance(online, EventTimes):
        newest = online.newest_event_ts([v.name for v in chosen])
    meta = store.registry.store
    found = []
    for view in chosen:
        run = json.loads(meta.get_meta(LAST_RUN + view.name) or "{}")
        event = _micros(newest.get(view.name))
        stream = isinstance(view, StreamFeatureView)
        found.append(ViewFreshness(
            view=view.name,
            kind="stream" if stream else "batch",
            ttl_seconds=view.ttl.total_seconds() if view.ttl else None,
            materialized_at=_parse(run.get("finished_at")),
            materialized_start=_parse(run.get("start")),
            materialized_end=_parse(run.get("end")),
            materialized_rows=run.get("rows"),
            materialized_until=watermark(meta, view.name),
            newest_event=event,
            watermark=event if stream else None,
        ))  # fmt: skip
    return found


def _parse(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


def _micros(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)
