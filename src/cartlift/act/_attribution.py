"""Attribution: each order linked to the messages before it, and credited to one of them.

An *order* is the analytics package's (`cartlift.analytics.ORDER_KEY_SQL`: the purchase's
``order_id``, else one order per session and instant); its time is its first purchase event, its
revenue the price x quantity of its purchase events. A *touch* is a message of the outbox that was
sent to the same customer before the order:

click-through
    the customer clicked the message (``message_events``) at most ``click_hours`` before the order;
view-through
    the message was sent at most ``view_hours`` before the order and no click of it qualifies
    (``view_hours = 0`` turns view-through off).

Every qualifying (order, message) pair is one row of ``attributions`` (its touch is the message's
last click in the click window, else its sending). Each order is *credited* to exactly one of its
rows: the last click, else the last view (last touch, clicks first: the usual rule of e-mail
tools). The decision behind the credited message earns the order::

    attributed_revenue = sum of its credited orders' revenue
    attributed_profit  = attributed_revenue * margin / cart_value      (the cart's margin rate)
                         - discount_value  if a coupon was issued and the first credited order
                                           came before it expired
                         - cost                                        (paid either way)

which ``decision_outcomes`` carries beside its cart-window outcome (``attributed_orders``,
``attributed_revenue``, ``attributed_profit``). Attribution says which message came before a
purchase, not that it caused it: the global holdout (`cartlift.act.impact`) answers that.

recommendation
    a list shown to the customer (the impression log ``rec_impressions``: the service's
    recommendation routes and the products put into a message) listed a product of the order at
    most ``rec_hours`` before it (`cartlift.act._rec_attribution`). This touch is per product, not
    per order: each bought product is credited to the last list that showed it, with that
    product's revenue in the order, in ``rec_attributions``. It is reported beside the message
    touches (``attributed.recommendation``), never added to them: an order credited to a message
    can also hold a recommended product.

The SQL is set-based and plain enough for DuckDB and PostgreSQL alike; windows are written into
it as interval literals, so one text runs on either connection (`attribute` rewrites the table in
one transaction, `attribution_summary` reads the same links live).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cartlift.act._rec_attribution import (
    interval_sql,
    link_recommendations,
    recommendation_credit,
    recommendation_tables,
)
from cartlift.analytics import ORDER_KEY_SQL
from cartlift.config import get_settings
from cartlift.errors import InvalidParameterError
from cartlift.store import ATTRIBUTION_COLUMNS, EventStore

__all__ = [
    "AttributionWindows",
    "attribute",
    "attribution_links_sql",
    "attribution_summary",
    "parse_window",
]

Runner = Callable[[str], Sequence[Sequence[Any]]]
"""Runs one SQL text (no parameters) and returns its rows: a DuckDB store or a PostgreSQL connection."""

_UNITS = {"m": 1 / 60, "min": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}


def parse_window(text: str | float) -> float:
    """A window as hours: ``7d``, ``24h``, ``90m``, ``2w`` or a bare number of hours.

    Examples
    --------
    >>> parse_window("7d"), parse_window("1.5h"), parse_window(12)
    (168.0, 1.5, 12.0)
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        hours = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(min|m|h|d|w)?\s*", str(text).lower())
        if match is None:
            raise InvalidParameterError(
                f"A window is a number with a unit, e.g. 7d, 24h, 90m or 2w (a bare number is hours). Got {text!r}."
            )
        hours = float(match.group(1)) * _UNITS[match.group(2) or "h"]
    if not 0 <= hours <= 24 * 365:
        raise InvalidParameterError(f"A window must be between 0 and 365 days. Got {text!r}.")
    return hours


