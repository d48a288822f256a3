"""The expectation policy on the write paths: push, ``write_to_online_store`` and materialize.

Every view that receives the batch is checked before anything is written. A view whose
policy is ``reject`` and whose expectations fail stops the whole write: nothing reaches the
online store or the offline data, and :class:`~pitstop.errors.DataQualityError` names the
view, each failed rule with its column and a few bad values. A failing view whose policy is
``warn`` is logged on the ``pitstop.quality`` logger and written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pitstop.definitions.feature_view import FeatureView
from pitstop.errors import DataQualityError
from pitstop.quality.expectations import DEFAULT_POLICY

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.offline.base import OfflineEngine
    from pitstop.quality.report import ValidationReport

logger = logging.getLogger("pitstop.quality")


def policy_of(view: FeatureView, default: str | None) -> str:
    """The view's own policy, else the repo's default (``expectations.policy``)."""
    return view.expectation_policy or default or DEFAULT_POLICY


def check_tables(
    views: Sequence[FeatureView],
    tables: Sequence[pa.Table],
    what: str,
    default_policy: str | None,
    *,
    now: datetime | None = None,
) -> None:
    """Check ``tables[i]`` (rows conformed to ``views[i]``) against the views' expectations;
    raise for the views that reject, log the ones that warn."""
    from pitstop.quality.validation import check

    reports = []
    for view, table in zip(views, tables, strict=True):
        if view.expectations:
            report = check(table, view.expectations, target=f"feature view {view.name!r}",
                           keys=view.join_keys, now=now,
                           timestamp_field=view.timestamp_field)  # fmt: skip
            reports.append((view, report))
    judge(reports, what, default_policy)


def judge(
    reports: Sequence[tuple[FeatureView, ValidationReport]], what: str, default_policy: str | None
) -> None:
    """Apply each view's policy to its report: log the warnings, then raise for the rejects."""
    rejected = []
    for view, report in reports:
        if report.success:
            continue
        if policy_of(view, default_policy) == "reject":
            rejected.append((view, report))
        else:
            logger.warning("%s", message(what, [(view, report)], rejected=False))
    if rejected:
        raise DataQualityError(message(what, rejected, rejected=True), [r for _, r in rejected])


def message(
    what: str, reports: Sequence[tuple[FeatureView, ValidationReport]], *, rejected: bool
) -> str:
    """``what``, the views whose expectations failed and every failed rule with examples."""
    views = ", ".join(repr(v.name) for v, _ in reports)
    label = "feature view" if len(reports) == 1 else "feature views"
    if rejected:
        head = (f"{what}: the rows break the expectations of {label} {views} "
                "(expectation_policy 'reject'); nothing was written:")  # fmt: skip
    else:
        head = (f"{what}: the rows break the expectations of {label} {views} "
                "(expectation_policy 'warn'); written anyway:")  # fmt: skip
    lines = [head]
    for view, report in reports:
        prefix = f"{view.name}: " if len(reports) > 1 else ""
        lines += [f"  - {prefix}{r.line()}" for r in report.failures]
    return "\n".join(lines)


def check_materialize(
    view: FeatureView,
    start: datetime | None,
    end: datetime,
    *,
    offline: OfflineEngine,
    repo_path: Path,
    default_policy: str | None,
) -> None:
    """Check the rows a materialization of ``view`` over ``[start, end]`` writes — the latest
    row per entity; for a windowed stream view the events its tiles are built from — before
    any of them is written."""
    if not view.expectations:
        return
    from dataclasses import replace

    from pitstop.definitions.sources import PushSource
    from pitstop.definitions.stream import StreamFeatureView
    from pitstop.engine.historical import view_join
    from pitstop.quality.validation import check

    join = view_join(view, repo_path)
    if isinstance(view.source, PushSource) and not offline.has_rows(join.source):
        return  # nothing pushed offline yet: nothing to write
    if isinstance(view, StreamFeatureView) and view.aggregations:
        from pitstop.engine.streams import input_columns

        keep = (*view.join_keys, view.timestamp_field)
        cols = [c for c in input_columns(view) if c not in keep]
        events = replace(join, columns=tuple((c, c) for c in cols))
        rows = lambda: offline.range(events, start, end).to_batches()  # noqa: E731
    else:
        rows = lambda: offline.latest(join, start, end).batches  # noqa: E731
    report = check(rows, view.expectations, target=f"feature view {view.name!r}",
                   keys=view.join_keys, timestamp_field=view.timestamp_field)  # fmt: skip
    judge([(view, report)], f"materialize {view.name!r}", default_policy)
