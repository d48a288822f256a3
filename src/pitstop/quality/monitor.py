"""``pitstop monitor``: the serving logs of a feature service against a reference.

The *current* sample is the service's logged vectors (:mod:`pitstop.quality.feature_log`)
served in ``[since, until)``. The *reference* is a saved dataset (a training set registered
with ``store.create_saved_dataset``, read from its Parquet file) or another window of the logs
(``reference_since``/``reference_until``). Without either, the one saved dataset made from
the service is taken. Each feature of the service found on both sides is compared
(:mod:`pitstop.quality.drift`); logs are read with DuckDB, only the columns and days needed.

The result of the last run of each service is kept next to its logs, in
``<destination>/service=<name>/monitor.json``; the feature server exports it on ``/metrics``
(:mod:`pitstop.quality.gauges`).

>>> report = monitor(store, "churn_model_v1", dataset="churn_train")   # doctest: +SKIP
>>> [f.feature for f in report.features if f.breach]                   # doctest: +SKIP
['user_features__avg_purchase_amount']
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.config import DriftThresholds, resolve_path
from pitstop.definitions.datasets import SavedDataset
from pitstop.definitions.service import FeatureService
from pitstop.errors import DataSourceError, NotFoundError, RetrievalError
from pitstop.quality.drift import FeatureDrift, compare, kind_of
from pitstop.quality.feature_log import LOG_TIMESTAMP, log_files, log_root

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.feature_store import FeatureStore
    from pitstop.quality.consistency import ConsistencyReport
    from pitstop.registry.snapshot import Snapshot

SUMMARY = "monitor.json"


@dataclass(frozen=True)
class ServedFeature:
    """One feature of a service: its log column (``view__feature``), its reference in a
    saved dataset (``view:feature``, the view's own name), its plain name and dtype."""

    column: str
    ref: str
    name: str
    dtype: Any


def served_features(snapshot: Snapshot, service: FeatureService) -> list[ServedFeature]:
    """The features ``service`` serves, in its order."""
    from pitstop.engine.request import build_plan

    plan = build_plan(snapshot, service, True)
    found = {c.name: ServedFeature(c.name, f"{v.view.name}:{c.feature.name}", c.feature.name,
                                   c.feature.dtype)
             for v in plan.views for c in v.columns if c.visible}  # fmt: skip
    found.update({c.name: ServedFeature(c.name, f"{od.view.name}:{c.feature.name}",
                                        c.feature.name, c.feature.dtype)
                  for od in plan.on_demand for c in od.columns})  # fmt: skip
    return [found[name] for name in plan.output_names]


@dataclass
class MonitorReport:
    """One run of the monitor: what was compared with what, and the verdict per feature."""

    service: str
    reference: str
    current: str
    thresholds: DriftThresholds
    features: list[FeatureDrift] = field(default_factory=list)
    consistency: ConsistencyReport | None = None
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0

    @property
    def breach(self) -> bool:
        drift = any(f.breach for f in self.features)
        return drift or (self.consistency is not None and self.consistency.breach)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "reference": self.reference,
            "current": self.current,
            "finished_at": self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "breach": self.breach,
            "thresholds": self.thresholds.model_dump(),
            "features": [f.to_dict() for f in self.features],
            "consistency": None if self.consistency is None else self.consistency.to_dict(),
        }


def monitor(
    store: FeatureStore,
    service: str,
    *,
    dataset: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reference_since: datetime | None = None,
    reference_until: datetime | None = None,
    thresholds: DriftThresholds | None = None,
) -> MonitorReport:
    """Compare ``service``'s logged vectors of ``[since, until)`` with a reference (see the
    module docs); the result is also saved for ``/metrics``."""
    if dataset is not None and (reference_since is not None or reference_until is not None):
        raise RetrievalError(
            "monitor: the reference is either a saved dataset (--dataset) or a window of the "
            "logs (--reference-since/--reference-until), not both"
        )
    started = time.perf_counter()
    settings = store.config.monitoring
    limits = thresholds or settings.thresholds
    snap = store.registry.snapshot(fresh=True)
    svc = snap.get(FeatureService, service)
    root = log_root(svc, store.repo_path)
    features = served_features(snap, svc)
    until = until or datetime.now(UTC)
    current = read_logs(root, [f.column for f in features], since, until)
    if current.num_rows == 0:
        raise DataSourceError(no_logs(svc, root, since, until))
    columns: dict[str, str]  # feature column -> reference column
    if reference_since is None and reference_until is None:
        saved = _dataset(snap, svc, dataset)
        reference, columns = read_dataset(store.repo_path, saved, features)
        described = f"saved dataset {saved.name!r} ({reference.num_rows:,} rows)"
    else:
        ref_until = reference_until or since or until
        reference = read_logs(root, [f.column for f in features], reference_since, ref_until)
        if reference.num_rows == 0:
            raise DataSourceError(no_logs(svc, root, reference_since, ref_until))
        columns = {f.column: f.column for f in features if f.column in reference.column_names}
        described = f"logs {span_text(reference_since, ref_until)} ({reference.num_rows:,} rows)"
    report = MonitorReport(
        svc.name, described, f"logs {span_text(since, until)} ({current.num_rows:,} rows)", limits
    )
    for f in features:
        if f.column in columns and f.column in current.column_names:
            report.features.append(compare(
                f.column, kind_of(f.dtype), reference.column(columns[f.column]),
                current.column(f.column), limits, settings.bins,
            ))  # fmt: skip
    if not report.features:
        raise DataSourceError(f"feature service {svc.name!r}: no feature of the service is in "
                              f"both the logs and the {described}")  # fmt: skip
    report.seconds = time.perf_counter() - started
    save_summary(root, report)
    return report


