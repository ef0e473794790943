"""The HTML report: any part of cartlift adds `Section` objects; `write_report` writes one offline file.

Each part of cartlift has a section builder here (`analytics_sections`, `experiments_sections`,
`prediction_sections` ...), and `collect_sections` lists them in report order.

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
    abandonment_section,
    analytics_sections,
    clusters_section,
    clv_section,
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
from cartlift.report._collect import collect_sections
from cartlift.report._experiments import experiment_section, experiments_sections, lift_figure, results_table
from cartlift.report._html import render_report, write_report
from cartlift.report._prediction import evaluation_sections, prediction_sections
from cartlift.report._section import Section, Table

__all__ = [
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
    "evaluation_sections",
    "experiment_section",
    "experiments_sections",
    "funnel_figure",
    "funnel_sections",
    "lift_figure",
    "prediction_sections",
    "render_report",
    "results_table",
    "rfm_figure",
    "rfm_section",
    "time_to_convert_figure",
    "trend_figure",
    "write_report",
]
