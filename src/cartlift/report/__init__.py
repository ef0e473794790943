"""The HTML report: any part of cartlift adds `Section` objects; `write_report` writes one offline file.

A part of cartlift joins ``cartlift report`` by defining ``report_sections(store) -> list[Section]``
in its package (see `SECTION_PROVIDERS`).

Examples
--------
>>> import pandas as pd
>>> import plotly.graph_objects as go
>>> from cartlift.report import Section, Table, write_report
>>> fig = go.Figure(go.Bar(x=["a", "b"], y=[3, 5]))
>>> section = Section("My model", figures=[fig], tables=[Table(pd.DataFrame({"k": [1]}), title="k")])
>>> write_report([section], "report.html")  # doctest: +SKIP
"""

from cartlift.report._analytics import (
    SECTION_PROVIDERS,
    abandonment_section,
    analytics_sections,
    clusters_section,
    clv_section,
    collect_sections,
    funnel_sections,
    rfm_section,
)
from cartlift.report._charts import (
    abandonment_figure,
    breakdown_figure,
    clv_figure,
    funnel_figure,
    rfm_figure,
    time_to_convert_figure,
    trend_figure,
)
from cartlift.report._html import render_report, write_report
from cartlift.report._section import Section, Table

__all__ = [
    "SECTION_PROVIDERS",
    "Section",
    "Table",
    "abandonment_figure",
    "abandonment_section",
    "analytics_sections",
    "breakdown_figure",
    "clusters_section",
    "clv_figure",
    "clv_section",
    "collect_sections",
    "funnel_figure",
    "funnel_sections",
    "render_report",
    "rfm_figure",
    "rfm_section",
    "time_to_convert_figure",
    "trend_figure",
    "write_report",
]
