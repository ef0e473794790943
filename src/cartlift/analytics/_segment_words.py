"""Segments in words: what sets each group of customers apart from the rest, its size and its value.

A sentence reads like "18% of customers: spend 3.1x the others' average (412 vs 133 spent); buy
about every 24 days; price-insensitive (9% price sensitive vs 31%)". The behaviour parts are the
(at most three) features on which the segment differs most from the other customers, in standard
deviations of the log-scaled features, when that difference is at least half a standard deviation;
against the other customers rather than everyone, because a segment holding most customers *is*
the overall mean yet differs clearly from the rest.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

__all__ = ["FEATURE_WORDS", "cadence", "describe_segments"]

FEATURE_WORDS: dict[str, tuple[str, str, str]] = {
    # feature: (verb phrase the ratio follows, unit for the figures, words when the segment has none)
    "sessions": ("visit", "visits", "never visit"),
    "views_per_session": ("look at", "products per visit", "view no products"),
    "cart_adds": ("add to cart", "cart adds", "never add to cart"),
    "orders": ("order", "orders", "have not ordered"),
    "spend": ("spend", "spent", "have spent nothing"),
    "days_since_last_visit": ("have been away", "days since last visit", "were all here on the last day"),
    "categories_viewed": ("browse", "categories", "browse no category"),
    "avg_viewed_price": ("look at prices", "average price viewed", "look at no priced product"),
}
"""The behavioural features and the words a segment that stands out on them is described with."""

MIN_EFFECT: Final = 0.5
"""Standard deviations (log scale) a segment must differ from the rest by for a feature to be named."""

PRICE_GAP: Final = 0.1
"""Difference in the share of price-sensitive customers for a segment to be called price-(in)sensitive."""

NOISE_NAME: Final = "no clear group"


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}" if abs(x) >= 1 else f"{x:.2f}"


def _ratio_phrase(feature: str, mine: float, others: float) -> str:
    verb, unit, none = FEATURE_WORDS[feature]
    figures = f"({_fmt(mine)} vs {_fmt(others)} {unit})"
    if others > 0 and mine > 0:
        r = mine / others
        # below half, a fraction reads better than "0.0x"
        times = f"{r:.1f}x" if r >= 0.5 else f"1/{1 / r:.0f} of"
        return f"{verb} {times} the others' average {figures}"
    if mine <= 0:  # a ratio of 0 reads oddly: "order 0.0x the others' average"
        return f"{none} {figures}"
    return f"{verb} while the others do not {figures}"


def cadence(orders_per_customer: float, span_days: float) -> str:
    """How often a segment buys, from its mean orders over the observed days, in a marketer's words."""
    if orders_per_customer <= 0:
        return "have not bought"
    every = span_days / orders_per_customer
    if every <= 10:
        return f"buy weekly or more (about every {every:.0f} days)"
    if every <= 45:
        return f"buy about monthly (every {every:.0f} days)"
    if every <= 120:
        return f"buy about quarterly (every {every:.0f} days)"
    if every <= 365:
        return f"buy rarely (about every {every:.0f} days)"
    return "hardly ever buy"


def _price_phrase(sensitive: pd.Series, mask: np.ndarray) -> str | None:
    """Price-sensitive / -insensitive when the segment's share of price-sensitive customers stands out."""
    known = sensitive.notna().to_numpy()
    mine, rest = mask & known, ~mask & known
    if mine.sum() < 5 or rest.sum() < 5:
        return None
    a, b = float(sensitive[mine].mean()), float(sensitive[rest].mean())
    if a - b >= PRICE_GAP:
        return f"price-sensitive ({a:.0%} pick cheaper than they browse vs {b:.0%} of the others)"
    if b - a >= PRICE_GAP:
        return f"price-insensitive ({a:.0%} pick cheaper than they browse vs {b:.0%} of the others)"
    return None


def describe_segments(
    features: pd.DataFrame,
    X: np.ndarray,
    labels: np.ndarray,
    *,
    noise: int | None = None,
    span_days: float | None = None,
    price_sensitive: pd.Series | None = None,
    clv: pd.Series | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Per segment: its size, revenue share, CLV and a sentence saying how it differs from the rest.

    Parameters
    ----------
    features : pandas.DataFrame of shape (n_customers, n_features)
        The raw behaviour (`customer_features`), columns a subset of `FEATURE_WORDS`.
    X : numpy.ndarray of shape (n_customers, n_features)
        The same features log-scaled and standardised (the clustering's matrix).
    labels : numpy.ndarray of shape (n_customers,)
        Segments 0 .. m-1.
    noise : int, optional
        The segment holding customers a density method left unclustered; it is named `NOISE_NAME`.
    span_days : float, optional
        Days the data covers; with it each segment's buying cadence is stated.
    price_sensitive : pandas.Series of bool or NaN, optional
        Per customer (index as ``features``): picks cheaper than they browse; NaN when unknown.
    clv : pandas.Series of float, optional
        Per customer predicted CLV (NaN when unknown).

    Returns
    -------
    profiles : pandas.DataFrame
        One row per segment: cluster (1-based), customers, share, revenue, revenue_share,
        mean_clv (NaN without CLV), clv_share, noise, and the mean of every feature.
    descriptions : list of str
    """
    raw = features.astype(float)
    n = len(raw)
    spend = raw["spend"].to_numpy() if "spend" in raw else np.zeros(n)
    total = spend.sum()
    sens = None if price_sensitive is None else price_sensitive.reindex(raw.index).astype(float)
    value = None if clv is None else clv.reindex(raw.index).to_numpy(dtype=float)
    rows, words = [], []
    for c in range(int(labels.max()) + 1 if n else 0):
        mask = labels == c
        means, others = raw[mask].mean(), raw[~mask].mean()
        z = X[mask].mean(axis=0) - X[~mask].mean(axis=0) if (~mask).any() else np.zeros(X.shape[1])
        parts = [
            _ratio_phrase(f, float(means[f]), float(others[f]))
            for f in (raw.columns[i] for i in np.argsort(-np.abs(z)) if abs(z[i]) >= MIN_EFFECT)
        ][:3] or ["much like the other customers on every feature"]
        if span_days and "orders" in raw and means["orders"] > 0:  # "have not ordered" is said above
            parts.append(cadence(float(means["orders"]), span_days))
        if sens is not None and (phrase := _price_phrase(sens, mask)):
            parts.append(phrase)
        share = mask.sum() / n
        name = f"{NOISE_NAME}, " if c == noise else ""
        words.append(f"{name}{share:.0%} of customers: " + "; ".join(parts))
        seg_value = value[mask] if value is not None else np.array([np.nan])
        rows.append(
            {
                "cluster": c + 1,
                "customers": int(mask.sum()),
                "share": share,
                "revenue": float(spend[mask].sum()),
                "revenue_share": float(spend[mask].sum() / total) if total > 0 else 0.0,
                "mean_clv": float(np.nanmean(seg_value)) if np.isfinite(seg_value).any() else np.nan,
                "clv_share": float(np.nansum(seg_value) / np.nansum(value))
                if value is not None and np.nansum(value) > 0
                else np.nan,
                "noise": c == noise,
                **means.to_dict(),
            }
        )
    return pd.DataFrame(rows), words
