"""The store's carts and money, defined once: what `summary`, `abandoned-carts`, the abandonment
model's label, the report and the dashboard all count.

Definitions (a session is the unit of a cart; the same words are used in every view):

cart
    A session's cart: the items it added since its last purchase before its last ``cart_add``
    (so a session has one cart, the one it ended with). A session without a ``cart_add`` has none.
abandoned cart
    No purchase follows the cart's last ``cart_add`` in the session. A purchase logged at the
    same instant as an add counts as after it (shops log the add first). The abandonment
    model's label (``cartlift.predict``, at the last cart event) is this definition.
cart value
    Sum of price x quantity of the cart's ``cart_add`` events.
open cart
    An abandoned cart whose session is still going (its last event within the session gap,
    ``CARTLIFT_SESSION_GAP_MINUTES``, of the store's newest event). It may still convert: views of
    the past count it as abandoned, views of "now" (carts at risk) list it as open, and say so.
recovered cart
    An abandoned cart whose customer buys one of its products after the session ended and within
    the recovery window (default 168 hours, the decision log's outcome window).
order
    A purchase's ``order_id``; purchase events without one make one order per session and instant.
revenue
    Sum of price x quantity of the ``purchase`` events (returns are not deducted).
average order value
    Revenue / orders.
currency
    The store's currency, ``CARTLIFT_CURRENCY`` (`cartlift.config.Settings.currency`).

The SQL here is plain enough to run on DuckDB and on PostgreSQL, so the service's dashboard gives
the CLI's numbers on either backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cartlift.config import get_settings
from cartlift.store import EventStore

__all__ = [
    "CART_DEFINITIONS",
    "METRIC_LABELS",
    "ORDER_KEY_SQL",
    "StoreMetrics",
    "format_money",
    "session_carts_sql",
    "store_metrics",
    "store_summary",
]

RECOVERY_HOURS = 168.0

ORDER_KEY_SQL = "coalesce(order_id, session_id || '@' || CAST(ts AS VARCHAR))"
"""A purchase event's order (the definition of an order above), on DuckDB and PostgreSQL alike."""

CART_DEFINITIONS: dict[str, str] = {
    "cart": "a session's cart: the items it added since its last purchase before its last add",
    "abandoned cart": "no purchase follows the cart's last add in the session",
    "open cart": "abandoned, but the session is still going: it may still convert",
    "recovered cart": "abandoned, then the customer bought one of its products within the recovery window",
    "order": "a purchase's order id (without one: one order per session and instant)",
    "revenue": "price x quantity of every purchase (returns not deducted)",
    "average order value": "revenue / orders",
}

METRIC_LABELS: dict[str, str] = {
    "carts": "Carts",
    "abandoned_carts": "Abandoned carts",
    "abandonment_rate": "Cart abandonment",
    "abandoned_value": "Value left in abandoned carts",
    "converted_carts": "Carts bought",
    "open_carts": "Open carts (may still convert)",
    "recovered_carts": "Recovered carts",
    "recovered_value": "Revenue from recovered carts",
    "orders": "Orders",
    "revenue": "Revenue",
    "average_order_value": "Average order value",
}


def session_carts_sql(events: str = "events") -> str:
    """One row per cart (see the module docstring): session_id, user_id, first_add, last_add,
    last_event, abandoned, cart_value, items. Plain SQL for DuckDB and PostgreSQL."""
    return f"""
WITH cs AS (
    SELECT session_id, min(user_id) AS user_id,
           max(ts) FILTER (WHERE event_type = 'cart_add') AS last_add,
           max(ts) FILTER (WHERE event_type = 'purchase') AS last_purchase,
           max(ts) AS last_event
    FROM {events} GROUP BY session_id
    HAVING count(*) FILTER (WHERE event_type = 'cart_add') > 0
),
opened AS (
    -- the cart starts after the last purchase before its last add
    SELECT c.session_id, max(e.ts) AS after
    FROM cs c JOIN {events} e ON e.session_id = c.session_id
    WHERE e.event_type = 'purchase' AND e.ts < c.last_add
    GROUP BY c.session_id
),
adds AS (
    SELECT c.session_id, min(e.ts) AS first_add,
           coalesce(sum(e.price * e.quantity), 0) AS cart_value, sum(e.quantity) AS items
    FROM cs c JOIN {events} e ON e.session_id = c.session_id
    LEFT JOIN opened o ON o.session_id = c.session_id
    WHERE e.event_type = 'cart_add' AND (o.after IS NULL OR e.ts > o.after)
    GROUP BY c.session_id
)
SELECT c.session_id, c.user_id, a.first_add, c.last_add, c.last_event,
       (c.last_purchase IS NULL OR c.last_purchase < c.last_add) AS abandoned,
       a.cart_value, a.items
FROM cs c JOIN adds a ON a.session_id = c.session_id"""


