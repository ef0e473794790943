"""The context of each abandoned cart, computed in SQL on the store: what the policy knows when it decides.

A cart is *abandoned* when its session has a ``cart_add`` and no ``purchase``; it is identified by
the session id (``cart_id``) and decided on at the session's last event (``ts``). Its lines are
the products whose added minus removed quantity is positive, at their latest price in the
session. The margin uses ``products.cost`` (a product without a cost is assumed to earn
``default_margin_rate`` of its price). Consents come from a ``consents`` table (``user_id, email,
sms``, e.g. exported from the e-mail tool); a customer without a row there has consented to
nothing, so no message is ever sent without a recorded consent.

Customer features use only the customer's earlier sessions (and views up to the cart's moment),
so a context computed for a past cart is the context the policy would have seen then. Among
them, the customer's earlier abandoned carts and how many were bought back within a week (before
this cart) are the only trace of how the customer reacts to an abandoned cart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pandas as pd

from cartlift.errors import DataError
from cartlift.store import EventStore

__all__ = ["CONTEXT_FEATURES", "cart_contexts", "cart_lines"]

CONTEXT_FEATURES: Final[tuple[str, ...]] = (
    "cart_value",
    "margin",
    "margin_rate",
    "cart_items",
    "n_views",
    "session_minutes",
    "hour",
    "weekday",
    "device",
    "channel",
    "past_sessions",
    "past_purchase_sessions",
    "past_cart_sessions",
    "days_since_prev_visit",
    "categories_viewed",
    "price_index",
    "past_abandoned",
    "past_recovered",
    "email_consent",
    "sms_consent",
)
"""Columns of `cart_contexts` that models use (the others identify the cart)."""

KEY_COLUMNS: Final[tuple[str, ...]] = ("cart_id", "user_id", "ts", "cart_cost")


def naive_utc(value: Any) -> pd.Timestamp:
    """A timestamp in UTC without a zone (how the store keeps time); naive input is taken as UTC."""
    ts = pd.Timestamp(value)
    return ts if ts.tzinfo is None else ts.tz_convert("UTC").tz_localize(None)


def _has_table(con: Any, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
        [name],
    ).fetchall()
    return bool(rows[0][0])


def _restrict(con: Any, carts: Sequence[str] | None) -> str:
    if carts is None:
        return ""
    ids = pd.DataFrame({"session_id": pd.Series([str(c) for c in carts], dtype=object)})
    con.register("_act_carts", ids)
    return "AND session_id IN (SELECT session_id FROM _act_carts)"


def cart_contexts(
    store: EventStore,
    carts: Sequence[str] | None = None,
    *,
    default_margin_rate: float = 0.3,
    since: Any = None,
    until: Any = None,
) -> pd.DataFrame:
    """One row per abandoned cart with its identity, money and `CONTEXT_FEATURES`, ordered by time.

    Parameters
    ----------
    store : EventStore
    carts : sequence of str, optional
        Only these cart (session) ids; a cart that is not an abandoned cart of the store is
        simply absent from the result.
    default_margin_rate : float
        Margin assumed for products without a cost.
    since, until : datetime-like, optional
        Only carts abandoned in ``[since, until)`` (UTC).

    Returns
    -------
    DataFrame
        cart_id, user_id, ts (naive UTC), cart_cost and the `CONTEXT_FEATURES`.
    """
    if not 0.0 <= float(default_margin_rate) < 1.0:
        raise DataError(f"default_margin_rate must be in [0, 1). Got {default_margin_rate!r} instead.")
    con = store.con
    only = _restrict(con, carts)
    consents = (
        "SELECT user_id, bool_or(coalesce(email, false)) AS email, bool_or(coalesce(sms, false)) AS sms "
        "FROM consents GROUP BY user_id"
        if _has_table(con, "consents")
        else "SELECT NULL::VARCHAR AS user_id, false AS email, false AS sms WHERE false"
    )
    window = []
    params: list[Any] = []
    if since is not None:
        window.append("s.end_ts >= ?")
        params.append(naive_utc(since))
    if until is not None:
        window.append("s.end_ts < ?")
        params.append(naive_utc(until))
    where = ("WHERE " + " AND ".join(window)) if window else ""
    rate = float(default_margin_rate)
    sql = f"""
