"""A table of web-shop sessions shaped like the public "online shoppers purchasing intention" data.

Columns as in that table (Sakar et al. 2019, UCI): page counts and durations per page type,
bounce and exit rates, page value, closeness to a special day, month, operating system,
browser, region, traffic type, visitor type, a weekend flag and the ``Revenue`` label. The
values come from a latent purchase intent that drives both the label and the page behaviour,
so how well a model can do is a property of the draw, not of any one model. ``separation``
and ``noise`` vary the difficulty: a model comparison is only worth something if it holds
across several draws, never tuned to one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartlift._random import check_random_state

__all__ = ["shopper_sessions"]

_MONTHS = ("Feb", "Mar", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_SHARE = np.array([0.015, 0.155, 0.273, 0.023, 0.035, 0.035, 0.036, 0.045, 0.243, 0.14])
_MONTH_EFFECT = np.array([-2.0, -0.4, -0.4, -0.5, 0.0, 0.1, 0.1, 0.2, 0.6, -0.3])
_VISITORS = ("Returning_Visitor", "New_Visitor", "Other")
_VISITOR_SHARE = np.array([0.855, 0.138, 0.007])
_VISITOR_EFFECT = np.array([0.0, 0.45, -0.3])


def shopper_sessions(
    n: int = 12_330,
    *,
    separation: float = 1.0,
    noise: float = 1.0,
    random_state: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Draw ``n`` sessions with a boolean ``Revenue`` label (about 15 % true at the defaults).

    Parameters
    ----------
    n : int
        Sessions (rows).
    separation : float
        How strongly purchase intent shows in the pages a visitor browses (larger: easier).
    noise : float
        Spread of the page behaviour that is unrelated to intent (larger: harder).
    random_state : int, Generator or None
        Seed.

    Returns
    -------
    DataFrame
        ``Administrative, Administrative_Duration, Informational, Informational_Duration,
        ProductRelated, ProductRelated_Duration, BounceRates, ExitRates, PageValues, SpecialDay,
        Month, OperatingSystems, Browser, Region, TrafficType, VisitorType, Weekend, Revenue``.
    """
    rng = check_random_state(random_state)
    month = rng.choice(len(_MONTHS), n, p=_MONTH_SHARE / _MONTH_SHARE.sum())
    visitor = rng.choice(len(_VISITORS), n, p=_VISITOR_SHARE)
    weekend = rng.random(n) < 0.23
    traffic = rng.choice(20, n, p=_zipf(20, rng)) + 1
    intent = rng.normal(size=n)
    special = np.where(
        np.isin(month, (0, 2)) & (rng.random(n) < 0.35), rng.choice([0.2, 0.4, 0.6, 0.8, 1.0], n), 0.0
    )
    logit = (
        -2.35
        + 1.6 * intent
        + _MONTH_EFFECT[month]
        + _VISITOR_EFFECT[visitor]
        + 0.1 * weekend
        - 0.8 * special
        + 0.15 * np.isin(traffic, (2, 8, 11))
        + 0.8 * ((month == 8) & (visitor == 1))  # interactions: new visitors in November
        - 0.7 * (weekend & (visitor == 0) & (intent < 0))
    )
    revenue = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    # browsing: engaged visitors (high intent, or buyers) see more pages and stay longer
    engaged = separation * (0.5 * intent + 0.6 * revenue) + noise * rng.normal(0, 0.6, n)
    product = rng.negative_binomial(1.2, 1.0 / (1.0 + np.exp(3.2 + 0.45 * engaged) / 1.2))
    admin = rng.poisson(np.exp(0.4 + 0.5 * engaged + noise * rng.normal(0, 0.5, n)))
    info = rng.poisson(np.exp(-1.0 + 0.4 * engaged + noise * rng.normal(0, 0.6, n)))

    def duration(pages: np.ndarray, scale: float) -> np.ndarray:
        seconds = pages * np.exp(np.log(scale) + 0.2 * engaged + rng.normal(0, 0.8, n))
        return np.round(np.where(pages > 0, seconds, 0.0), 2)

    bounce_base = 1.0 / (1.0 + np.exp(3.2 + 0.9 * engaged + noise * rng.normal(0, 0.5, n)))
    bounce = np.where(product + admin + info <= 1, rng.choice([0.0, 0.2], n), bounce_base)
    exit_rate = np.clip(bounce + rng.gamma(2.0, 0.012, n) * np.exp(-0.4 * engaged), 0, 0.2)
    # page value: the value of the pages seen before a transaction, so it mostly shows in buyers
    has_value = rng.random(n) < np.where(revenue, 0.72 * min(1.0, 0.6 + 0.4 * separation), 0.12)
    value = np.where(
        has_value,
        np.exp(rng.normal(np.where(revenue, 3.2, 1.8) + 0.3 * separation * intent, 1.4 * noise, n)),
        0.0,
    )
    return pd.DataFrame(
        {
            "Administrative": admin,
            "Administrative_Duration": duration(admin, 30.0),
            "Informational": info,
            "Informational_Duration": duration(info, 35.0),
            "ProductRelated": product,
            "ProductRelated_Duration": duration(product, 35.0),
            "BounceRates": np.round(bounce, 6),
            "ExitRates": np.round(np.maximum(exit_rate, bounce), 6),
            "PageValues": np.round(value, 4),
            "SpecialDay": special,
            "Month": np.asarray(_MONTHS, dtype=object)[month],
            "OperatingSystems": rng.choice(8, n, p=_zipf(8, rng)) + 1,
            "Browser": rng.choice(13, n, p=_zipf(13, rng)) + 1,
            "Region": rng.choice(9, n, p=_zipf(9, rng)) + 1,
            "TrafficType": traffic,
            "VisitorType": np.asarray(_VISITORS, dtype=object)[visitor],
            "Weekend": weekend,
            "Revenue": revenue,
        }
    )


def _zipf(k: int, rng: np.random.Generator) -> np.ndarray:
    """Shares of ``k`` codes falling off like 1 / rank, in a shuffled order of ranks."""
    share = 1.0 / np.arange(1, k + 1) ** 1.3
    return np.asarray(rng.permutation(share / share.sum()))
