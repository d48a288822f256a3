"""What a validation found: one :class:`RuleResult` per expectation, in a
:class:`ValidationReport` that prints as text, serialises to JSON and renders as a
self-contained HTML page.

>>> report = store.validate("user_features", df)              # doctest: +SKIP
>>> report.success, [r.expectation for r in report.failures]  # doctest: +SKIP
(False, ["between('age', 0, 130)"])
>>> report.save_html("user_features.html")                     # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RuleResult:
    """One expectation's outcome.

    ``problem`` says why the rule could not run (a missing column, a column of the wrong
    type): such a rule fails. ``samples`` are bad rows (``row``, the row's ``keys``, the
    ``value``) or, for :func:`~pitstop.quality.unique`, repeated values with their ``count``.
    """

    expectation: str
    rule: str
    columns: tuple[str, ...]
    passed: bool
    summary: str
    observed: dict[str, Any] = field(default_factory=dict)
    problem: str = ""
    samples: tuple[dict[str, Any], ...] = ()

    @property
    def unexpected(self) -> int:
        """How many rows broke the rule (0 for batch rules that do not count rows)."""
        return int(self.observed.get("unexpected", self.observed.get("nulls", 0)) or 0)

    def line(self) -> str:
        """One line for people: the rule, what was found and a few bad values."""
        text = f"{self.expectation}: {self.problem or self.summary}"
        if self.samples:
            text += "; e.g. " + ", ".join(_sample_text(s) for s in self.samples)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "rule": self.rule,
            "columns": list(self.columns),
            "passed": self.passed,
            "summary": self.problem or self.summary,
            "observed": {k: _plain(v) for k, v in self.observed.items()},
            "samples": [{k: _plain(v) for k, v in s.items()} for s in self.samples],
        }


def _sample_text(sample: dict[str, Any]) -> str:
    if "count" in sample:
        return f"{show(sample['value'])} ×{sample['count']:,}"
    keys = ", ".join(f"{k} {show(v)}" for k, v in sample.get("keys", {}).items())
    where = f"row {sample['row']}" if "row" in sample else ""
    if keys:
        where = f"{where} ({keys})" if where else keys
    return f"{where}: {show(sample['value'])}" if where else show(sample["value"])


def show(value: Any) -> str:
    """A value as messages print it: null, ISO times, quoted text."""
    if value is None:
        return "null"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={show(v)}" for k, v in value.items()) + ")"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    """JSON-ready: times as ISO text, containers recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and value != value:
        return None
    return value


@dataclass(frozen=True)
class ValidationReport:
    """Every expectation's result on one batch of rows (``target`` names what was checked)."""

    target: str
    rows: int
    results: tuple[RuleResult, ...]
    checked_at: datetime
    seconds: float

    @property
    def success(self) -> bool:
        """True when every expectation held."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def __bool__(self) -> bool:
        return self.success

    def __str__(self) -> str:
        failed = self.failures
        head = (f"{self.target}: {len(self.results) - len(failed)} of {len(self.results)} "
                f"expectations hold on {self.rows:,} rows")  # fmt: skip
        return "\n".join([head, *(f"  - {r.line()}" for r in failed)])

    def raise_for_failures(self, what: str | None = None, *, note: str = "") -> None:
        """Raise :class:`~pitstop.errors.DataQualityError` listing every failed rule (with
        ``what`` instead of the target, and ``note`` after the count) when one failed.

        >>> report.raise_for_failures("raw transactions", note="nothing was written")
        ... # doctest: +SKIP
        """
        from pitstop.errors import DataQualityError

        failed = self.failures
        if not failed:
            return
        head = (f"{what or self.target}: {len(failed)} of {len(self.results)} expectations "
                f"failed on {self.rows:,} rows{'; ' + note if note else ''}:")  # fmt: skip
        raise DataQualityError("\n".join([head, *(f"  - {r.line()}" for r in failed)]), [self])

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "success": self.success,
            "rows": self.rows,
            "checked_at": self.checked_at.isoformat(),
            "seconds": round(self.seconds, 4),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_html(self) -> str:
        """A self-contained HTML page (inline style, no scripts, nothing fetched)."""
        return render_page(f"Validation of {self.target}", _summary_html(self), _rules_html(self))

    def save_html(self, path: str | Path) -> Path:
        """Write :meth:`to_html` to ``path``; returns the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.to_html(), encoding="utf-8")
        return out


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;
color:#1d2330;padding:0 1rem}
h1{font-size:1.4rem;margin:0 0 .4rem}.meta{color:#5b6474;margin-bottom:1.2rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0 1.4rem}
th,td{border-bottom:1px solid #e3e6ec;padding:.45rem .6rem;text-align:left;vertical-align:top}
th{background:#f5f6f9;font-weight:600}code{font:12.5px ui-monospace,Menlo,Consolas,monospace}
.pass{color:#0f7b3d;font-weight:600}.fail{color:#b42318;font-weight:600}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:600}
.ok{background:#dcfae6;color:#0f7b3d}.bad{background:#fee4e2;color:#b42318}
table.samples{margin:.3rem 0 0;width:auto}table.samples td,table.samples th{padding:.15rem .5rem;
font-size:12.5px}
"""


def render_page(title: str, *sections: str) -> str:
    """A complete HTML document with the report style."""
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _summary_html(report: ValidationReport) -> str:
    failed = len(report.failures)
    badge = '<span class="badge ok">all expectations hold</span>'
    if failed:
        badge = f'<span class="badge bad">{failed} of {len(report.results)} failed</span>'
    return (
        f'<p class="meta">{badge} &nbsp; {report.rows:,} rows · checked '
        f"{html.escape(report.checked_at.isoformat(timespec='seconds'))} · "
        f"{report.seconds:.3f} s</p>"
    )


def _rules_html(report: ValidationReport) -> str:
    rows = []
    for r in report.results:
        status = '<span class="pass">pass</span>' if r.passed else '<span class="fail">FAIL</span>'
        rows.append(
            f"<tr><td>{status}</td><td><code>{html.escape(r.expectation)}</code></td>"
            f"<td>{html.escape(r.problem or r.summary)}</td><td>{_samples_html(r)}</td></tr>"
        )
    return (
        "<table><thead><tr><th>result</th><th>expectation</th><th>found</th>"
        f"<th>examples</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _samples_html(result: RuleResult) -> str:
    if not result.samples:
        return ""
    heads = [k for k in result.samples[0] if k != "keys"]
    keys = list(result.samples[0].get("keys", {}))
    cells = [*keys, *heads]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(show(s.get('keys', {}).get(k)))}</td>" for k in keys)
        + "".join(f"<td>{html.escape(show(s.get(h)) if h != 'row' else str(s[h]))}</td>"
                  for h in heads)
        + "</tr>"
        for s in result.samples
    )  # fmt: skip
    return f'<table class="samples"><tr>{head}</tr>{body}</table>'