WITH
cs AS (SELECT session_id FROM events WHERE true {only} GROUP BY session_id
       HAVING bool_or(event_type = 'cart_add') AND NOT bool_or(event_type = 'purchase')),
ev AS (SELECT e.* FROM events e JOIN cs USING (session_id)),
sess AS (
    SELECT session_id, arg_min(user_id, ts) AS user_id, min(ts) AS start_ts, max(ts) AS end_ts,
           count(*) FILTER (WHERE event_type = 'view') AS n_views,
           arg_max(device, ts) FILTER (WHERE device IS NOT NULL) AS device,
           arg_max(channel, ts) FILTER (WHERE channel IS NOT NULL) AS channel
    FROM ev GROUP BY session_id
),
lines AS (
    SELECT session_id, product_id,
           sum(CASE event_type WHEN 'cart_add' THEN quantity WHEN 'cart_remove' THEN -quantity ELSE 0 END) AS qty,
           arg_max(price, ts) FILTER (WHERE price IS NOT NULL) AS price
    FROM ev WHERE product_id IS NOT NULL GROUP BY session_id, product_id
),
cart AS (
    SELECT l.session_id, sum(l.qty * coalesce(l.price, 0)) AS cart_value, count(*) AS cart_items,
           sum(l.qty * coalesce(p.cost, coalesce(l.price, 0) * (1 - {rate}))) AS cart_cost
    FROM lines l LEFT JOIN products p USING (product_id) WHERE l.qty > 0 GROUP BY l.session_id
),
us AS (
    SELECT user_id, session_id, min(ts) AS start_ts,
           bool_or(event_type = 'purchase') AS bought, bool_or(event_type = 'cart_add') AS carted
    FROM events WHERE user_id IN (SELECT user_id FROM sess) GROUP BY user_id, session_id
),
hist AS (
    SELECT s.session_id, count(u.session_id) AS past_sessions,
           count(u.session_id) FILTER (WHERE u.bought) AS past_purchase_sessions,
           count(u.session_id) FILTER (WHERE u.carted) AS past_cart_sessions,
           date_diff('second', max(u.start_ts), s.start_ts) / 86400.0 AS days_since_prev_visit
    FROM sess s LEFT JOIN us u ON u.user_id = s.user_id AND u.start_ts < s.start_ts
    GROUP BY s.session_id, s.start_ts
),
med AS (SELECT category, median(price) AS med FROM products WHERE price > 0 GROUP BY category),
views AS (
    SELECT v.user_id, v.ts, p.category, v.price / m.med AS ratio
    FROM events v JOIN products p USING (product_id) LEFT JOIN med m USING (category)
    WHERE v.event_type = 'view' AND v.user_id IN (SELECT user_id FROM sess)
),
taste AS (
    SELECT s.session_id, count(DISTINCT v.category) AS categories_viewed, avg(v.ratio) AS price_index
    FROM sess s LEFT JOIN views v ON v.user_id = s.user_id AND v.ts <= s.end_ts
    GROUP BY s.session_id
),
-- the customer's earlier abandoned carts, and those bought back (before this cart) within a week:
-- the only trace of how a customer reacts to an abandoned cart
ab_all AS (
    SELECT session_id, arg_min(user_id, ts) AS user_id, max(ts) AS end_ts FROM events
    WHERE user_id IN (SELECT user_id FROM sess) GROUP BY session_id
    HAVING bool_or(event_type = 'cart_add') AND NOT bool_or(event_type = 'purchase')
),
ab_lines AS (SELECT DISTINCT session_id, product_id FROM events
             WHERE event_type = 'cart_add' AND session_id IN (SELECT session_id FROM ab_all)),
