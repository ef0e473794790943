"""Recommendation touches: a purchased product linked to the lists that showed it before the order.

The impression log (``rec_impressions``, written by the service's recommendation routes and by
the outbox for the products put into a message) says which items a list showed to whom and when.
A *line* is one product of an order (the analytics package's order: `ORDER_KEY_SQL`), with its
revenue there (price x quantity). A line is linked to every impression of its product

* shown to the same customer (``user_id``), or, for a list shown to nobody known (an anonymous
  cart), in the same session as the purchase,
* at most ``rec_hours`` before the order (the order's first purchase event),

and *credited* to the last of them (last touch). ``attributed.recommendation`` counts the
credited lines: ``items`` (lines), ``orders`` (orders with one) and ``revenue`` (their revenue).
Each list shown is a separate impression, so a product listed again and again is credited once
per purchase, to the latest list. The same SQL text runs on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cartlift.analytics import ORDER_KEY_SQL
from cartlift.store import REC_ATTRIBUTION_COLUMNS

__all__ = [
    "interval_sql",
    "link_recommendations",
    "recommendation_credit",
    "recommendation_links_sql",
    "recommendation_tables",
]

Runner = Callable[[str], Sequence[Sequence[Any]]]

_LINK_COLUMNS = [c for c in REC_ATTRIBUTION_COLUMNS if c != "computed_at"]


def interval_sql(hours: float) -> str:
    """``hours`` as an interval literal both DuckDB and PostgreSQL read."""
    return f"INTERVAL '{round(hours * 3600)} seconds'"


def recommendation_tables(stored: bool | None = None) -> tuple[str, ...]:
    """The tables recommendation touches read: linking live, from the stored links, or (None) both."""
    return ("rec_impressions",) if stored is False else ("rec_impressions", "rec_attributions")


def recommendation_links_sql(rec_hours: float) -> str:
    """One row per (order line, impression of its product) within the window, with ``credited``."""
    return f"""
WITH rec_lines AS (
    SELECT user_id, {ORDER_KEY_SQL} AS order_key, product_id, min(session_id) AS session_id,
           coalesce(sum(price * quantity), 0) AS revenue
    FROM events WHERE event_type = 'purchase' AND user_id IS NOT NULL AND product_id IS NOT NULL
    GROUP BY user_id, {ORDER_KEY_SQL}, product_id
),
rec_orders AS (
    SELECT user_id, {ORDER_KEY_SQL} AS order_key, min(ts) AS ordered_at
    FROM events WHERE event_type = 'purchase' AND user_id IS NOT NULL
    GROUP BY user_id, {ORDER_KEY_SQL}
),
rec_links AS (
    SELECT l.user_id, l.order_key, o.ordered_at, l.product_id, l.revenue, i.impression_id, i.context,
           i.position, i.source, i.model, i.model_version, i.message_id, i.ts AS touched_at
    FROM rec_lines l JOIN rec_orders o ON o.user_id = l.user_id AND o.order_key = l.order_key
    JOIN rec_impressions i ON i.product_id = l.product_id AND i.ts <= o.ordered_at
         AND o.ordered_at <= i.ts + {interval_sql(rec_hours)}
         AND (i.user_id = l.user_id OR (i.user_id IS NULL AND i.session_id = l.session_id))
),
rec_ranked AS (
    SELECT r.*, row_number() OVER (
               PARTITION BY r.user_id, r.order_key, r.product_id
               ORDER BY r.touched_at DESC, r.impression_id) AS rn
    FROM rec_links r
)
SELECT user_id, order_key, ordered_at, product_id, revenue, impression_id, context, position, source, model,
       model_version, message_id, touched_at, rn = 1 AS credited,
       CAST({rec_hours!r} AS DOUBLE PRECISION) AS rec_window_hours
FROM rec_ranked"""


def link_recommendations(run: Runner, rec_hours: float, stamp: str) -> None:
    """Rewrite ``rec_attributions`` (inside the caller's transaction), stamped ``computed_at = stamp``."""
    run("DELETE FROM rec_attributions")
    run(
        f"INSERT INTO rec_attributions ({', '.join(REC_ATTRIBUTION_COLUMNS)}) "
        f"SELECT {', '.join(_LINK_COLUMNS)}, TIMESTAMP '{stamp}' FROM ({recommendation_links_sql(rec_hours)}) l"
    )


def recommendation_credit(
    run: Runner, rec_hours: float, *, stored: bool, logged: bool = True
) -> dict[str, Any]:
    """Lists shown and the products bought after them, overall and per context.

    Returns ``{"logged", "credited": {orders, items, revenue}, "lists_shown", "items_shown",
    "links", "by_context": [{context, lists, items_shown, orders, items_bought, revenue}]}``;
    ``logged`` is False (and every count 0) where the store has no impression log (a DuckDB
    store no list was ever logged in, or a working copy of a PostgreSQL store).
    """
    if not logged:
        return {
            "logged": False,
            "credited": {"orders": 0, "items": 0, "revenue": 0.0},
            "lists_shown": 0,
            "items_shown": 0,
            "links": 0,
            "by_context": [],
        }
    source = "rec_attributions" if stored else "rec_live"
    head = "" if stored else f"rec_live AS ({recommendation_links_sql(rec_hours)}),"
    order = "user_id || '|' || order_key"
    credited = run(
        f"""WITH {head} x AS (SELECT 1)
        SELECT context, count(DISTINCT {order}), count(*), coalesce(sum(revenue), 0), NULL
        FROM {source} WHERE credited GROUP BY context
        UNION ALL SELECT NULL, count(DISTINCT {order}), count(*), coalesce(sum(revenue), 0),
                         (SELECT count(*) FROM {source})
        FROM {source} WHERE credited"""
    )
    shown = run(
        "SELECT context, count(DISTINCT impression_id), count(*) FROM rec_impressions GROUP BY context"
    )
    total = next(r for r in credited if r[0] is None)
    per = {str(r[0]): r for r in credited if r[0] is not None}
    lists = {str(c): (int(n), int(i)) for c, n, i in shown}
    by_context = [
        {
            "context": c,
            "lists": lists.get(c, (0, 0))[0],
            "items_shown": lists.get(c, (0, 0))[1],
            "orders": int(per[c][1]) if c in per else 0,
            "items_bought": int(per[c][2]) if c in per else 0,
            "revenue": float(per[c][3]) if c in per else 0.0,
        }
        for c in sorted(set(lists) | set(per))
    ]
    return {
        "logged": True,
        "credited": {"orders": int(total[1]), "items": int(total[2]), "revenue": float(total[3])},
        "lists_shown": sum(n for n, _ in lists.values()),
        "items_shown": sum(i for _, i in lists.values()),
        "links": int(total[4] or 0),
        "by_context": by_context,
    }