@dataclass(frozen=True)
class AttributionWindows:
    """How long after a click (``click_hours``) or a sending (``view_hours``) an order is credited,
    and after a list showed a product (``rec_hours``) its purchase is."""

    click_hours: float
    view_hours: float
    rec_hours: float = 24.0

    def __post_init__(self) -> None:
        if not self.click_hours > 0:
            raise InvalidParameterError(f"The click window must be longer than 0. Got {self.click_hours!r}.")
        if not self.view_hours >= 0:
            raise InvalidParameterError(f"The view window cannot be negative. Got {self.view_hours!r}.")
        if not self.rec_hours > 0:
            raise InvalidParameterError(
                f"The recommendation window must be longer than 0. Got {self.rec_hours!r}."
            )

    @classmethod
    def resolve(
        cls,
        click: str | float | None = None,
        view: str | float | None = None,
        rec: str | float | None = None,
    ) -> AttributionWindows:
        """The windows given, else ``CARTLIFT_ATTRIBUTION_CLICK_HOURS`` / ``..._VIEW_HOURS`` / ``..._REC_HOURS``."""
        settings = get_settings()
        return cls(
            click_hours=settings.attribution_click_hours if click is None else parse_window(click),
            view_hours=settings.attribution_view_hours if view is None else parse_window(view),
            rec_hours=settings.attribution_rec_hours if rec is None else parse_window(rec),
        )


def _interval(hours: float) -> str:
    return interval_sql(hours)


_LINK_COLUMNS = [c for c in ATTRIBUTION_COLUMNS if c != "computed_at"]


def attribution_links_sql(windows: AttributionWindows) -> str:
    """One row per (order, message) pair within the windows, with ``credited`` (see the module docstring)."""
    view = (
        f"""SELECT o.*, s.message_id, s.decision_id, s.cart_id, s.action, s.channel,
                  'view' AS touch, s.sent_at AS touched_at
           FROM orders o JOIN sent s ON s.user_id = o.user_id AND s.sent_at <= o.ordered_at
                AND o.ordered_at <= s.sent_at + {_interval(windows.view_hours)}
           WHERE NOT EXISTS (SELECT 1 FROM click_links k WHERE k.user_id = o.user_id
                             AND k.order_key = o.order_key AND k.message_id = s.message_id)"""
        if windows.view_hours > 0
        else "SELECT * FROM click_links WHERE false"
    )
    return f"""
WITH orders AS (
    SELECT user_id, {ORDER_KEY_SQL} AS order_key, min(ts) AS ordered_at,
           coalesce(sum(price * quantity), 0) AS revenue
    FROM events WHERE event_type = 'purchase' AND user_id IS NOT NULL
    GROUP BY user_id, {ORDER_KEY_SQL}
),
sent AS (
    SELECT message_id, decision_id, cart_id, user_id, action, channel, sent_at
    FROM messages WHERE status = 'sent' AND sent_at IS NOT NULL
),
click_links AS (
    SELECT o.user_id, o.order_key, o.ordered_at, o.revenue, s.message_id, s.decision_id, s.cart_id,
           s.action, s.channel, 'click' AS touch, max(e.ts) AS touched_at
    FROM orders o JOIN sent s ON s.user_id = o.user_id
    JOIN message_events e ON e.message_id = s.message_id AND e.kind = 'click'
         AND e.ts <= o.ordered_at AND o.ordered_at <= e.ts + {_interval(windows.click_hours)}
    GROUP BY o.user_id, o.order_key, o.ordered_at, o.revenue, s.message_id, s.decision_id, s.cart_id,
             s.action, s.channel
),
links AS (SELECT * FROM click_links UNION ALL {view}),
ranked AS (
    SELECT l.*, row_number() OVER (
               PARTITION BY l.user_id, l.order_key
               ORDER BY CASE WHEN l.touch = 'click' THEN 0 ELSE 1 END, l.touched_at DESC, l.message_id) AS r
    FROM links l
)
SELECT user_id, order_key, ordered_at, revenue, message_id, decision_id, cart_id, action, channel, touch,
       touched_at, r = 1 AS credited, CAST({windows.click_hours!r} AS DOUBLE PRECISION) AS click_window_hours,
       CAST({windows.view_hours!r} AS DOUBLE PRECISION) AS view_window_hours
FROM ranked"""


# per decision: its credited orders and what they earned (the module docstring's formula)
_CREDIT = """credit AS (
    SELECT decision_id, count(*) AS orders, sum(revenue) AS revenue, min(ordered_at) AS first_at
    FROM {source} WHERE credited GROUP BY decision_id
)"""

_PROFIT = """CASE WHEN cr.decision_id IS NULL THEN 0
     ELSE cr.revenue * coalesce(d.margin / nullif(d.cart_value, 0), 0)
          - CASE WHEN d.coupon_code IS NOT NULL AND cr.first_at <= d.coupon_expires_at
                 THEN coalesce(d.discount_value, 0) ELSE 0 END END - coalesce(d.cost, 0)"""