buys AS (SELECT user_id, product_id, ts FROM events
         WHERE event_type = 'purchase' AND user_id IN (SELECT user_id FROM sess)),
ab_rec AS (
    SELECT a.session_id, a.user_id, a.end_ts, min(b.ts) AS recovered_at
    FROM ab_all a JOIN ab_lines l USING (session_id)
    LEFT JOIN buys b ON b.user_id = a.user_id AND b.product_id = l.product_id
                    AND b.ts > a.end_ts AND b.ts <= a.end_ts + INTERVAL 7 DAY
    GROUP BY a.session_id, a.user_id, a.end_ts
),
past AS (
    SELECT s.session_id, count(r.session_id) AS past_abandoned,
           count(r.session_id) FILTER (WHERE r.recovered_at < s.start_ts) AS past_recovered
    FROM sess s LEFT JOIN ab_rec r ON r.user_id = s.user_id AND r.end_ts < s.start_ts
    GROUP BY s.session_id
),
cons AS ({consents})
SELECT s.session_id AS cart_id, s.user_id, s.end_ts AS ts, c.cart_cost,
       c.cart_value, c.cart_value - c.cart_cost AS margin,
       CASE WHEN c.cart_value > 0 THEN (c.cart_value - c.cart_cost) / c.cart_value END AS margin_rate,
       c.cart_items, s.n_views,
       date_diff('millisecond', s.start_ts, s.end_ts) / 60000.0 AS session_minutes,
       hour(s.end_ts) AS hour, isodow(s.end_ts) - 1 AS weekday, s.device, s.channel,
       h.past_sessions, h.past_purchase_sessions, h.past_cart_sessions, h.days_since_prev_visit,
       t.categories_viewed, t.price_index, pa.past_abandoned, pa.past_recovered,
       coalesce(k.email, false) AS email_consent, coalesce(k.sms, false) AS sms_consent
FROM sess s JOIN cart c USING (session_id) JOIN hist h USING (session_id) JOIN taste t USING (session_id)
JOIN past pa USING (session_id)
LEFT JOIN cons k ON k.user_id = s.user_id
{where}
ORDER BY s.end_ts, s.session_id
"""
    try:
        frame = con.execute(sql, params).df()
    finally:
        if carts is not None:
            con.unregister("_act_carts")
    for col in (
        "cart_value",
        "cart_cost",
        "margin",
        "margin_rate",
        "session_minutes",
        "days_since_prev_visit",
        "price_index",
    ):
        frame[col] = frame[col].astype(float)
    for col in (
        "cart_items",
        "n_views",
        "hour",
        "weekday",
        "past_sessions",
        "past_purchase_sessions",
        "past_cart_sessions",
        "categories_viewed",
        "past_abandoned",
        "past_recovered",
    ):
        frame[col] = frame[col].astype(float)
    for col in ("email_consent", "sms_consent"):
        frame[col] = frame[col].astype(bool)
    for col in ("device", "channel", "cart_id", "user_id"):
        frame[col] = frame[col].astype(object)
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame[[*KEY_COLUMNS, *CONTEXT_FEATURES]]


def cart_lines(store: EventStore, carts: Sequence[str]) -> pd.DataFrame:
    """The lines of abandoned carts: cart_id, product_id, quantity (> 0) and latest price."""
    con = store.con
    only = _restrict(con, carts)
    try:
        return con.execute(
            f"""SELECT session_id AS cart_id, product_id,
                       CAST(sum(CASE event_type WHEN 'cart_add' THEN quantity WHEN 'cart_remove' THEN -quantity
                                ELSE 0 END) AS INTEGER) AS quantity,
                       arg_max(price, ts) FILTER (WHERE price IS NOT NULL) AS price
                FROM events WHERE product_id IS NOT NULL {only}
                GROUP BY session_id, product_id HAVING quantity > 0 ORDER BY session_id, product_id"""
        ).df()
    finally:
        con.unregister("_act_carts")
