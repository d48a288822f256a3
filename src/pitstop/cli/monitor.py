"""``pitstop monitor`` (drift and consistency of what a feature service serves) and
``pitstop status`` (freshness of the feature views).

``pitstop monitor`` exits with status 0 when every feature is within the thresholds,
:data:`BREACH` (3) when one is beyond (drift, a null-rate change or, with ``--consistency``,
a mismatch rate), and 1 for a mistake, as every command does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pitstop.cli.output import duration, emit, print_table

if TYPE_CHECKING:
    from pitstop.cli.main import Context
    from pitstop.config import DriftThresholds
    from pitstop.quality.monitor import MonitorReport

BREACH = 3
_FORMATS = click.Choice(["table", "json"])
_FLAGS: dict[str, str] = {}  # flag -> threshold


def _threshold(flag: str, key: str, text: str, kind: type = float) -> Any:
    _FLAGS[flag] = key
    return click.option(flag, key, type=kind, default=None, help=f"{text} (default: "
                        f"monitoring.thresholds.{key} of feature_store.yaml).")  # fmt: skip


@click.command()
@click.option("--service", required=True, help="The feature service whose logs to check.")
@click.option("--dataset", help="Reference: this saved dataset (default: the one made from the "
              "service).")  # fmt: skip
@click.option("--since", help="Logs served at or after this time (ISO 8601; naive is UTC).")
@click.option("--until", help="Logs served before this time (default: now).")
@click.option("--reference-since", help="Reference: the logs from this time instead of a "
              "saved dataset.")  # fmt: skip
@click.option("--reference-until", help="Reference: the logs before this time (default: "
              "--since).")  # fmt: skip
@click.option("--consistency", is_flag=True, help="Recompute logged requests offline and "
              "report the mismatch rate per feature instead.")  # fmt: skip
@click.option("--sample", default=10_000, show_default=True,
              help="--consistency: logged rows to recompute at most.")  # fmt: skip
@_threshold("--psi", "psi", "Breach at this PSI")
@_threshold("--ks", "ks_statistic", "Breach at this Kolmogorov-Smirnov D")
@_threshold("--p-value", "p_value", "Significance level of the KS and chi-square tests")
@_threshold("--null-rate", "null_rate_change", "Breach at this change of the null share")
@_threshold("--max-mismatch-rate", "mismatch_rate", "--consistency: breach above this rate")
@_threshold("--min-rows", "min_rows", "Non-null values a side needs for a verdict", int)
@click.option("-o", "--output", "fmt", type=_FORMATS, default="table", show_default=True)
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write an HTML report with histograms to this folder.")  # fmt: skip
@click.pass_obj
def monitor(ctx: Context, service: str, dataset: str | None, since: str | None,
            until: str | None, reference_since: str | None, reference_until: str | None,
            consistency: bool, sample: int, fmt: str, report_dir: str | None,
            **overrides: Any) -> None:  # fmt: skip
    """Compare what a feature service served (its feature logs) with a training set or an
    earlier window: PSI, KS and chi-square tests, null rates. Exit status 3 on a breach."""
    from pitstop.quality.monitor import parse_time

    store = ctx.store
    limits = _thresholds(store.config.monitoring.thresholds, overrides)
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    if consistency:
        from pitstop.quality.consistency import consistency as run_consistency

        report = run_consistency(store, service, since=start, until=end, sample=sample,
                                 thresholds=limits)  # fmt: skip
    else:
        from pitstop.quality.monitor import monitor as run_monitor

        report = run_monitor(store, service, dataset=dataset, thresholds=limits,
                             reference_since=parse_time(reference_since, "--reference-since"),
                             reference_until=parse_time(reference_until, "--reference-until"),
                             since=start, until=end)  # fmt: skip
    index = None
    if report_dir is not None:
        from pitstop.quality.plots import write_report

        index = write_report(report, Path(report_dir))
    if fmt == "json":
        emit({**report.to_dict(), "report": None if index is None else str(index)}, "json")
    else:
        _print_report(report, index)
    if report.breach:
        raise SystemExit(BREACH)


def _thresholds(limits: DriftThresholds, overrides: dict[str, Any]) -> DriftThresholds:
    """``limits`` with the flags given; a value out of range names its flag."""
    from pydantic import ValidationError

    from pitstop.errors import ConfigError

    changed = {k: v for k, v in overrides.items() if v is not None}
    try:
        return limits.model_validate({**limits.model_dump(), **changed})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        flag = {v: k for k, v in _FLAGS.items()}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise ConfigError(f"{flag}: {err['msg'].lower()} (got {err.get('input')!r})") from None


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_report(report: MonitorReport, index: Path | None) -> None:
    click.echo(f"feature service {report.service}")
    click.echo(f"  reference: {report.reference}")
    click.echo(f"  current:   {report.current}")
    if report.features:
        rows = [[f.feature, f.kind, f.status + (" + null rate" if f.null_rate_breach else ""),
                 _number(f.psi, ".3f"), _number(f.ks_statistic, ".3f"),
                 _number(f.ks_p_value if f.ks_p_value is not None else f.chi2_p_value, ".2g"),
                 f"{f.reference_null_rate:.1%} → {f.current_null_rate:.1%}"]
                for f in report.features]  # fmt: skip
        print_table(["feature", "kind", "status", "PSI", "KS D", "p", "nulls"], rows)
        drifted = [f.feature for f in report.features if f.breach]
        click.echo(f"{len(drifted)} of {len(report.features)} features beyond the thresholds"
                   + (f": {', '.join(drifted)}" if drifted else ""))  # fmt: skip
    if report.consistency is not None:
        found = report.consistency
        rows = [[f.feature, f"{f.mismatches:,} / {f.rows:,}", f"{f.rate:.2%}",
                 "; ".join(f"{m.keys}: online {m.online!r}, offline {m.offline!r}"
                           for m in f.examples[:1])]
                for f in found.features]  # fmt: skip
        print_table(["feature", "mismatches", "rate", "example"], rows)
        over = [f.feature for f in found.features if f.rate > found.threshold]
        click.echo(f"{len(over)} of {len(found.features)} features above the mismatch rate "
                   f"{found.threshold:g}" + (f": {', '.join(over)}" if over else ""))  # fmt: skip
    if index is not None:
        click.echo(f"report: {index}")


@click.command()
@click.option("-v", "--views", multiple=True, help="Only these feature views (repeatable).")
@click.option("-o", "--output", "fmt", type=_FORMATS, default="table", show_default=True)
@click.pass_obj
def status(ctx: Context, views: tuple[str, ...], fmt: str) -> None:
    """Freshness of the feature views served online: last materialization and its range, the
    watermark, the newest event time online and how old it is."""
    from pitstop.quality.view_freshness import freshness

    now = datetime.now(UTC)
    found = freshness(ctx.store, list(views) or None)
    if fmt == "json":
        emit([v.to_dict(now) for v in found], "json")
        return

    def when(t: datetime | None) -> str:
        return "-" if t is None else t.isoformat(timespec="seconds").replace("+00:00", "Z")

    rows = []
    for v in found:
        span = "-" if v.materialized_end is None else (
            f"{when(v.materialized_start) if v.materialized_start else '…'} .. "
            f"{when(v.materialized_end)}")  # fmt: skip
        stale = v.staleness(now)
        rows.append([v.view, v.kind, when(v.materialized_at), span, when(v.materialized_until),
                     when(v.newest_event),
                     "-" if stale is None else duration(max(round(stale), 1)),
                     when(v.watermark)])  # fmt: skip
    print_table(["feature view", "kind", "last materialization", "range", "materialized until",
                 "newest event online", "age", "watermark"], rows)  # fmt: skip
