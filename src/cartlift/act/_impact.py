"""How much more profit the program brings: treated carts against the global holdout.

Every abandoned cart of a holdout phase is in one of two groups, by the holdout's hash: *held out*
(never messaged) or *treated* (the policy decides; "nothing" is one of its choices). The
comparison is intention-to-treat: each cart counts in its assigned group whatever happened to it,
so the difference is causal by randomisation, and a cart is judged once its outcome window has
closed (the newest event is at least ``window_hours`` after it).

Per cart, as the decision log defines it (`cartlift.act._log`)::

    purchased = the customer bought one of the cart's products within window_hours after it
    revenue   = price x quantity of those purchases
    profit    = purchased * (margin - redeemed coupon) - message cost      (margin of the cart)

With :math:`\\bar y_T, \\bar y_H` the mean per-cart profit of treated and held-out carts,

.. math:: \\widehat{\\Delta} = n_T (\\bar y_T - \\bar y_H)

is the program's incremental profit on the treated carts; its interval is ``n_T`` times an interval
of the difference of means that knows what each held-out cart was worth had it been bought (its
margin): the held-out mean is a weighted sum of a few large purchases, so it gets the gamma interval
of Fay and Feuer with Tiwari, Clegg and Zou's upper limit, combined with the treated mean's
Student interval by the MOVER (`cartlift.experiments.rare_event_difference`, whose docstring has
the formulas). Welch's interval (`cartlift.experiments.difference_test`), used before, covered the
simulator's true incremental profit in 88 % of 200 seeds: with ~100 held-out carts it ran short
whenever chance left the big held-out carts unbought. Revenue gets the same with the cart's value;
conversion stays Welch's. Without a ``margin`` (``cart_value``) column, or with a negative one,
profit (revenue) falls back to Welch's interval. The holdout's cost
is :math:`n_H (\\bar y_T - \\bar y_H)`: the profit the held-out carts would have brought had they
been treated. Revenue and conversion are compared the same way. Per action, treated carts that got
the action are compared with the whole holdout: actions are chosen by the policy, not at random,
so these rows describe, they do not prove (``randomised: false``).

Per segment the comparison stays causal: a segment is fixed before the decision (the customer
new or returning, the cart's value in thirds, the device), and the holdout's hash splits every
segment at random as it splits all carts, so within a segment treated and held-out carts are
again two random samples (``randomised: true``). Each segment's incremental profit is its
treated carts times the Welch difference of its mean profit per cart, as for the whole program.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from cartlift.act._context import cart_contexts
from cartlift.act._holdout import Holdout, current_holdout, holdout_phases
from cartlift.act._log import create_decision_tables
from cartlift.config import get_settings
from cartlift.errors import DataError
from cartlift.experiments import SampleStats, difference_test, mean_estimate, rare_event_difference
from cartlift.store import EventStore

__all__ = ["SEGMENT_DIMENSIONS", "impact", "impact_from_frame", "segment_labels"]

WINDOW_HOURS = 168.0


def _interval(
    h: np.ndarray,
    t: np.ndarray,
    scale: float,
    alpha: float,
    if_bought: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Treated minus held-out mean, times ``scale``.

    ``if_bought`` (bought, value if bought, fixed part) of the held-out carts selects the gamma /
    MOVER interval (`cartlift.experiments.rare_event_difference`, which knows what the unbought
    held-out carts were worth); without it, or with a negative value, Welch's interval.
    """
    if if_bought is not None and len(if_bought[1]) and bool((if_bought[1] >= 0).all()):
        bought, worth, fixed = if_bought
        test = rare_event_difference(t, bought, worth, control_offset=fixed, alpha=alpha)
    else:
        test = difference_test(
            mean_estimate(SampleStats.from_values(h)),
            mean_estimate(SampleStats.from_values(t)),
            relative=False,
            alpha=alpha,
        )
    if test.error_code is not None:
        return {
            "estimate": None,
            "ci_low": None,
            "ci_high": None,
            "per_cart": None,
            "p_value": None,
        }, test.error_message
    return {
        "estimate": scale * test.estimate,
        "ci_low": scale * test.ci_low,
        "ci_high": scale * test.ci_high,
        "per_cart": test.estimate,
        "p_value": test.p_value,
    }, None


