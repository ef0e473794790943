"""The experiments' part of the HTML report: one section per experiment of the store.

`experiments_sections(store)` is collected by `collect_sections`; ``experiment_section`` builds a
section from any analysis, e.g. one of a file of units. The statistics know nothing of this
module: the arrow points from the report to the experiments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from cartlift.experiments import (
    AnalysisConfig,
    ExperimentResult,
    analyze_funnel,
    analyze_store,
    list_experiments,
    verdicts,
)
from cartlift.report._section import Section, Table
from cartlift.store import EventStore

__all__ = ["experiment_section", "experiments_sections", "lift_figure", "results_table"]

_BLUE, _GREY, _GREEN, _RED = "#2563eb", "#9aa5b1", "#16a34a", "#dc2626"


def results_table(result: ExperimentResult) -> pd.DataFrame:
    """One row per variant: units, mean, lift and its interval, adjusted p-value, chance to beat control."""
    return pd.DataFrame(
        [
            {
                "variant": v.name + (" (control)" if v.is_control else ""),
                "units": v.n,
                "mean": v.mean,
                "lift": v.lift,
                "ci_low": v.ci_low,
                "ci_high": v.ci_high,
                "p_adjusted": v.p_value_adjusted,
                "chance_to_beat_control": v.chance_to_beat_control,
            }
            for v in result.variants
        ]
    )


def lift_figure(results: Mapping[str, ExperimentResult]) -> Any:
    """Forest plot: each variant's lift on each metric with its (adjusted) interval; 0 = no effect."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for metric, result in results.items():
        rows = [v for v in result.variants if not v.is_control]
        lift = [v.lift or 0.0 for v in rows]
        colours = [(_GREEN if (v.lift or 0) > 0 else _RED) if v.significant else _GREY for v in rows]
        fig.add_scatter(
            x=lift,
            y=[f"{metric}: {v.name}" for v in rows],
            mode="markers",
            marker={"color": colours, "size": 11},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(v.ci_high or 0.0) - (v.lift or 0.0) for v in rows],
                "arrayminus": [(v.lift or 0.0) - (v.ci_low or 0.0) for v in rows],
                "color": _BLUE,
            },
            name=metric,
            hovertemplate="%{y}<br>lift %{x:+.2%}<extra></extra>",
        )
    fig.add_vline(x=0, line_color=_GREY, line_dash="dash")
    relative = all(r.relative for r in results.values())
    fig.update_layout(
        title={"text": "Lift against the control (bars: adjusted 95% interval)", "x": 0.01},
        template="plotly_white",
        xaxis={
            "tickformat": "+.1%" if relative else "+,.3g",
            "title": "relative lift" if relative else "difference",
        },
        margin={"l": 160, "r": 20, "t": 60, "b": 50},
        height=160 + 60 * sum(len(r.variants) - 1 for r in results.values()),
        showlegend=False,
    )
    return fig


def experiment_section(
    title: str, results: Mapping[str, ExperimentResult], *, notes: tuple[str, ...] = ()
) -> Any:
    """A report :class:`~cartlift.report.Section` for one experiment's analysed metrics."""

    tables = []
    text: list[str] = list(notes)
    for metric, result in results.items():
        percent_mean = ".2%" if result.binary else ",.2f"
        tables.append(
            Table(
                results_table(result),
                title=f"{metric} ({result.method})",
                caption=(
                    f"Lift is relative to {result.control}; intervals are {round((1 - result.alpha) * 100)}% and "
                    f"adjusted ({result.correction}) so they exclude 0 exactly when p adjusted < {result.alpha}."
                ),
                formats={
                    "mean": percent_mean,
                    "lift": "+.2%",
                    "ci_low": "+.2%",
                    "ci_high": "+.2%",
                    "p_adjusted": ".4f",
                    "chance_to_beat_control": ".1%",
                },
            )
        )
        srm = result.srm
        text.append(
            f"{metric}: sample ratio check p = {srm.p_value:.4f}"
            + (
                " - MISMATCH, do not trust these results until the cause is found."
                if srm.mismatch
                else " (ok)."
            )
        )
        text.extend(f"{metric}: {line}" for line in verdicts(result) if not line.startswith("Sample ratio"))
    return Section(title, figures=[lift_figure(results)], tables=tables, notes=text)


def experiments_sections(store: EventStore) -> list[Section]:
    """One section per experiment with exposures in its current phase: conversion, revenue, funnel steps."""
    rows: list[dict[Any, Any]] = list_experiments(store).to_dict("records")
    sections = []
    for row in rows:
        if int(row["exposed"]) == 0:
            continue
        name = str(row["name"])
        results = {
            "purchased": analyze_store(store, name, "purchased", config=AnalysisConfig()),
            "revenue": analyze_store(store, name, "revenue", config=AnalysisConfig()),
        }
        funnel = analyze_funnel(store, name)
        results.update({f"reached {step}": r for step, r in funnel.items() if step != "purchase"})
        notes = (
            f"Phase {row['phase']} (salt {row['salt']!r}): {int(row['exposed']):,} exposed users, "
            f"{int(row['holdout']):,} in the "
            "holdout. Metrics count each exposed user's events from their first exposure on; every funnel step "
            "is over all exposed users.",
        )
        sections.append(experiment_section(f"Experiment: {name}", results, notes=notes))
    return sections