def _metrics_sql(recovery_hours: float, gap_minutes: float) -> str:
    hours = f"INTERVAL '{round(recovery_hours * 3600)} seconds'"
    gap = f"INTERVAL '{round(gap_minutes * 60)} seconds'"
    return f"""
WITH carts AS ({session_carts_sql()}),
lines AS (SELECT DISTINCT session_id, product_id FROM events
          WHERE event_type = 'cart_add' AND product_id IS NOT NULL),
bought AS (
    SELECT c.session_id, sum(p.price * p.quantity) AS revenue
    FROM carts c JOIN lines l ON l.session_id = c.session_id
    JOIN events p ON p.event_type = 'purchase' AND p.user_id = c.user_id AND p.product_id = l.product_id
                 AND p.ts > c.last_event AND p.ts <= c.last_event + {hours}
    WHERE c.abandoned GROUP BY c.session_id
),
newest AS (SELECT max(ts) AS now FROM events),
orders AS (
    SELECT count(DISTINCT {ORDER_KEY_SQL}) AS orders,
           coalesce(sum(price * quantity), 0) AS revenue
    FROM events WHERE event_type = 'purchase'
)
SELECT (SELECT count(*) FROM carts),
       (SELECT count(*) FROM carts WHERE abandoned),
       (SELECT coalesce(sum(cart_value), 0) FROM carts WHERE abandoned),
       (SELECT coalesce(sum(cart_value), 0) FROM carts WHERE NOT abandoned),
       (SELECT count(*) FROM carts, newest WHERE abandoned AND last_event > newest.now - {gap}),
       (SELECT count(*) FROM bought),
       (SELECT coalesce(sum(revenue), 0) FROM bought),
       orders.orders, orders.revenue
FROM orders"""


@dataclass(frozen=True)
class StoreMetrics:
    """The store's carts and money by the definitions of this module (amounts in ``currency``)."""

    carts: int
    abandoned_carts: int
    abandonment_rate: float | None
    abandoned_value: float
    converted_carts: int
    converted_value: float
    open_carts: int
    recovered_carts: int
    recovered_value: float
    recovery_hours: float
    orders: int
    revenue: float
    average_order_value: float | None
    currency: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


Runner = Callable[[str], Sequence[Sequence[Any]]]


def _money(x: Any) -> float:
    # cents: a parallel sum differs in the last bits from run to run
    return round(float(x or 0.0), 2)


def store_metrics(
    store: EventStore | Callable[[str], list[tuple[Any, ...]]],
    *,
    recovery_hours: float = RECOVERY_HOURS,
    currency: str | None = None,
) -> StoreMetrics:
    """Carts, abandonment, recovery, orders, revenue and average order value of a store.

    Parameters
    ----------
    store : EventStore or callable
        The store, or a function running one SQL text and returning its rows (the service's
        storage passes one, so PostgreSQL gives the same numbers).
    recovery_hours : float
        How long after an abandoned session a purchase of one of its products recovers the cart.
    currency : str, optional
        Default: the ``CARTLIFT_CURRENCY`` setting.
    """
    settings = get_settings()
    run: Runner = store if callable(store) else (lambda sql: store.con.execute(sql).fetchall())
    row = run(_metrics_sql(float(recovery_hours), settings.session_gap_minutes))[0]
    carts, abandoned, ab_value, conv_value, open_, recovered, rec_value, orders, revenue = row
    carts, abandoned, orders = int(carts), int(abandoned), int(orders)
    return StoreMetrics(
        carts=carts,
        abandoned_carts=abandoned,
        abandonment_rate=abandoned / carts if carts else None,
        abandoned_value=_money(ab_value),
        converted_carts=carts - abandoned,
        converted_value=_money(conv_value),
        open_carts=int(open_),
        recovered_carts=int(recovered),
        recovered_value=_money(rec_value),
        recovery_hours=float(recovery_hours),
        orders=orders,
        revenue=_money(revenue),
        average_order_value=round(float(revenue) / orders, 2) if orders else None,
        currency=currency or settings.currency,
    )


def store_summary(store: EventStore) -> dict[str, Any]:
    """The ``cartlift summary`` document: the store's counts plus `store_metrics`.

    Keeps the keys scripts already read (``sessions_with_cart``, ``cart_abandonment_rate``,
    ``abandoned_cart_value``), now by this module's definitions.
    """
    m = store_metrics(store)
    return {
        **store.summary(),
        "sessions_with_cart": m.carts,
        "cart_abandonment_rate": m.abandonment_rate,
        "abandoned_cart_value": m.abandoned_value,
        "abandoned_carts": m.abandoned_carts,
        "open_carts": m.open_carts,
        "recovered_carts": m.recovered_carts,
        "recovered_value": m.recovered_value,
        "orders": m.orders,
        "revenue": m.revenue,
        "average_order_value": m.average_order_value,
        "currency": m.currency,
    }


def format_money(value: float | None, currency: str | None = None, *, decimals: int = 2) -> str:
    """``1,234.50 USD`` (an em dash for a missing amount); negative amounts keep their sign."""
    if value is None:
        return "—"
    code = currency or get_settings().currency
    return f"{value:,.{decimals}f} {code}"
