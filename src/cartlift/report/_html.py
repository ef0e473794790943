"""Sections -> one self-contained HTML file (plotly.js inlined once, no network needed to open it)."""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import plotly.graph_objects as go

from cartlift import __version__
from cartlift.errors import InvalidParameterError
from cartlift.report._section import Section, Table

__all__ = ["render_report", "write_report"]

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="cartlift {{ version }}">
<title>{{ title }}</title>
<style>
:root { --fg: #1f2933; --muted: #616e7c; --line: #e4e7eb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
header { padding: 24px 32px 8px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 0 0 12px; color: var(--muted); }
nav { padding: 8px 32px; border-bottom: 1px solid var(--line); font-size: 14px; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
main { padding: 0 32px 48px; }
section { padding: 24px 0 8px; border-bottom: 1px solid var(--line); }
section h2 { margin: 0 0 12px; font-size: 21px; }
.row { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 24px; align-items: start; }
.row.single { grid-template-columns: minmax(0, 1fr); }
@media (max-width: 1000px) { .row { grid-template-columns: minmax(0, 1fr); } }
.figure { min-height: 420px; margin-bottom: 16px; }
.tables { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 8px; width: 100%; }
th, td { overflow-wrap: anywhere; vertical-align: top; }
/* a heading word or a number is never split: beside a long text column they were cut into "Custo|mers" */
th { font-weight: 600; overflow-wrap: break-word; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--line); text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f5f7fa; }
p.caption, p.more { color: var(--muted); font-size: 13px; margin: 0 0 16px; }
.notes p { margin: 4px 0; color: var(--fg); }
.warnings p { margin: 4px 0 8px; padding: 6px 10px; background: #fff4e0; border-left: 4px solid #d98a00; }
footer { padding: 16px 32px; color: var(--muted); font-size: 13px; }
</style>
<script type="text/javascript">{{ plotly_js }}</script>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p>{{ subtitle }}</p>
</header>
<nav>{% for s in sections %}<a href="#{{ s.anchor }}">{{ s.title }}</a>{% endfor %}</nav>
<main>
{% for s in sections %}
<section id="{{ s.anchor }}">
<h2>{{ s.title }}</h2>
{% if s.warnings %}<div class="warnings">{% for w in s.warnings %}<p><strong>Warning:</strong> {{ w }}</p>{% endfor %}</div>{% endif %}
{% if s.notes %}<div class="notes">{% for n in s.notes %}<p>{{ n }}</p>{% endfor %}</div>{% endif %}
<div class="row{% if not (s.figures and s.tables) or s.wide %} single{% endif %}">
{% if s.figures %}<div class="figures">{% for f in s.figures %}<div class="figure">{{ f | safe }}</div>{% endfor %}</div>{% endif %}
{% if s.tables %}<div class="tables">{% for t in s.tables %}{{ t | safe }}{% endfor %}</div>{% endif %}
</div>
</section>
{% endfor %}
</main>
<footer>Written by cartlift {{ version }} on {{ written }} (UTC). Charts are interactive: hover for
values, drag to zoom, double-click to reset. The file needs no network connection.</footer>
</body>
</html>
"""


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    # plotly ships its bundle in the wheel, so the report never points at a CDN
    from plotly.offline import get_plotlyjs

    # a literal "</script>" inside the bundle would end the script element early
    return str(get_plotlyjs()).replace("</script>", "<\\/script>")


def _cell(value: Any, spec: str | None) -> tuple[str, bool]:
    """Text of one table cell and whether it is a number (right-aligned)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, numbers.Number):
        if spec:
            return format(value, spec), True
        if isinstance(value, numbers.Integral):
            return f"{int(value):,}", True
        v = float(value)  # type: ignore[arg-type]
        return (f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"), True
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat(sep=" ").removesuffix(" 00:00:00").removesuffix("T00:00:00"), False
    return str(value), False


_LABELS = {
    "cramers_v": "Cramér's V",
    "cliffs_delta": "Cliff's delta",
    "p_value": "p-value",
    "p_value_adjusted": "p-value (adjusted)",
    "Holm p": "p-value (Holm)",
    "ci_low": "95 % CI low",
    "ci_high": "95 % CI high",
    "recency_days": "Recency (days)",
    "revenue_share": "Share of revenue",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "ece": "Calibration error (ECE)",
    "brier": "Brier score",
    "log_loss": "Log loss",
    "n": "Units",
}


def column_label(name: object) -> str:
    """A person's heading for a column: known names spelled out, others ``snake_case`` -> ``Snake case``."""
    text = str(name)
    if text in _LABELS:
        return _LABELS[text]
    if "_" not in text or "@" in text:
        return text[:1].upper() + text[1:]
    words = text.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def table_html(table: Table) -> str:
    """One `Table` as an escaped HTML table, with its caption and a note on rows left out."""
    frame = table.frame
    shown = frame.head(table.max_rows)
    parts = ["<table>"]
    if table.title:
        parts.append(f"<caption>{html.escape(table.title)}</caption>")
    parts.append(
        "<thead><tr>"
        + "".join(f"<th>{html.escape(column_label(c))}</th>" for c in shown.columns)
        + "</tr></thead>"
    )
    parts.append("<tbody>")
    for row in shown.itertuples(index=False, name=None):
        cells = []
        for col, value in zip(shown.columns, row, strict=True):
            text, num = _cell(value, table.formats.get(str(col)))
            cells.append(
                f'<td class="num">{html.escape(text)}</td>' if num else f"<td>{html.escape(text)}</td>"
            )
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    if len(frame) > len(shown):
        parts.append(f'<p class="more">{len(frame) - len(shown):,} more rows not shown.</p>')
    if table.caption:
        parts.append(f'<p class="caption">{html.escape(table.caption)}</p>')
    return "".join(parts)


def _figure_html(fig: Any, div_id: str) -> str:
    # one visual style for every part's charts: white background, the report's blue first
    if fig.layout.template.layout.plot_bgcolor in (None, "#E5ECF6"):
        fig = go.Figure(fig).update_layout(template="plotly_white")
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            default_height="420px",
            default_width="100%",
            config={"displaylogo": False, "responsive": True},
        )
    )


