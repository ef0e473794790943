"""Plotly figures for the analytics results (one function per chart, results in, figure out)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from cartlift.analytics import AbandonmentResult, CLVResult, FunnelResult, RFMResult

__all__ = [
    "abandonment_figure",
    "breakdown_figure",
    "clv_figure",
    "funnel_figure",
    "rfm_figure",
    "share_figure",
    "time_to_convert_figure",
    "trend_figure",
]

BLUE, GREY, RED = "#2563eb", "#9aa5b1", "#dc2626"


def _layout(fig: go.Figure, title: str, **kw: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        height=420,
        **kw,
    )
    return fig


def _errors(
    values: list[float | None], lows: list[float | None], highs: list[float | None]
) -> dict[str, Any]:
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    lo = np.array([np.nan if x is None else x for x in lows], dtype=float)
    hi = np.array([np.nan if x is None else x for x in highs], dtype=float)
    return {
        "type": "data",
        "symmetric": False,
        "array": np.nan_to_num(hi - v),
        "arrayminus": np.nan_to_num(v - lo),
    }


def funnel_figure(result: FunnelResult) -> go.Figure:
    """The funnel: units at each step, with conversion from the first and previous step."""
    names = [s.name for s in result.steps]
    fig = go.Figure(
        go.Funnel(
            y=names,
            x=[s.count for s in result.steps],
            textinfo="value+percent initial+percent previous",
            marker={"color": BLUE},
            hovertemplate="%{y}: %{x:,} " + result.unit + "s<br>%{percentInitial:.2%} of the first step"
            "<br>%{percentPrevious:.2%} of the previous step<extra></extra>",
        )
    )
    return _layout(fig, f"Funnel ({result.unit}s, {result.order})")


def trend_figure(result: FunnelResult) -> go.Figure:
    """Conversion (first to last step) by entry period, with its 95 % interval and the entries behind it."""
    t = result.trend
    x = [p.period for p in t]
    rate = [p.conversion for p in t]
    fig = go.Figure()
    fig.add_bar(x=x, y=[p.entered for p in t], name="entered", marker_color=GREY, opacity=0.35, yaxis="y2")
    fig.add_scatter(
        x=x,
        y=rate,
        mode="lines+markers",
        name="conversion",
        line={"color": BLUE},
        error_y=_errors(rate, [p.ci_low for p in t], [p.ci_high for p in t]),
        hovertemplate="%{x}<br>conversion %{y:.2%}<extra></extra>",
    )
    return _layout(
        fig,
        f"Conversion to {result.steps[-1].name} by {result.trend_period} of entry",
        yaxis={"title": "conversion", "tickformat": ".1%", "rangemode": "tozero"},
        yaxis2={"title": "entered", "overlaying": "y", "side": "right", "showgrid": False},
        legend={"orientation": "h", "y": -0.15},
    )


def time_to_convert_figure(result: FunnelResult) -> go.Figure:
    """How long converting units took from the first to the last step."""
    bins = result.time_to_convert.histogram
    fig = go.Figure(
        go.Bar(
            x=[b.label for b in bins],
            y=[b.count for b in bins],
            marker_color=BLUE,
            hovertemplate="%{x}: %{y:,}<extra></extra>",
        )
    )
    return _layout(
        fig,
        f"Time from {result.steps[0].name} to {result.steps[-1].name}",
        xaxis={"title": "time to convert"},
        yaxis={"title": f"{result.unit}s"},
    )


def breakdown_figure(result: FunnelResult) -> go.Figure:
    """Conversion per breakdown value with 95 % intervals; bars of significant groups (Holm) in colour."""
    if result.breakdown is None:
        raise ValueError("This funnel has no breakdown: compute it with breakdown=<column>.")
    groups = result.breakdown.groups
    rate = [g.conversion for g in groups]
    colours = [
        BLUE if (g.p_value_adjusted is not None and g.p_value_adjusted < 0.05) else GREY for g in groups
    ]
    fig = go.Figure(
        go.Bar(
            x=[g.value for g in groups],
            y=rate,
            marker_color=colours,
            error_y=_errors(rate, [g.ci_low for g in groups], [g.ci_high for g in groups]),
            customdata=[
                [g.entered, g.p_value_adjusted if g.p_value_adjusted is not None else np.nan] for g in groups
            ],
            hovertemplate="%{x}<br>conversion %{y:.2%}<br>entered %{customdata[0]:,}"
            "<br>Holm p %{customdata[1]:.3g}<extra></extra>",
        )
    )
    return _layout(
        fig,
        f"Conversion by {result.breakdown.column} (blue: differs from the rest, Holm p < 0.05)",
        yaxis={"title": "conversion", "tickformat": ".1%", "rangemode": "tozero"},
    )


def abandonment_figure(result: AbandonmentResult) -> go.Figure:
    """Abandonment rate per value of each categorical feature (a menu switches feature)."""
    # only features that split carts into at least two groups have something to show; category first
    feats = sorted((f for f in result.features if len(f.levels) >= 2), key=lambda f: f.feature != "category")
    fig = go.Figure()
    for i, f in enumerate(feats):
        rate = [lv.rate for lv in f.levels]
        fig.add_bar(
            x=[lv.value for lv in f.levels],
            y=rate,
            name=f.label,
            visible=i == 0,
            marker_color=RED,
            error_y=_errors(rate, [lv.ci_low for lv in f.levels], [lv.ci_high for lv in f.levels]),
            customdata=[lv.carts for lv in f.levels],
            hovertemplate="%{x}<br>abandoned %{y:.1%} of %{customdata:,} carts<extra></extra>",
        )
    buttons = [
        {
            "label": f.label,
            "method": "update",
            "args": [
                {"visible": [j == i for j in range(len(feats))]},
                {"title.text": f"Cart abandonment by {f.label}"},
            ],
        }
        for i, f in enumerate(feats)
    ]
    title = f"Cart abandonment by {feats[0].label}" if feats else "Cart abandonment"
    kw: dict[str, Any] = {}
    if len(feats) > 1:
        kw["updatemenus"] = [{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.15, "yanchor": "top"}]
    return _layout(fig, title, yaxis={"title": "abandoned", "tickformat": ".0%", "range": [0, 1]}, **kw)


def rfm_figure(result: RFMResult) -> go.Figure:
    """Customers and revenue share per RFM segment."""
    seg = result.segments
    return share_figure(
        seg["segment"], seg["share"], seg["revenue_share"], seg["customers"],
        "RFM segments: share of customers and of revenue",
    )  # fmt: skip


def share_figure(names: Any, share: Any, revenue_share: Any, customers: Any, title: str) -> go.Figure:
    """Share of customers beside share of revenue, one pair of bars per segment (top to bottom)."""
    fig = go.Figure()
    fig.add_bar(
        y=names,
        x=share,
        orientation="h",
        name="customers",
        marker_color=BLUE,
        customdata=customers,
        hovertemplate="%{y}: %{customdata:,} customers (%{x:.1%})<extra></extra>",
    )
    fig.add_bar(
        y=names,
        x=revenue_share,
        orientation="h",
        name="revenue",
        marker_color=GREY,
        hovertemplate="%{y}: %{x:.1%} of revenue<extra></extra>",
    )
    return _layout(
        fig,
        title,
        barmode="group",
        xaxis={"tickformat": ".0%"},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.15},
    )


def clv_figure(result: CLVResult) -> go.Figure:
    """Distribution of predicted customer value (or of expected purchases without spend data)."""
    c = result.customers
    col, label = ("clv", "predicted value") if "clv" in c else ("expected_purchases", "expected purchases")
    values = c[col].to_numpy(dtype=float)
    cap = float(np.quantile(values, 0.99)) if values.size else 0.0
    fig = go.Figure(
        go.Histogram(
            x=np.minimum(values, cap),
            nbinsx=40,
            marker_color=BLUE,
            hovertemplate=label + " %{x}<br>%{y:,} customers<extra></extra>",
        )
    )
    return _layout(
        fig,
        f"{label.capitalize()} over {result.horizon:g} {result.time_unit} (top 1% shown at the cap)",
        xaxis={"title": label},
        yaxis={"title": "customers"},
    )