def _dataset(snapshot: Snapshot, service: FeatureService, name: str | None) -> SavedDataset:
    if name is not None:
        return snapshot.get(SavedDataset, name)
    made = sorted(n for n, d in snapshot.of(SavedDataset).items()
                  if d.feature_service == service.name)  # fmt: skip
    if len(made) == 1:
        return snapshot.of(SavedDataset)[made[0]]
    which = f"saved datasets {made} are made" if made else "no saved dataset is made"
    raise NotFoundError(
        f"feature service {service.name!r}: {which} from it; name the reference with "
        "--dataset NAME (Python: dataset=...) or compare with an earlier window of the logs "
        "with --reference-since/--reference-until"
    )


def read_dataset(
    repo_path: Path, saved: SavedDataset, features: Sequence[ServedFeature]
) -> tuple[pa.Table, dict[str, str]]:
    """The columns of ``saved`` holding ``features``, and the mapping feature column ->
    dataset column."""
    import pyarrow.parquet as pq

    path = resolve_path(saved.storage.path, repo_path)
    if not path.is_file():
        raise DataSourceError(f"saved dataset {saved.name!r}: its rows are missing: {path} does "
                              "not exist; create the saved dataset again")  # fmt: skip
    held = set(saved.features)
    names = set(pq.read_schema(path).names)
    columns = {}
    for f in features:
        column = f.column if saved.full_feature_names else f.name
        if f.ref in held and column in names:
            columns[f.column] = column
    if not columns:
        raise DataSourceError(
            f"saved dataset {saved.name!r} holds none of the service's features "
            f"({', '.join(f.ref for f in features)}); choose a dataset made from the service"
        )
    return pq.read_table(path, columns=sorted(set(columns.values()))), columns


def read_logs(
    root: Path, columns: Sequence[str], since: datetime | None, until: datetime | None
) -> pa.Table:
    """The logged rows in ``[since, until)`` under ``root`` (only the days in the range are
    opened), with ``__log_timestamp`` and those of ``columns`` the logs have."""
    import duckdb
    import pyarrow as pa

    from pitstop.offline.duckdb.sql import quote_ident, quote_str

    files = _log_files(root, since, until)
    if not files:
        return pa.table({LOG_TIMESTAMP: pa.array([], pa.timestamp("us", tz="UTC"))})
    relation = (f"read_parquet([{', '.join(quote_str(str(f)) for f in files)}], "
                "union_by_name = true, hive_partitioning = false)")  # fmt: skip
    where = [f"{quote_ident(LOG_TIMESTAMP)} >= TIMESTAMPTZ '{since.isoformat()}'"] if since else []
    if until:
        where.append(f"{quote_ident(LOG_TIMESTAMP)} < TIMESTAMPTZ '{until.isoformat()}'")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        have = set(con.sql(f"SELECT * FROM {relation} LIMIT 0").to_arrow_table().column_names)
        wanted = [LOG_TIMESTAMP, *(c for c in dict.fromkeys(columns) if c in have)]
        sql = f"SELECT {', '.join(map(quote_ident, wanted))} FROM {relation}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        table: pa.Table = con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise DataSourceError(f"cannot read the feature logs under {root}: {exc}") from exc
    finally:
        con.close()
    return table


def _log_files(root: Path, since: datetime | None, until: datetime | None) -> list[Path]:
    first = since.date() if since else date.min
    last = until.date() if until else date.max
    found: list[Path] = []
    for folder in sorted(root.glob("date=*")):
        try:
            day = date.fromisoformat(folder.name.removeprefix("date="))
        except ValueError:
            continue
        if first <= day <= last:
            found.extend(sorted(folder.glob("*.parquet")))
    return found


def span_text(since: datetime | None, until: datetime | None) -> str:
    def text(t: datetime | None, default: str) -> str:
        return default if t is None else t.isoformat(timespec="seconds")

    return f"{text(since, 'the beginning')} .. {text(until, 'now')}"


def no_logs(service: FeatureService, root: Path, since: datetime | None,
             until: datetime | None) -> str:  # fmt: skip
    return (
        f"feature service {service.name!r}: no logged rows {span_text(since, until)} under {root} "
        f"({log_files(root)}); the service logs what it serves once it has a logging_config "
        "and serves requests (queued rows are written within monitoring.logging.flush_seconds)"
    )


def save_summary(root: Path, report: MonitorReport) -> None:
    """Keep ``report``'s figures as the service's last run (merged with what a run of the
    other kind, drift or consistency, left), for ``/metrics``."""
    path = root / SUMMARY
    summary = load_summary(root) or {}
    summary.update({"service": report.service, "finished_at": report.finished_at.isoformat()})
    if report.features:
        summary["features"] = {
            f.feature: {"status": f.status, "psi": f.psi, "ks_statistic": f.ks_statistic,
                        "null_rate_change": f.null_rate_change, "breach": f.breach}
            for f in report.features
        }  # fmt: skip
    if report.consistency is not None:
        summary["mismatch_rates"] = {f.feature: f.rate for f in report.consistency.features}
    root.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{SUMMARY}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(summary, indent=1))
    os.replace(temporary, path)


def load_summary(root: Path) -> dict[str, Any] | None:
    """The last run's figures saved by :func:`save_summary` (None if there is none)."""
    try:
        found: dict[str, Any] = json.loads((root / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return found


def parse_time(text: str | None, what: str) -> datetime | None:
    """ISO 8601 text (a date, or a time; naive is UTC) as an aware datetime."""
    if text is None:
        return None
    from pitstop.engine.materialize import utc

    try:
        return utc(text, what)
    except RetrievalError as exc:
        raise RetrievalError(f"{exc} or a date such as '2026-11-26'") from None
