"""The data-quality figures the feature server exports on ``/metrics`` (as plain data; the
server renders them).

=========================================================  =======  =========================
metric                                                     type     labels
=========================================================  =======  =========================
pitstop_feature_view_last_materialization_timestamp_seconds gauge   feature_view
pitstop_feature_view_materialization_start_timestamp_seconds gauge  feature_view
pitstop_feature_view_materialized_until_timestamp_seconds  gauge    feature_view
pitstop_feature_view_newest_event_timestamp_seconds        gauge    feature_view
pitstop_feature_view_staleness_seconds                     gauge    feature_view
pitstop_feature_view_watermark_timestamp_seconds           gauge    feature_view (stream views)
pitstop_feature_drift_psi                                  gauge    service, feature
pitstop_feature_drift_ks_statistic                         gauge    service, feature
pitstop_feature_drift_null_rate_change                     gauge    service, feature
pitstop_feature_drift_breach                               gauge    service, feature (1: breach)
pitstop_feature_mismatch_rate                              gauge    service, feature
pitstop_monitor_last_run_timestamp_seconds                 gauge    service
pitstop_feature_log_requests_total                         counter  service
pitstop_feature_log_rows_total                             counter  service
pitstop_feature_log_dropped_total                          counter  service (queue full)
pitstop_feature_log_failed_total                           counter  service (write failed)
=========================================================  =======  =========================

Freshness is read from the registry and the online store at most every
``monitoring.freshness_cache_seconds`` (15 s; staleness is computed at each scrape); drift and
mismatch figures are those of the last ``pitstop monitor`` run of each service with a
``logging_config`` (its ``monitor.json``); the logging counters are this process's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pitstop.definitions.service import FeatureService
from pitstop.quality.feature_log import log_root
from pitstop.quality.monitor import load_summary
from pitstop.quality.view_freshness import ViewFreshness, freshness

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore

Sample = tuple[tuple[str, ...], float]


@dataclass(frozen=True)
class Gauge:
    """One metric family: its samples by label values."""

    name: str
    text: str
    labels: tuple[str, ...]
    samples: list[Sample] = field(default_factory=list)
    kind: str = "gauge"


class QualityGauges:
    """Collects the figures of one store (see the module docs)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self._views: list[ViewFreshness] = []
        self._read_at = -float("inf")

    def collect(self) -> list[Gauge]:
        now = datetime.now(UTC)
        return [*self._freshness(now), *self._monitoring(), *self._logging()]

    def _freshness(self, now: datetime) -> list[Gauge]:
        ttl = self.store.config.monitoring.freshness_cache_seconds
        if time.monotonic() - self._read_at >= ttl:
            self._views = freshness(self.store)
            self._read_at = time.monotonic()
        prefix, label = "pitstop_feature_view_", ("feature_view",)
        rows = [
            ("last_materialization_timestamp_seconds",
             "When the last materialization of the view finished.", "materialized_at"),
            ("materialization_start_timestamp_seconds",
             "Start of the range the last materialization loaded.", "materialized_start"),
            ("materialized_until_timestamp_seconds",
             "The materialization watermark (where materialize-incremental continues).",
             "materialized_until"),
            ("newest_event_timestamp_seconds",
             "The newest event time the view's online table holds.", "newest_event"),
            ("watermark_timestamp_seconds",
             "Stream views: the newest event time folded into the windows.", "watermark"),
        ]  # fmt: skip
        gauges = []
        for metric, text, attribute in rows:
            samples: list[Sample] = [((v.view,), t.timestamp()) for v in self._views
                                     if (t := getattr(v, attribute)) is not None]  # fmt: skip
            gauges.append(Gauge(prefix + metric, text, label, samples))
        stale: list[Sample] = [((v.view,), s) for v in self._views
                               if (s := v.staleness(now)) is not None]  # fmt: skip
        gauges.append(
            Gauge(
                prefix + "staleness_seconds",
                "Seconds since the newest event time online.",
                label,
                stale,
            )
        )
        return gauges

    def _monitoring(self) -> list[Gauge]:
        labels = ("service", "feature")
        psi = Gauge("pitstop_feature_drift_psi", "PSI of the last monitor run.", labels)
        ks = Gauge(
            "pitstop_feature_drift_ks_statistic",
            "Kolmogorov-Smirnov D of the last monitor run (numeric features).",
            labels,
        )
        nulls = Gauge(
            "pitstop_feature_drift_null_rate_change",
            "Change of the null share in the last monitor run.",
            labels,
        )
        breach = Gauge(
            "pitstop_feature_drift_breach",
            "1 when the last monitor run found the feature beyond a threshold.",
            labels,
        )
        mismatch = Gauge(
            "pitstop_feature_mismatch_rate",
            "Online/offline mismatch rate of the last consistency run.",
            labels,
        )
        last = Gauge(
            "pitstop_monitor_last_run_timestamp_seconds",
            "When the last monitor run of the service finished.",
            ("service",),
        )
        repo = self.store.repo_path
        for service in self.store.catalog.snapshot().of(FeatureService).values():
            if service.logging_config is None:
                continue
            summary = load_summary(log_root(service, repo))
            if summary is None:
                continue
            name = service.name
            last.samples.append(((name,), datetime.fromisoformat(summary["finished_at"])
                                 .timestamp()))  # fmt: skip
            for feature, figures in summary.get("features", {}).items():
                for gauge, key in ((psi, "psi"), (ks, "ks_statistic"),
                                   (nulls, "null_rate_change")):  # fmt: skip
                    if figures.get(key) is not None:
                        gauge.samples.append(((name, feature), float(figures[key])))
                breach.samples.append(((name, feature), 1.0 if figures.get("breach") else 0.0))
            for feature, rate in summary.get("mismatch_rates", {}).items():
                mismatch.samples.append(((name, feature), float(rate)))
        return [psi, ks, nulls, breach, mismatch, last]

    def _logging(self) -> list[Gauge]:
        stats = self.store.feature_logs.stats
        return [
            Gauge(f"pitstop_feature_log_{metric}_total", text, ("service",),
                  [((s,), float(n)) for s, n in sorted(table.items())], "counter")
            for metric, text, table in (
                ("requests", "Served requests logged (written).", stats.requests),
                ("rows", "Served rows logged (written).", stats.rows),
                ("dropped", "Sampled requests dropped: the log queue was full.", stats.dropped),
                ("failed", "Sampled requests whose logs could not be written.", stats.failed),
            )
        ]  # fmt: skip
