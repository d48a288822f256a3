"""Online/offline consistency on logged requests (``pitstop monitor --consistency``).

Each logged row says which keys were asked for at which instant and what was served. The same
keys at the same instants go to ``get_historical_features`` as the entity frame (the request
data logged with them too), and every feature's served value is compared with the
point-in-time value offline (:func:`pitstop.engine.verify.same`: floats to a relative 1e-6;
null equals null only). A mismatch means the online store served something a training set
would not hold: a materialization that has not run since newer rows arrived, a push that
skipped the offline store, a row that expired online but not offline.

Windowed aggregations are read online at the request instant, offline at the same instant:
they agree exactly only at tile boundaries, so expect small differences there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitstop.config import DriftThresholds
from pitstop.definitions.service import FeatureService
from pitstop.errors import DataSourceError
from pitstop.quality.feature_log import LOG_TIMESTAMP, log_layout, log_root
from pitstop.quality.monitor import MonitorReport, no_logs, read_logs, save_summary, span_text

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.feature_store import FeatureStore

EXAMPLES = 3


@dataclass(frozen=True)
class Mismatch:
    """One served value that the offline store disagrees with."""

    at: datetime
    keys: dict[str, Any]
    online: Any
    offline: Any


@dataclass
class FeatureConsistency:
    feature: str
    rows: int
    mismatches: int = 0
    examples: list[Mismatch] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.mismatches / self.rows if self.rows else 0.0


@dataclass
class ConsistencyReport:
    rows: int  # logged rows compared
    threshold: float
    features: list[FeatureConsistency] = field(default_factory=list)

    @property
    def breach(self) -> bool:
        return any(f.rate > self.threshold for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "max_mismatch_rate": self.threshold,
            "breach": self.breach,
            "features": [
                {"feature": f.feature, "rows": f.rows, "mismatches": f.mismatches,
                 "mismatch_rate": f.rate, "breach": f.rate > self.threshold,
                 "examples": [{"at": m.at.isoformat(), "keys": m.keys, "online": m.online,
                               "offline": m.offline} for m in f.examples]}
                for f in self.features
            ],
        }  # fmt: skip


def consistency(
    store: FeatureStore,
    service: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    sample: int = 10_000,
    seed: int = 0,
    thresholds: DriftThresholds | None = None,
) -> MonitorReport:
    """Recompute up to ``sample`` logged rows of ``[since, until)`` offline and count, per
    feature, the served values the offline store disagrees with."""
    from pitstop.engine.verify import same

    started = time.perf_counter()
    limits = thresholds or store.config.monitoring.thresholds
    snap = store.registry.snapshot(fresh=True)
    svc = snap.get(FeatureService, service)
    root = log_root(svc, store.repo_path)
    layout = log_layout(snap, svc, store.repo_path)
    keys = [k for k, _ in layout.keys]
    features = [full for _, full, _ in layout.features]
    until = until or datetime.now(UTC)
    logged = _sampled(read_logs(root, [*keys, *features], since, until), sample, seed)
    if logged.num_rows == 0:
        raise DataSourceError(no_logs(svc, root, since, until))
    missing = [k for k in keys if k not in logged.column_names]
    if missing:
        raise DataSourceError(
            f"feature service {svc.name!r}: the logs under {root} lack the entity columns "
            f"{missing} the service needs now; compare a window logged since the change"
        )
    entity = logged.select(keys).append_column("event_timestamp", logged.column(LOG_TIMESTAMP))
    offline = store.get_historical_features(entity, svc, full_feature_names=True).to_arrow()
    at = logged.column(LOG_TIMESTAMP).to_pylist()
    key_rows = logged.select(keys).to_pylist()
    report = ConsistencyReport(logged.num_rows, limits.mismatch_rate)
    for name in features:
        if name not in logged.column_names:
            continue
        result = FeatureConsistency(name, logged.num_rows)
        served, recomputed = logged.column(name).to_pylist(), offline.column(name).to_pylist()
        for i, (a, b) in enumerate(zip(served, recomputed, strict=True)):
            if not same(a, b):
                result.mismatches += 1
                if len(result.examples) < EXAMPLES:
                    result.examples.append(Mismatch(at[i], key_rows[i], a, b))
        report.features.append(result)
    done = MonitorReport(svc.name, "offline point-in-time values at the request times",
                         f"logs {span_text(since, until)} ({logged.num_rows:,} rows compared)",
                         limits, consistency=report)  # fmt: skip
    done.seconds = time.perf_counter() - started
    save_summary(root, done)
    return done


def _sampled(table: pa.Table, sample: int, seed: int) -> pa.Table:
    """At most ``sample`` rows of ``table``, drawn without replacement, in their order."""
    import numpy as np

    if table.num_rows <= sample:
        return table
    rng = np.random.default_rng(seed)
    return table.take(np.sort(rng.choice(table.num_rows, sample, replace=False)))
