"""The analytics part of the report: funnel, trend, time to convert, abandonment, customers, CLV."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd

from cartlift.analytics import (
    STABLE,
    AbandonmentResult,
    CartAbandonment,
    CLVResult,
    Funnel,
    FunnelResult,
    RFMResult,
    SegmentsResult,
    clv_from_summary,
    format_money,
    rfm,
    segments,
    summary_from_store,
)
from cartlift.errors import CartliftError, DataError
from cartlift.report._charts import (
    abandonment_figure,
    breakdown_figure,
    clv_figure,
    funnel_figure,
    rfm_figure,
    share_figure,
    time_to_convert_figure,
    trend_figure,
)
from cartlift.report._section import Section, Table
from cartlift.store import EventStore

__all__ = ["analytics_sections"]

_PCT = ".1%"


def _period(store: EventStore) -> str:
    first, last = store.con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    if first is None:
        return "day"
    span = last - first
    return "hour" if span <= timedelta(days=3) else "day" if span <= timedelta(days=120) else "week"


def _auto_breakdown(store: EventStore) -> str | None:
    """Category when the catalog has them, else device or channel when the events carry them."""
    checks = (
        ("category", "SELECT count(DISTINCT category) FROM products"),
        ("device", "SELECT count(DISTINCT device) FROM events"),
        ("channel", "SELECT count(DISTINCT channel) FROM events"),
    )
    for name, sql in checks:
        if int(store.con.execute(sql).fetchall()[0][0]) >= 2:
            return name
    return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def funnel_sections(result: FunnelResult) -> list[Section]:
    """Funnel, conversion trend, time to convert and (if any) the breakdown, as report sections."""
    steps = pd.DataFrame(
        {
            "step": [s.name for s in result.steps],
            result.unit + "s": [s.count for s in result.steps],
            "from previous": [s.conversion_from_previous for s in result.steps],
            "from first": [s.conversion_from_first for s in result.steps],
            "95% CI": ["" if s.ci_low is None else f"{s.ci_low:.2%} - {s.ci_high:.2%}" for s in result.steps],
            "median time from previous": [_duration(s.median_seconds_from_previous) for s in result.steps],
        }
    )
    window = "the session" if result.window_seconds is None else _duration(result.window_seconds)
    out = [
        Section(
            "Funnel",
            figures=[funnel_figure(result)],
            tables=[
                Table(
                    steps,
                    title="Steps",
                    formats={"from previous": _PCT, "from first": _PCT},
                    caption="95% CI: Wilson interval of the conversion from the first step.",
                )
            ],
            notes=[
                f"Each {result.unit} counts once, with its attempt that got furthest; steps in {result.order} "
                f"order within {window}.",
                *result.notes,
            ],
        )
    ]
    if result.trend:
        trend = result.trend_frame()[
            ["period", "entered", "converted", "conversion", "ci_low", "ci_high", "complete"]
        ]
        out.append(
            Section(
                "Conversion trend",
                figures=[trend_figure(result)],
                tables=[
                    Table(
                        trend,
                        title=f"By {result.trend_period} of entry",
                        formats={"conversion": _PCT, "ci_low": _PCT, "ci_high": _PCT},
                        caption="complete = no entrant of the period could still convert.",
                    )
                ],
            )
        )
    if len(result.steps) > 1 and result.time_to_convert.converted:
        ttc = result.time_to_convert
        hist = pd.DataFrame(
            {"time": [b.label for b in ttc.histogram], result.unit + "s": [b.count for b in ttc.histogram]}
        )
        out.append(
            Section(
                "Time to convert",
                figures=[time_to_convert_figure(result)],
                tables=[
                    Table(
                        pd.DataFrame(
                            {
                                "measure": ["converted", "median", "90th percentile", "mean"],
                                "value": [
                                    f"{ttc.converted:,}",
                                    _duration(ttc.median_seconds),
                                    _duration(ttc.p90_seconds),
                                    _duration(ttc.mean_seconds),
                                ],
                            }
                        ),
                        title="Summary",
                    ),
                    Table(hist, title="Histogram"),
                ],
            )
        )
    if result.breakdown is not None:
        bd = result.breakdown
        frame = result.breakdown_frame()[
            ["value", "entered", "converted", "conversion", "ci_low", "ci_high", "p_value_adjusted"]
        ].rename(columns={"p_value_adjusted": "Holm p"})
        verdict = (
            "no test possible"
            if bd.p_value is None
            else f"chi-square {bd.chi2:.1f} on {bd.dof} df, p = {bd.p_value:.3g}, Cramér's V = {bd.cramers_v:.3f}"
        )
        out.append(
            Section(
                f"Funnel by {bd.column}",
                figures=[breakdown_figure(result)],
                tables=[
                    Table(
                        frame,
                        title=f"Conversion by {bd.column}",
                        formats={"conversion": _PCT, "ci_low": _PCT, "ci_high": _PCT, "Holm p": ".3g"},
                        caption="Holm p: this group against all others, adjusted for the number of groups.",
                    )
                ],
                notes=[f"Does conversion differ by {bd.column}? {verdict}.", *([bd.note] if bd.note else [])],
            )
        )
    return out


def abandonment_section(result: AbandonmentResult) -> Section:
    """Abandonment rate, value and what distinguishes abandoned carts."""
    feats = result.features_frame()[
        [
            "label",
            "effect_measure",
            "effect_size",
            "magnitude",
            "p_value_adjusted",
            "abandoned_median",
            "converted_median",
        ]
    ].rename(columns={"label": "feature", "effect_measure": "measure", "p_value_adjusted": "Holm p"})
    feats["measure"] = feats["measure"].map({"cliffs_delta": "Cliff's delta", "cramers_v": "Cramér's V"})
    headline = (
        "No carts in this store."
        if not result.carts
        else f"{result.abandoned:,} of {result.carts:,} carts abandoned ({result.abandonment_rate:.1%}, "
        f"95 % CI {result.ci_low:.1%} to {result.ci_high:.1%}), worth {format_money(result.abandoned_value)} "
        f"(carts bought: {format_money(result.converted_value)})."
    )
    return Section(
        "Cart abandonment",
        figures=[abandonment_figure(result)] if result.carts else [],
        tables=[
            Table(
                feats,
                title="What distinguishes abandoned carts",
                formats={"effect_size": ".3f", "Holm p": ".3g"},
                caption="Cliff's delta > 0: abandoned carts tend to have larger values; Cramér's V: strength "
                "of association. Holm p is adjusted over the features.",
            )
        ],
        notes=[headline],
    )


def rfm_section(result: RFMResult) -> Section:
    """RFM segment sizes, value and meaning."""
    return Section(
        "RFM segments",
        figures=[rfm_figure(result)],
        tables=[
            Table(
                result.segments,
                title=f"Segments (recency to {result.as_of:%Y-%m-%d %H:%M})",
                formats={
                    "share": _PCT,
                    "revenue_share": _PCT,
                    "recency_days": ".2f",
                    "frequency": ".2f",
                    "monetary": ",.2f",
                    "revenue": ",.2f",
                },
            )
        ],
        notes=[
            "Scores 1-5 by quintile of recency, frequency (orders) and monetary value; segments from the R x F grid."
        ],
        warnings=[w.message for w in result.warnings],
    )


def clusters_section(result: SegmentsResult) -> Section:
    """Behavioural segments in plain words with their size and value, and the methods compared."""
    if result.clusters is None:
        raise DataError("; ".join(n for n in result.notes if n.startswith("no clusters")) or "no clusters")
    doc = result.to_dict()["clusters"]
    rows = pd.DataFrame(doc["clusters"])
    names = [
        f"segment {c}" + (" (no clear group)" if noise else "")
        for c, noise in zip(rows["cluster"], rows["noise"], strict=True)
    ]
    words = pd.DataFrame(
        {
            # few, short columns: the description needs the width
            "#": rows["cluster"],
            "customers": [f"{n:,} ({s:.0%})" for n, s in zip(rows["customers"], rows["share"], strict=True)],
            "revenue": rows["revenue_share"],
            "CLV": rows["mean_clv"],
            "description": rows["description"],
        }
    )
    methods = pd.DataFrame(
        {
            "method": [
                m["method"] + (" (kept)" if m["method"] == doc["method"] else "") for m in doc["methods"]
            ],
            "setting": [m["setting"] for m in doc["methods"]],
            "segments": [m["segments"] for m in doc["methods"]],
            "noise": [m["noise_share"] for m in doc["methods"]],
            "silhouette": [m["silhouette"] for m in doc["methods"]],
            "stability (ARI)": [_stability_text(m["stability"]) for m in doc["methods"]],
        }
    )
    return Section(
        "Customer clusters",
        figures=[
            share_figure(
                names,
                rows["share"],
                rows["revenue_share"],
                rows["customers"],
                "Behavioural segments: share of customers and of revenue",
            )
        ],
        tables=[
            Table(
                words,
                title=f"{doc['k']} segments{' and customers in no clear group' if doc['noise'] else ''} "
                f"({doc['method']}, setting {doc['setting']})",
                formats={"revenue": _PCT, "CLV": ",.0f"},
            ),
            Table(methods, title="Clustering methods compared", formats={"noise": _PCT, "silhouette": ".3f"}),
        ],
        notes=[
            "k-means, HDBSCAN and a self-organising map on log-scaled behaviour, each with the setting of "
            "best silhouette; stability is the mean adjusted Rand index between refits on bootstrap samples "
            f"(1 = the same segments every time). The method kept has the best silhouette among those with "
            f"stability of at least {STABLE}. Revenue is the segment's share of all spend; CLV the mean "
            "predicted value of its buyers over 52 weeks.",
            *[n for n in result.notes if not n.startswith("no RFM")],
        ],
    )


def _stability_text(st: dict[str, Any] | None) -> str:
    if st is None:
        return "not measured"
    return f"{st['mean_ari']:.3f} [{st['interval'][0]:.3f}, {st['interval'][1]:.3f}]"


def clv_section(result: CLVResult) -> Section:
    """CLV parameters and the distribution of predicted value."""
    # a and b are None when one drop-out probability p fits (their limit): show p instead
    params = {
        f"BG/NBD {k}": v
        for k, v in result.bgnbd.items()
        if k in ("r", "alpha", "a", "b", "p") and v is not None
    }
    if result.gamma_gamma:
        params |= {f"Gamma-Gamma {k}": v for k, v in result.gamma_gamma.items() if k in ("p", "q", "v")}
    d = result.to_dict(top=10)
    top = pd.DataFrame(d["top_customers"])
    return Section(
        "Customer lifetime value",
        figures=[clv_figure(result)],
        tables=[
            Table(
                pd.DataFrame({"parameter": list(params), "value": list(params.values())}),
                title="Fitted parameters",
            ),
            Table(top, title="Top customers", formats={c: ",.2f" for c in top.columns if c != "customer"}),
        ],
        notes=[
            f"Horizon {result.horizon:g} {result.time_unit}; {d['customers']:,} customers, "
            f"{d['repeat_customers']:,} with repeat purchases.",
            *result.notes,
        ],
        warnings=[w.message for w in result.warnings],
    )


def analytics_sections(
    store: EventStore, *, unit: str = "session", breakdown: str | None = "auto"
) -> list[Section]:
    """The analytics sections of the report: funnel, trend, time to convert, breakdown, abandonment, RFM,
    clusters and CLV.

    A part the data cannot support (no purchases, no repeat customers ...) becomes a section
    with a note saying why, so the report always shows what was tried.
    """
    bd = _auto_breakdown(store) if breakdown == "auto" else breakdown
    out = funnel_sections(Funnel(unit=unit, breakdown=bd, trend=_period(store)).compute(store))
    out.append(abandonment_section(CartAbandonment(unit=unit).compute(store)))
    for title, build in (
        ("RFM segments", lambda: rfm_section(rfm(store))),
        (
            "Customer clusters",
            lambda: clusters_section(segments(store, random_state=0)),
        ),
        (
            "Customer lifetime value",
            lambda: clv_section(clv_from_summary(summary_from_store(store), time_unit="days")),
        ),
    ):
        try:
            out.append(build())
        except CartliftError as e:
            out.append(Section(title, notes=[f"Not available for this store: {e}"]))
    return out
