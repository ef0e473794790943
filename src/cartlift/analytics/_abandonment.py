"""Cart abandonment analytics: which carts were left, what they were worth, and what sets them apart.

A *cart* is a run of ``cart_add`` events of one unit (session or user). A purchase closes the
cart (adds after it start a new one) and, with a window, so does a pause longer than the window
between two adds. The cart is *converted* when the unit's next purchase comes within the window
of its last add (any time in the session for sessions without a window), *abandoned* otherwise.
Per session without a window (the default) a session's cart is the run it ended with, the store's
one definition of a cart (`cartlift.analytics._definitions`), so the rate and value here are those
of ``cartlift summary``, the report and the dashboard.
The carts are built in one DuckDB query; the comparison of abandoned and converted carts uses
effect sizes (Cliff's delta, Cramér's V) with Holm-adjusted p-values, so that a large sample
does not make a trivial difference look important.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from cartlift._params import Interval, Options, validate_params
from cartlift.analytics._funnel_sql import ORDER_KEY
from cartlift.analytics._stats import chi_square, cliffs_delta, holm, wilson_interval
from cartlift.analytics._steps import parse_bound, parse_duration
from cartlift.errors import InvalidParameterError
from cartlift.store import EventStore

__all__ = ["AbandonmentResult", "CartAbandonment", "FeatureEffect", "LevelRate", "abandoned_carts"]

NUMERIC_FEATURES = {
    "cart_value": "cart value",
    "items": "items in the cart",
    "price_vs_category": "item price / category median price",
}
CATEGORICAL_FEATURES = {
    "new_vs_returning": "new or returning customer",
    "daypart": "time of day (UTC)",
    "device": "device",
    "category": "category of the first item",
}


@dataclass(frozen=True)
class LevelRate:
    """Abandonment among the carts with one value of a categorical feature."""

    value: str
    carts: int
    abandoned: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class FeatureEffect:
    """How one feature differs between abandoned and converted carts.

    For a numeric feature, ``effect_size`` is Cliff's delta of abandoned versus converted carts
    (positive: abandoned carts tend to have larger values) and the p-value is the two-sided
    Mann-Whitney test. For a categorical feature it is Cramér's V with Pearson's chi-square test,
    and ``levels`` gives the abandonment rate per value. ``magnitude`` reads the effect size
    (negligible / small / medium / large); ``p_value_adjusted`` is Holm-adjusted over the features.
    """

    feature: str
    label: str
    kind: str
    effect_measure: str
    effect_size: float | None
    magnitude: str | None
    p_value: float | None
    p_value_adjusted: float | None
    abandoned_median: float | None = None
    converted_median: float | None = None
    levels: tuple[LevelRate, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class AbandonmentResult:
    """Abandoned carts: how many, how much value, and the features that distinguish them."""

    unit: str
    window_seconds: float | None
    carts: int
    abandoned: int
    abandonment_rate: float | None
    ci_low: float | None
    ci_high: float | None
    abandoned_value: float
    converted_value: float
    median_abandoned_value: float | None
    features: tuple[FeatureEffect, ...]
    trend: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``cartlift abandoned-carts --json`` document."""
        return asdict(self)

    def features_frame(self) -> pd.DataFrame:
        """One row per feature: effect size, magnitude and p-values."""
        rows = [{k: v for k, v in asdict(f).items() if k != "levels"} for f in self.features]
        return pd.DataFrame(rows)

    def levels_frame(self, feature: str) -> pd.DataFrame:
        """Abandonment rate per value of a categorical feature."""
        for f in self.features:
            if f.feature == feature:
                return pd.DataFrame([asdict(level) for level in f.levels])
        raise InvalidParameterError(
            f"No categorical feature {feature!r} in this result. Use one of "
            f"{', '.join(f.feature for f in self.features if f.levels)}."
        )


def _delta_magnitude(d: float | None) -> str | None:
    # thresholds of Romano et al. (2006) for Cliff's delta
    if d is None:
        return None
    a = abs(d)
    return "negligible" if a < 0.147 else "small" if a < 0.33 else "medium" if a < 0.474 else "large"