def render_report(sections: Sequence[Section], *, title: str = "cartlift report", subtitle: str = "") -> str:
    """The report as one HTML string (see `write_report`)."""
    sections = list(sections)
    bad = [type(s).__name__ for s in sections if not isinstance(s, Section)]
    if bad:
        raise InvalidParameterError(
            f"write_report takes a list of cartlift.report.Section. Got {', '.join(sorted(set(bad)))} "
            "among them: wrap charts and tables in Section(title, figures, tables, notes)."
        )
    anchors: dict[str, int] = {}
    rendered = []
    for s in sections:
        # two sections with the same title still need distinct link targets
        n = anchors.get(s.anchor, 0)
        anchors[s.anchor] = n + 1
        anchor = s.anchor if n == 0 else f"{s.anchor}-{n + 1}"
        rendered.append(
            {
                "title": s.title,
                "anchor": anchor,
                "notes": s.notes,
                "warnings": s.warnings,
                "figures": [_figure_html(f, f"{anchor}-fig-{i}") for i, f in enumerate(s.figures)],
                "tables": [table_html(t) for t in s.tables],
                # a table of many columns gets the page's width, under the charts, instead of a cramped column
                "wide": any(len(t.frame.columns) > 4 for t in s.tables),
            }
        )
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        title=title,
        subtitle=subtitle,
        sections=rendered,
        plotly_js=jinja2.utils.markupsafe.Markup(_plotly_js()),
        version=__version__,
        written=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    )


def write_report(
    sections: Sequence[Section],
    out: str | Path,
    *,
    title: str = "cartlift report",
    subtitle: str = "",
) -> Path:
    """Write ``sections`` to one self-contained HTML file and return its path.

    The file embeds plotly.js (about 4.8 MB) once and every chart's data, so it opens offline,
    by e-mail or from a shared drive, with interactive charts (hover, zoom, legend toggles).

    Parameters
    ----------
    sections : sequence of Section
        In the order they should appear (each part of cartlift offers a ``*_sections(store)``
        function, e.g. `cartlift.report.analytics_sections`).
    out : str or Path
        The HTML file to write (parent folders are created).
    title, subtitle : str
        Shown at the top of the page.

    Returns
    -------
    Path
        ``out``.
    """
    path = Path(out)
    text = render_report(sections, title=title, subtitle=subtitle)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