def decision_credit_sql(source: str = "attributions") -> tuple[str, str]:
    """The ``credit`` CTE over ``source`` and the attributed-profit expression over ``cr`` and ``d``."""
    return _CREDIT.format(source=source), _PROFIT


class _Connection:
    """A DuckDB store or a psycopg connection, for the few statements `attribute` runs."""

    def __init__(self, target: Any) -> None:
        self.duck: Any = target.con if isinstance(target, EventStore) else None
        self.pg: Any = None if isinstance(target, EventStore) else target

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.duck is not None:
            return self.duck.execute(sql).fetchall()
        with self.pg.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.pg is not None:
            with self.pg.transaction():
                yield
            return
        self.duck.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.duck.execute("ROLLBACK")
            raise
        self.duck.execute("COMMIT")


def _ensure_tables(target: Any) -> None:
    # a PostgreSQL store has every declared table from its first connection; a DuckDB file makes them here
    if isinstance(target, EventStore):
        target.create_tables(
            ("messages", "message_events", "decisions", "attributions", *recommendation_tables())
        )


def attribute(
    target: Any,
    *,
    click: str | float | None = None,
    view: str | float | None = None,
    now: datetime | None = None,
    rec: str | float | None = None,
) -> dict[str, Any]:
    """Rewrite the store's ``attributions`` from its orders and messages, and ``rec_attributions``
    from its orders and recommendation impressions; return the summary.

    Parameters
    ----------
    target : EventStore or psycopg.Connection
        A DuckDB store, or a connection to a PostgreSQL store (the same SQL runs on both).
    click, view : str or float, optional
        The click-through and view-through windows (``7d``, ``24h``, hours as a number); default
        the settings ``CARTLIFT_ATTRIBUTION_CLICK_HOURS`` (168) and ``..._VIEW_HOURS`` (24).
    rec : str or float, optional
        The recommendation window; default ``CARTLIFT_ATTRIBUTION_REC_HOURS`` (24).
    now : datetime, optional
        Stamped as ``computed_at`` (default: now, naive UTC).

    Returns
    -------
    dict
        `attribution_summary` of the rows written.
    """
    windows = AttributionWindows.resolve(click, view, rec)
    _ensure_tables(target)
    con = _Connection(target)
    stamp = (now or datetime.now(UTC)).replace(tzinfo=None).isoformat(sep=" ")
    columns = ", ".join(ATTRIBUTION_COLUMNS)
    with con.transaction():
        # rewritten whole: the windows may have changed, and messages and purchases keep arriving
        con.rows("DELETE FROM attributions")
        con.rows(
            f"INSERT INTO attributions ({columns}) SELECT {', '.join(_LINK_COLUMNS)}, "
            f"TIMESTAMP '{stamp}' FROM ({attribution_links_sql(windows)}) links"
        )
        link_recommendations(con.rows, windows.rec_hours, stamp)
    return _summary(con.rows, windows, stored=True)