def _v_magnitude(v: float | None, dof_min: int) -> str | None:
    # Cohen's (1988) w thresholds 0.1 / 0.3 / 0.5, with w = V * sqrt(min(r, c) - 1)
    if v is None:
        return None
    w = v * np.sqrt(max(dof_min, 1))
    return "negligible" if w < 0.1 else "small" if w < 0.3 else "medium" if w < 0.5 else "large"


def carts_sql(
    unit: str, window: timedelta | None, start: datetime | None, end: datetime | None
) -> tuple[str, list[Any]]:
    """The query giving one row per cart (see the module docstring for the definition)."""
    unit_col = "e.session_id" if unit == "session" else "e.user_id"
    params: list[Any] = []
    scope = ["e.event_type IN ('cart_add', 'purchase')"]
    if start is not None:
        scope.append("e.ts >= ?")
        params.append(start)
    if end is not None and window is not None:
        scope.append("e.ts < ?")
        params.append(end + window)
    gap = (
        "FALSE"
        if window is None
        else f"e2.ts - e2.prev_ts > INTERVAL '{round(window.total_seconds() * 1e6)} microseconds'"
    )
    late = (
        "FALSE"
        if window is None
        else f"p.ts > c.last_add + INTERVAL '{round(window.total_seconds() * 1e6)} microseconds'"
    )
    entry = []
    if start is not None:
        entry.append("c.first_add >= ?")
        params.append(start)
    if end is not None:
        entry.append("c.first_add < ?")
        params.append(end)
    where = " AND ".join(entry) or "TRUE"
    # a session's cart is the one it ended with (cartlift.analytics._definitions); with a window
    # or per user, every run of adds is a cart of its own
    only_last = "c.bought_before = c.last_run" if unit == "session" and window is None else "TRUE"
    sql = f"""
    WITH ev AS (
        SELECT {unit_col} AS unit, e.user_id, e.session_id, e.ts, {ORDER_KEY} AS k, e.event_type, e.product_id,
               e.price, e.quantity, e.device
        FROM events e WHERE {" AND ".join(scope)}
    ),
    numbered AS (
        -- adds after a purchase belong to a new cart
        -- (the frame of a unit's first row is empty: its sum is NULL, which must count as 0)
        SELECT *, coalesce(sum(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END)
                  OVER (PARTITION BY unit ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS bought_before
        FROM ev
    ),
    adds AS (
        SELECT n.*, lag(n.ts) OVER (PARTITION BY n.unit, n.bought_before ORDER BY n.k) AS prev_ts,
               n.price / nullif(cm.median_price, 0) AS rel_price, p.category
        FROM numbered n
        LEFT JOIN products p ON p.product_id = n.product_id
        LEFT JOIN (SELECT category, median(price) AS median_price FROM products WHERE price > 0 GROUP BY 1) cm
               ON cm.category = p.category
        WHERE n.event_type = 'cart_add'
    ),
    cut AS (
        SELECT e2.*, sum(CASE WHEN e2.prev_ts IS NOT NULL AND {gap} THEN 1 ELSE 0 END)
                     OVER (PARTITION BY e2.unit, e2.bought_before ORDER BY e2.k) AS pause
        FROM adds e2
    ),
    carts AS (
        SELECT unit, bought_before, pause, max(bought_before) OVER (PARTITION BY unit) AS last_run, arg_min(user_id, k) AS user_id, arg_min(session_id, k) AS session_id,
               min(ts) AS first_add, max(ts) AS last_add, max(k) AS last_k,
               coalesce(sum(price * quantity), 0) AS cart_value, sum(quantity) AS items,
               count(DISTINCT product_id) AS products, median(rel_price) AS price_vs_category,
               arg_min(device, k) AS device, arg_min(category, k) AS category
        FROM cut GROUP BY unit, bought_before, pause
    ),
    purchases AS (SELECT unit, k, ts FROM ev WHERE event_type = 'purchase'),
    judged AS (
        SELECT c.*, p.ts AS purchased_at, (p.ts IS NULL OR {late}) AS abandoned
        FROM carts c ASOF LEFT JOIN purchases p ON c.unit = p.unit AND c.last_k < p.k
        WHERE {where} AND {only_last}
    ),
    seen AS (
        SELECT user_id, min(ts) AS first_seen FROM events WHERE user_id IN (SELECT user_id FROM judged) GROUP BY 1
    ),
    started AS (
        SELECT session_id, min(ts) AS started FROM events WHERE session_id IN (SELECT session_id FROM judged) GROUP BY 1
    )
    SELECT j.unit, j.user_id, j.session_id, j.first_add, j.last_add, j.purchased_at, j.abandoned,
           j.cart_value, j.items, j.products, j.price_vs_category,
           CASE WHEN s.first_seen < st.started THEN 'returning' ELSE 'new' END AS new_vs_returning,
           CASE WHEN hour(j.first_add) < 6 THEN '00-06 night' WHEN hour(j.first_add) < 12 THEN '06-12 morning'
                WHEN hour(j.first_add) < 18 THEN '12-18 afternoon' ELSE '18-24 evening' END AS daypart,
           j.device, j.category
    FROM judged j
    LEFT JOIN seen s ON s.user_id = j.user_id
    LEFT JOIN started st ON st.session_id = j.session_id
    ORDER BY j.first_add, j.unit
    """
    return sql, params


