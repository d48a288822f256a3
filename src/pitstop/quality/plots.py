"""The monitor's report folder: an HTML page, an SVG histogram per feature, the JSON.

``write_report(report, folder)`` writes ``index.html`` (the verdict, a table of every
feature's figures and, per feature, its reference and current histograms side by side),
``plots/<feature>.svg`` and ``report.json``. The SVG is drawn here, by hand: bars are shares of
each side's non-null values, so samples of different sizes compare directly. Nothing is
fetched from elsewhere: the folder can be copied, archived or served as it is.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from pitstop.quality.drift import DRIFT, Histogram

if TYPE_CHECKING:
    from pitstop.quality.consistency import ConsistencyReport
    from pitstop.quality.monitor import MonitorReport

REFERENCE_COLOUR, CURRENT_COLOUR = "#4c78a8", "#f58518"
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 36, 64


def write_report(report: MonitorReport, folder: Path) -> Path:
    """Write the report folder; returns the path of its ``index.html``."""
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    sections = []
    for f in report.features:
        if f.histogram is None:
            continue
        name = f"{_file_name(f.feature)}.svg"
        (plots / name).write_text(histogram_svg(f.feature, f.histogram, f.status == DRIFT))
        sections.append(f'<img src="plots/{escape(name)}" alt="histograms of {escape(f.feature)}">')
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=1, default=str))
    index = folder / "index.html"
    index.write_text(_page(report, sections))
    return index


def histogram_svg(title: str, hist: Histogram, drifted: bool = False) -> str:
    """Reference and current shares per bin, side by side, as an SVG document."""
    ref_total, cur_total = max(sum(hist.reference), 1), max(sum(hist.current), 1)
    ref = [n / ref_total for n in hist.reference]
    cur = [n / cur_total for n in hist.current]
    top = max([*ref, *cur, 1e-9])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(ref), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}'
        + (' <tspan fill="#c0392b">(drift)</tspan>' if drifted else "")
        + "</text>",
    ]
    for i in range(5):  # the share axis and its grid
        share = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#e5e5e5"/>')  # fmt: skip
        label = format(share, ".0%" if top >= 0.2 else ".1%")
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):
        x = LEFT + i * slot
        for j, (share, colour) in enumerate(((r, REFERENCE_COLOUR), (c, CURRENT_COLOUR))):
            h = plot_h * share / top
            out.append(f'<rect x="{x + slot * (0.1 + 0.4 * j):.1f}" y="{TOP + plot_h - h:.1f}" '
                       f'width="{slot * 0.4:.1f}" height="{h:.1f}" fill="{colour}">'
                       f"<title>{share:.1%}</title></rect>")  # fmt: skip
    out.extend(_x_labels(hist, slot, TOP + plot_h))
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" '
               f'y2="{TOP + plot_h}" stroke="#333"/>')  # fmt: skip
    legend_x = WIDTH - RIGHT - 190
    for j, (label, colour) in enumerate((("reference", REFERENCE_COLOUR),
                                         ("current", CURRENT_COLOUR))):  # fmt: skip
        x = legend_x + j * 95
        out.append(f'<rect x="{x}" y="7" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="16">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _x_labels(hist: Histogram, slot: float, base: float) -> list[str]:
    out = []
    if hist.categories:
        for i, name in enumerate(hist.categories):
            x, y = LEFT + (i + 0.5) * slot, base + 12
            label = name if len(name) <= 14 else name[:13] + "…"
            turn = f"rotate(-40 {x:.1f} {y:.1f})"
            out.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end" transform="{turn}">'
                       f"{escape(label)}</text>")  # fmt: skip
        return out
    edges = hist.edges
    step = max(1, (len(edges) - 1) // 5)
    for i in range(0, len(edges), step):
        x = LEFT + i * slot
        out.append(f'<text x="{x:.1f}" y="{base + 16:.1f}" text-anchor="middle">'
                   f"{_number(edges[i])}</text>")  # fmt: skip
    return out


def _number(x: float) -> str:
    return f"{x:.4g}"


def _file_name(feature: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", feature)


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.drift, .breach { color: #c0392b; font-weight: bold; }
.ok { color: #27ae60; }
img { margin: 0 1em 1em 0; }
"""


def _page(report: MonitorReport, sections: list[str]) -> str:
    t = report.thresholds
    verdict = ('<span class="breach">threshold breached</span>' if report.breach
               else '<span class="ok">within thresholds</span>')  # fmt: skip
    rows = []
    for f in report.features:
        status = f"{f.status}{' + null rate' if f.null_rate_breach else ''}"
        css = "drift" if f.breach else "ok" if f.status == "ok" else ""
        rows.append(
            f"<tr><td>{escape(f.feature)}</td><td>{escape(f.kind)}</td>"
            f'<td class="{css}">{escape(status)}</td><td>{_cell(f.psi, ".3f")}</td>'
            f"<td>{_cell(f.ks_statistic, '.3f')}</td><td>{_cell(f.ks_p_value, '.2g')}</td>"
            f"<td>{_cell(f.chi2_p_value, '.2g')}</td><td>{f.reference_null_rate:.1%} → "
            f"{f.current_null_rate:.1%}</td><td>{f.reference_rows:,} / {f.current_rows:,}</td></tr>"
        )
    table = ""
    if rows:
        table = ("<table><tr><th>feature</th><th>kind</th><th>status</th><th>PSI</th>"
                 "<th>KS D</th><th>KS p</th><th>χ² p</th><th>nulls</th><th>rows (ref / cur)</th>"
                 "</tr>" + "".join(rows) + "</table>")  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>pitstop monitor: {escape(report.service)}</title><style>{_STYLE}</style></head>
<body>
<h1>Feature service {escape(report.service)}</h1>
<p>{verdict} — {report.finished_at.isoformat(timespec="seconds")}</p>
<p>reference: {escape(report.reference)}<br>current: {escape(report.current)}</p>
<p>thresholds: PSI ≥ {t.psi:g}; KS D ≥ {t.ks_statistic:g}; p &lt; {t.p_value:g};
null-rate change ≥ {t.null_rate_change:g}; mismatch rate &gt; {t.mismatch_rate:g};
at least {t.min_rows} rows</p>
{table}
{_consistency(report.consistency)}
{"".join(sections)}
</body></html>
"""


def _consistency(found: ConsistencyReport | None) -> str:
    if found is None:
        return ""
    rows = []
    for f in found.features:
        css = "breach" if f.rate > found.threshold else "ok"
        examples = "; ".join(f"{m.keys} at {m.at:%Y-%m-%d %H:%M:%S}: online {m.online!r}, "
                             f"offline {m.offline!r}" for m in f.examples)  # fmt: skip
        rows.append(
            f"<tr><td>{escape(f.feature)}</td><td>{f.mismatches:,} / {f.rows:,}</td>"
            f'<td class="{css}">{f.rate:.2%}</td><td>{escape(examples)}</td></tr>'
        )

    return ("<h2>Online/offline consistency</h2><table><tr><th>feature</th><th>mismatches</th>"
            f"<th>rate</th><th>examples</th></tr>{''.join(rows)}</table>")  # fmt: skip