def attribution_summary(
    run: Runner | EventStore, windows: AttributionWindows | None = None, *, stored: bool = False
) -> dict[str, Any] | None:
    """Orders, revenue and profit credited to messages, overall and per action and channel.

    Parameters
    ----------
    run : callable or EventStore
        Runs one SQL text and returns rows (the service passes its storage's), or a DuckDB store.
    windows : AttributionWindows, optional
        Default: the settings'.
    stored : bool
        Read the ``attributions`` table as last written instead of linking live.

    Returns
    -------
    dict or None
        None when the store has no outbox (or, ``stored``, no attributions) yet. Otherwise ``click_window_hours``,
        ``view_window_hours``, ``orders`` and ``revenue`` (all of the store), ``attributed``
        {orders, revenue, share_of_revenue, click {orders, revenue}, view {orders, revenue}},
        ``linked_orders`` (orders with any touch), ``messages`` {sent, clicked, with_orders},
        ``decisions`` {with_orders, attributed_revenue, attributed_profit}, ``by_action`` and ``currency``;
        for recommendations ``rec_window_hours``, ``attributed.recommendation`` {orders, items, revenue}
        (bought products credited to the last list that showed them) and ``recommendations``
        (`cartlift.act._rec_attribution.recommendation_credit`).
    """
    if isinstance(run, EventStore):
        store = run
        tables = {r[0] for r in store.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        needed = {"messages", "message_events", "decisions", *(("attributions",) if stored else ())}
        if not needed <= tables:  # read-only stores too: nothing is created here
            return None
        logged = set(recommendation_tables(stored)) <= tables
        run = lambda sql: store.con.execute(sql).fetchall()  # noqa: E731
        return _summary(run, windows or AttributionWindows.resolve(), stored=stored, logged=logged)
    return _summary(run, windows or AttributionWindows.resolve(), stored=stored)


def _summary(
    run: Runner, windows: AttributionWindows, *, stored: bool, logged: bool = True
) -> dict[str, Any]:
    source = "attributions" if stored else "links"
    head = "" if stored else f"links AS ({attribution_links_sql(windows)}),"
    credit, profit = decision_credit_sql(source)
    total_orders, total_revenue = run(
        f"SELECT count(DISTINCT user_id || '|' || {ORDER_KEY_SQL}), coalesce(sum(price * quantity), 0) "
        "FROM events WHERE event_type = 'purchase' AND user_id IS NOT NULL"
    )[0]
    kinds = run(
        f"""WITH {head} x AS (SELECT 1)
        SELECT touch, count(*), coalesce(sum(revenue), 0) FROM {source} WHERE credited GROUP BY touch"""
    )
    linked = run(
        f"WITH {head} x AS (SELECT 1) SELECT count(DISTINCT user_id || '|' || order_key) FROM {source}"
    )
    by_action = run(
        f"""WITH {head} {credit},
        clicks AS (SELECT DISTINCT message_id FROM message_events WHERE kind = 'click')
        SELECT m.action, m.channel, count(*), count(c.message_id), count(cr.decision_id),
               coalesce(sum(cr.orders), 0), coalesce(sum(cr.revenue), 0), coalesce(sum({profit}), 0)
        FROM messages m LEFT JOIN decisions d ON d.decision_id = m.decision_id
        LEFT JOIN credit cr ON cr.decision_id = m.decision_id
        LEFT JOIN clicks c ON c.message_id = m.message_id
        WHERE m.status = 'sent' GROUP BY m.action, m.channel ORDER BY count(*) DESC, m.action, m.channel"""
    )
    per_kind = {str(k): {"orders": int(n), "revenue": float(r)} for k, n, r in kinds}
    recs = recommendation_credit(run, windows.rec_hours, stored=stored, logged=logged)
    orders = sum(v["orders"] for v in per_kind.values())
    revenue = sum(v["revenue"] for v in per_kind.values())
    rows = [
        {
            "action": str(a),
            "channel": str(ch),
            "sent": int(n),
            "clicked": int(k),
            "messages_with_orders": int(w),
            "orders": int(o),
            "revenue": float(r),
            "profit": float(p),
        }
        for a, ch, n, k, w, o, r, p in by_action
    ]
    return {
        "click_window_hours": windows.click_hours,
        "view_window_hours": windows.view_hours,
        "orders": int(total_orders),
        "revenue": float(total_revenue),
        "attributed": {
            "orders": orders,
            "revenue": revenue,
            "share_of_revenue": revenue / float(total_revenue) if total_revenue else None,
            "click": per_kind.get("click", {"orders": 0, "revenue": 0.0}),
            "view": per_kind.get("view", {"orders": 0, "revenue": 0.0}),
            "recommendation": recs.pop("credited"),
        },
        "linked_orders": int(linked[0][0]),
        "messages": {
            "sent": sum(r["sent"] for r in rows),
            "clicked": sum(r["clicked"] for r in rows),
            "with_orders": sum(r["messages_with_orders"] for r in rows),
        },
        "decisions": {
            "with_orders": sum(r["messages_with_orders"] for r in rows),
            "attributed_revenue": sum(r["revenue"] for r in rows),
            "attributed_profit": sum(r["profit"] for r in rows),
        },
        "by_action": rows,
        "currency": get_settings().currency,
        "rec_window_hours": windows.rec_hours,
        "recommendations": recs,
    }