@dataclass(frozen=True)
class CartAbandonment:
    """Cart abandonment analysis; `compute` runs it on an event store.

    Parameters
    ----------
    unit : {"session", "user"}
        Whose carts: a session's (a purchase in another session does not convert it) or a user's.
    window : duration, None or "auto"
        How soon after the last add a purchase must come to convert the cart, and the pause
        between adds that starts a new cart. ``"auto"``: 1 day for users, the session for sessions.
    start, end : date, datetime or ISO string, optional
        Carts whose first add falls in ``[start, end)`` (a plain date as ``end`` includes that
        day); purchases after ``end`` still convert them.
    category_limit : int
        Most frequent categories shown in the category comparison (the rest are "(other)").
    confidence : float
        Level of the Wilson intervals.
    """

    unit: str = "session"
    window: timedelta | str | float | None = "auto"
    start: date | datetime | str | None = None
    end: date | datetime | str | None = None
    category_limit: int = 10
    confidence: float = 0.95

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "unit": [Options(("session", "user"))],
        "category_limit": [Interval(int, 1, None)],
        "confidence": [Interval(float, 0, 1, closed="neither")],
    }

    def _window(self) -> timedelta | None:
        if isinstance(self.window, str) and self.window.strip().lower() == "auto":
            return timedelta(days=1) if self.unit == "user" else None
        return parse_duration(self.window, "abandonment window")

    def carts(self, store: EventStore) -> pd.DataFrame:
        """One row per cart: unit, times, ``abandoned``, value, items and the compared features."""
        validate_params(self)
        sql, params = carts_sql(
            self.unit,
            self._window(),
            parse_bound(self.start, end=False, what="start"),
            parse_bound(self.end, end=True, what="end"),
        )
        table = f"_cl_carts_{uuid.uuid4().hex[:12]}"
        store.con.execute(f"CREATE TEMP TABLE {table} AS {sql}", params)
        try:
            return store.con.execute(f"SELECT * FROM {table}").df()
        finally:
            store.con.execute(f"DROP TABLE IF EXISTS {table}")

    def compute(self, store: EventStore) -> AbandonmentResult:
        """Abandonment rate and value, and what distinguishes abandoned carts."""
        carts = self.carts(store)
        window = self._window()
        n = len(carts)
        ab = carts["abandoned"].to_numpy(dtype=bool)
        k = int(ab.sum())
        lo, hi = wilson_interval(k, n, self.confidence)
        values = carts["cart_value"].to_numpy(dtype=float)
        features = self._features(carts, ab)
        trend = []
        if n:
            day = carts["first_add"].dt.floor("D")
            for period, grp in carts.groupby(day):
                m, a = len(grp), int(grp["abandoned"].sum())
                tlo, thi = wilson_interval(a, m, self.confidence)
                trend.append(
                    {
                        "period": period.to_pydatetime(),
                        "carts": m,
                        "abandoned": a,
                        "rate": a / m,
                        "ci_low": tlo,
                        "ci_high": thi,
                    }
                )
        return AbandonmentResult(
            unit=self.unit,
            window_seconds=None if window is None else window.total_seconds(),
            carts=n,
            abandoned=k,
            abandonment_rate=k / n if n else None,
            ci_low=lo,
            ci_high=hi,
            abandoned_value=float(values[ab].sum()),
            converted_value=float(values[~ab].sum()),
            median_abandoned_value=float(np.median(values[ab])) if k else None,
            features=features,
            trend=tuple(trend),
        )

    def _features(self, carts: pd.DataFrame, ab: np.ndarray) -> tuple[FeatureEffect, ...]:
        effects: list[FeatureEffect] = []
        for name, label in NUMERIC_FEATURES.items():
            x = carts[name].to_numpy(dtype=float)
            xa, xc = x[ab & ~np.isnan(x)], x[~ab & ~np.isnan(x)]
            if xa.size == 0 or xc.size == 0:
                effects.append(
                    FeatureEffect(
                        name,
                        label,
                        "numeric",
                        "cliffs_delta",
                        None,
                        None,
                        None,
                        None,
                        note="needs both abandoned and converted carts with a value",
                    )
                )
                continue
            delta = cliffs_delta(xa, xc)
            p = (
                float(stats.mannwhitneyu(xa, xc, alternative="two-sided").pvalue)
                if np.ptp(np.r_[xa, xc]) > 0
                else None
            )
            effects.append(
                FeatureEffect(
                    name,
                    label,
                    "numeric",
                    "cliffs_delta",
                    delta,
                    _delta_magnitude(delta),
                    p,
                    None,
                    abandoned_median=float(np.median(xa)),
                    converted_median=float(np.median(xc)),
                    note=None if p is not None else "every cart has the same value",
                )
            )
        for name, label in CATEGORICAL_FEATURES.items():
            values = (
                carts[name].astype("string").fillna("(unknown)")
                if name in carts
                else pd.Series([], dtype="string")
            )
            if name == "category" and len(values):
                top = values.value_counts().head(self.category_limit).index
                values = values.where(values.isin(top), "(other)")
            levels = []
            table = []
            for value, grp in pd.Series(ab).groupby(values.to_numpy()):
                m, a = len(grp), int(grp.sum())
                llo, lhi = wilson_interval(a, m, self.confidence)
                levels.append(LevelRate(str(value), m, a, a / m, llo, lhi))
                table.append([a, m - a])
            levels.sort(key=lambda lv: -lv.carts)
            test = chi_square(table) if len(table) >= 2 else None
            effects.append(
                FeatureEffect(
                    name,
                    label,
                    "categorical",
                    "cramers_v",
                    None if test is None else test.cramers_v,
                    None if test is None else _v_magnitude(test.cramers_v, 1),
                    None if test is None else test.p_value,
                    None,
                    levels=tuple(levels),
                    note="only one value: nothing to compare" if test is None else test.note,
                )
            )
        adjusted = holm([f.p_value for f in effects])
        return tuple(
            FeatureEffect(**{**{k: getattr(f, k) for k in f.__dataclass_fields__}, "p_value_adjusted": pa})
            for f, pa in zip(effects, adjusted, strict=True)
        )


def abandoned_carts(store: EventStore, **options: Any) -> AbandonmentResult:
    """Cart abandonment on ``store``: shorthand for ``CartAbandonment(**options).compute(store)``."""
    return CartAbandonment(**options).compute(store)