def _worth_if_bought(carts: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """Per cart: bought, what it brings if bought, and the fixed part, for profit and revenue.

    Profit: a bought cart's profit plus its message cost, an unbought one's ``margin``; the fixed
    part is minus the message cost. Revenue: a bought cart's revenue, an unbought one's
    ``cart_value``. None where the frame lacks the column (Welch's interval then).
    """
    bought = carts["purchased"].to_numpy(dtype=bool)
    cost = carts["cost"].to_numpy(dtype=float) if "cost" in carts else np.zeros(len(carts))
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {"profit": None, "revenue": None}
    if "margin" in carts:
        worth = np.where(
            bought, carts["profit"].to_numpy(dtype=float) + cost, carts["margin"].to_numpy(dtype=float)
        )
        out["profit"] = (bought, worth, -cost)
    if "cart_value" in carts:
        value = pd.to_numeric(carts["cart_value"], errors="coerce").to_numpy(dtype=float)
        worth = np.where(bought, carts["revenue"].to_numpy(dtype=float), value)
        out["revenue"] = (bought, worth, np.zeros(len(carts)))
    for key, got in out.items():
        if got is not None and not np.isfinite(got[1]).all():
            out[key] = None
    return out


def _subset(
    got: tuple[np.ndarray, np.ndarray, np.ndarray] | None, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    return None if got is None else (got[0][mask], got[1][mask], got[2][mask])


def impact_from_frame(
    carts: pd.DataFrame, *, holdout_share: float, currency: str | None = None, alpha: float = 0.05
) -> dict[str, Any]:
    """The impact document from one row per cart.

    Parameters
    ----------
    carts : DataFrame
        ``held_out`` (bool), ``purchased`` (bool), ``revenue``, ``profit`` and ``action`` (the
        decision's action, None for a cart nobody decided for); optionally ``margin`` (the cart's
        profit if bought without a message), ``cart_value`` and ``cost`` (the message's cost, paid
        bought or not), which select the rare-event interval (see the module docstring).
    holdout_share : float
        The phase's share, reported as is.
    currency : str, optional
        Default: ``CARTLIFT_CURRENCY``.
    alpha : float
        The intervals are two-sided at ``1 - alpha``.
    """
    held = carts["held_out"].to_numpy(dtype=bool)
    nh, nt = int(held.sum()), int((~held).sum())
    notes: list[str] = []
    y = {c: carts[c].to_numpy(dtype=float) for c in ("purchased", "revenue", "profit")}
    conv, why = _interval(y["purchased"][held], y["purchased"][~held], 1.0, alpha)
    rate_h = float(y["purchased"][held].mean()) if nh else None
    rate_t = float(y["purchased"][~held].mean()) if nt else None
    conversion = {
        "holdout": rate_h,
        "treated": rate_t,
        "difference": conv["estimate"],
        "ci_low": conv["ci_low"],
        "ci_high": conv["ci_high"],
        "p_value": conv["p_value"],
        "relative_lift": (rate_t / rate_h - 1.0) if rate_h and rate_t is not None else None,
    }
    worth = _worth_if_bought(carts)
    revenue, _ = _interval(
        y["revenue"][held], y["revenue"][~held], float(nt), alpha, _subset(worth["revenue"], held)
    )
    profit, _ = _interval(
        y["profit"][held], y["profit"][~held], float(nt), alpha, _subset(worth["profit"], held)
    )
    if why:
        notes.append(why)
    per_cart = profit["per_cart"]
    cost = None
    if per_cart is not None:
        cost = {
            "estimate": nh * per_cart,
            "ci_low": nh * profit["ci_low"] / nt,
            "ci_high": nh * profit["ci_high"] / nt,
        }
    by_action = []
    actions = carts.loc[~held, "action"].fillna("(not decided)")
    for action, idx in actions.groupby(actions).groups.items():
        rows = carts.loc[idx]
        p = rows["profit"].to_numpy(dtype=float)
        diff, _ = _interval(y["profit"][held], p, 1.0, alpha, _subset(worth["profit"], held))
        by_action.append(
            {
                "action": str(action),
                "carts": len(rows),
                "conversion": float(rows["purchased"].mean()),
                "revenue": float(rows["revenue"].sum()),
                "profit": float(p.sum()),
                "profit_per_cart": float(p.mean()),
                "vs_holdout_per_cart": diff["per_cart"],
                "ci_low": diff["ci_low"],
                "ci_high": diff["ci_high"],
                "randomised": False,
            }
        )
    by_action.sort(key=lambda r: -r["carts"])
    return {
        "holdout_share": float(holdout_share),
        "carts": {"holdout": nh, "treated": nt},
        "conversion": conversion,
        "incremental_revenue": {k: revenue[k] for k in ("estimate", "ci_low", "ci_high", "per_cart")},
        "incremental_profit": {
            k: profit[k] for k in ("estimate", "ci_low", "ci_high", "per_cart", "p_value")
        },
        "holdout_cost": cost,
        "by_action": by_action,
        "by_segment": _by_segment(carts, alpha, currency or get_settings().currency),
        "confidence": 1.0 - alpha,
        "currency": currency or get_settings().currency,
        "notes": notes,
    }


SEGMENT_DIMENSIONS = ("customer", "cart value", "device")
MIN_SEGMENT_CARTS = 10
"""A segment with fewer held-out or treated carts than this gets no interval (only its counts)."""


def segment_labels(carts: pd.DataFrame, currency: str) -> dict[str, pd.Series]:
    """Each cart's segment per dimension, from what was known before the decision.

    ``customer``: new (no purchase session before the cart) or returning, from
    ``past_purchase_sessions``; ``cart value``: thirds of the carts' ``cart_value`` (the bounds in
    the label); ``device``. A dimension whose column is absent is left out.
    """
    out: dict[str, pd.Series] = {}
    if "past_purchase_sessions" in carts:
        past = pd.to_numeric(carts["past_purchase_sessions"], errors="coerce").fillna(0)
        out["customer"] = pd.Series(np.where(past > 0, "returning", "new"), index=carts.index)
    if "cart_value" in carts and len(carts) >= 3:
        value = pd.to_numeric(carts["cart_value"], errors="coerce")
        lo, hi = (float(q) for q in value.quantile([1 / 3, 2 / 3]))
        if lo < hi:
            out["cart value"] = pd.Series(
                pd.Categorical(
                    np.select(
                        [value < lo, value < hi],
                        [f"under {lo:,.0f} {currency}", f"{lo:,.0f}-{hi:,.0f} {currency}"],
                        f"{hi:,.0f} {currency} and more",
                    ),
                    # low to high, not alphabetical
                    categories=[
                        f"under {lo:,.0f} {currency}",
                        f"{lo:,.0f}-{hi:,.0f} {currency}",
                        f"{hi:,.0f} {currency} and more",
                    ],
                ),
                index=carts.index,
            )
    if "device" in carts:
        out["device"] = carts["device"].fillna("unknown").astype(str)
    return out


def _by_segment(carts: pd.DataFrame, alpha: float, currency: str) -> list[dict[str, Any]]:
    """Treated against held-out carts within each segment (randomised: see the module docstring)."""
    if carts.empty:
        return []
    held = carts["held_out"].to_numpy(dtype=bool)
    profit = carts["profit"].to_numpy(dtype=float)
    revenue = carts["revenue"].to_numpy(dtype=float)
    bought = carts["purchased"].to_numpy(dtype=float)
    worth = _worth_if_bought(carts)
    rows: list[dict[str, Any]] = []
    for dimension, labels in segment_labels(carts, currency).items():
        present = set(labels.unique())
        order = (
            list(labels.cat.categories) if isinstance(labels.dtype, pd.CategoricalDtype) else sorted(present)
        )
        for segment in [g for g in order if g in present]:
            inside = (labels == segment).to_numpy()
            h, t = inside & held, inside & ~held
            nt = int(t.sum())
            diff, why = _interval(profit[h], profit[t], float(nt), alpha, _subset(worth["profit"], h))
            rev, _ = _interval(revenue[h], revenue[t], float(nt), alpha, _subset(worth["revenue"], h))
            if min(int(h.sum()), nt) < MIN_SEGMENT_CARTS:
                # a Welch interval on a handful of carts is not worth reading
                why = f"fewer than {MIN_SEGMENT_CARTS} carts in a group: no interval yet"
                diff = {k: None for k in diff}
                rev = {k: None for k in rev}
            rows.append(
                {
                    "dimension": dimension,
                    "segment": str(segment),
                    "carts": {"holdout": int(h.sum()), "treated": nt},
                    "conversion": {
                        "holdout": float(bought[h].mean()) if h.any() else None,
                        "treated": float(bought[t].mean()) if t.any() else None,
                    },
                    "incremental_revenue": {k: rev[k] for k in ("estimate", "ci_low", "ci_high", "per_cart")},
                    "incremental_profit": {k: diff[k] for k in ("estimate", "ci_low", "ci_high", "per_cart")},
                    "randomised": True,
                    "note": why,
                }
            )
    return rows


def _phase(store: EventStore, phase: int | None) -> tuple[Holdout, datetime | None]:
    """The phase and when the next one began (its carts end there)."""
    current = current_holdout(store)
    phases = holdout_phases(store)
    number = current.phase if phase is None else int(phase)
    match = phases[phases["phase"] == number]
    if match.empty:
        raise DataError(
            f"No holdout phase {number}: the store has phases {', '.join(map(str, phases['phase']))}."
        )
    r = match.iloc[0]
    started = None if pd.isna(r["started_at"]) else pd.Timestamp(r["started_at"]).to_pydatetime()
    later = phases[phases["phase"] > number]
    ends = None if later.empty else pd.Timestamp(later.iloc[0]["started_at"]).to_pydatetime()
    return Holdout(share=float(r["share"]), salt=str(r["salt"]), phase=number, started_at=started), ends


def _bound(value: date | datetime | str | None, end: bool) -> datetime | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataError(
            f"Cannot read {value!r} as a date or time; use e.g. 2026-01-31 or 2026-01-31T12:00."
        ) from None
    if ts is pd.NaT:
        raise DataError(f"Cannot read {value!r} as a date or time; use e.g. 2026-01-31 or 2026-01-31T12:00.")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    plain_date = (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and len(value.strip()) == 10
    )
    if end and plain_date:
        ts = ts + pd.Timedelta(days=1)  # a plain date as --to includes that whole day
    return ts.to_pydatetime()


_OUTCOMES = """
WITH c AS (SELECT cart_id, user_id, ts, margin FROM _impact_carts),
lines AS (SELECT DISTINCT session_id, product_id FROM events
          WHERE event_type = 'cart_add' AND product_id IS NOT NULL AND session_id IN (SELECT cart_id FROM c)),
bought AS (
    SELECT c.cart_id, min(p.ts) AS first_purchase_at, sum(p.price * p.quantity) AS revenue
    FROM c JOIN lines l ON l.session_id = c.cart_id
    JOIN events p ON p.event_type = 'purchase' AND p.user_id = c.user_id AND p.product_id = l.product_id
                 AND p.ts > c.ts AND p.ts <= c.ts + to_microseconds(?)
    GROUP BY c.cart_id
),
d AS (SELECT * FROM decisions WHERE cart_id IN (SELECT cart_id FROM c)
      QUALIFY row_number() OVER (PARTITION BY cart_id ORDER BY ts, decision_id) = 1)
SELECT c.cart_id, c.ts, c.margin, b.first_purchase_at IS NOT NULL AS purchased, coalesce(b.revenue, 0) AS revenue,
       d.policy, d.action, coalesce(d.discount_value, 0) AS discount_value, coalesce(d.cost, 0) AS cost,
       (d.coupon_code IS NOT NULL AND b.first_purchase_at <= d.coupon_expires_at) AS redeemed,
       a.held_out AS recorded_held_out
FROM c LEFT JOIN bought b USING (cart_id) LEFT JOIN d USING (cart_id)
LEFT JOIN holdout_assignments a USING (cart_id)
ORDER BY c.ts, c.cart_id
"""


def impact(
    store: EventStore,
    *,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    phase: int | None = None,
    window_hours: float = WINDOW_HOURS,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The program's incremental conversion, revenue and profit against the global holdout.

    Parameters
    ----------
    store : EventStore
    start, end : date, datetime or ISO text, optional
        Carts abandoned in ``[start, end)`` (a plain date as ``end`` includes that day).
    phase : int, optional
        The holdout phase (default: the one in force); only its carts are compared.
    window_hours : float
        How long after a cart a purchase of its products counts (as the decision log's window).
    alpha : float
        Intervals are two-sided at ``1 - alpha``.

    Returns
    -------
    dict
        ``holdout_share``, ``phase``, ``carts`` {holdout, treated, open}, ``conversion``,
        ``incremental_revenue`` and ``incremental_profit`` {estimate, ci_low, ci_high, per_cart},
        ``holdout_cost``, ``by_action``, ``by_segment`` (dimension, segment, carts, conversion,
        incremental revenue and profit with intervals), ``currency``, ``notes`` (see the module docstring).
    """
    create_decision_tables(store)
    holdout, ends = _phase(store, phase)
    lo, hi = _bound(start, end=False), _bound(end, end=True)
    if holdout.started_at is not None:
        lo = holdout.started_at if lo is None else max(lo, holdout.started_at)
    if ends is not None:
        hi = ends if hi is None else min(hi, ends)
    newest = store.con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    contexts = cart_contexts(store, since=lo, until=hi)
    empty = pd.DataFrame(columns=["held_out", "purchased", "revenue", "profit", "action"])
    if contexts.empty or newest is None:
        doc = impact_from_frame(empty, holdout_share=holdout.share, alpha=alpha)
        doc["notes"].append("No abandoned carts in this range yet.")
        return {**doc, "phase": holdout.phase, "carts": {**doc["carts"], "open": 0}}
    store.con.register("_impact_carts", contexts[["cart_id", "user_id", "ts", "margin"]])
    try:
        frame = store.con.execute(_OUTCOMES, [round(float(window_hours) * 3.6e9)]).df()
    finally:
        store.con.unregister("_impact_carts")
    segments = [c for c in ("past_purchase_sessions", "cart_value", "device") if c in contexts]
    frame = frame.merge(contexts[["cart_id", *segments]], on="cart_id", how="left")
    matured = pd.to_datetime(frame["ts"]) + pd.Timedelta(hours=float(window_hours)) <= pd.Timestamp(newest)
    n_open = int((~matured).sum())
    frame = frame[matured.to_numpy()].reset_index(drop=True)
    assigned = holdout.assign(frame["cart_id"])
    recorded = frame["recorded_held_out"]
    frame["held_out"] = np.where(recorded.notna(), recorded.fillna(False).astype(bool), assigned)
    purchased = frame["purchased"].to_numpy(dtype=bool)
    redeemed = frame["redeemed"].fillna(False).to_numpy(dtype=bool)
    frame["profit"] = purchased * (
        frame["margin"].to_numpy(dtype=float) - redeemed * frame["discount_value"].to_numpy(dtype=float)
    ) - frame["cost"].to_numpy(dtype=float)
    doc = impact_from_frame(frame, holdout_share=holdout.share, alpha=alpha)
    messaged = int((frame["held_out"] & frame["action"].notna() & (frame["action"] != "nothing")).sum())
    if messaged:
        doc["notes"].append(
            f"{messaged} held-out cart(s) got a message anyway (decided outside the holdout check): "
            "they still count as held out, which shrinks the measured effect."
        )
    if n_open:
        doc["notes"].append(
            f"{n_open} cart(s) abandoned less than {window_hours:g} hours before the newest event are left out "
            "until their outcome window closes."
        )
    doc["notes"].extend(_policy_note(frame))
    return {
        **doc,
        "phase": holdout.phase,
        "from": None if lo is None else lo.isoformat(),
        "to": None if hi is None else hi.isoformat(),
        "window_hours": float(window_hours),
        "carts": {**doc["carts"], "open": n_open},
    }


def _policy_note(frame: pd.DataFrame) -> list[str]:
    undecided = int((~frame["held_out"] & frame["action"].isna()).sum())
    if not undecided:
        return []
    return [
        f"{undecided} treated cart(s) have no decision yet (counted as treated: the comparison is by assignment)."
    ]
