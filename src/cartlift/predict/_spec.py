"""The cart features, defined once: name, kind, group and meaning of every column.

Both implementations (the batch SQL of ``_batch.py`` and the incremental state of ``_live.py``)
produce exactly these columns in exactly this order, and a test compares them value by value.

Definitions shared by both implementations
------------------------------------------
*Order.* A session's events are ordered by ``(ts, event_id)``. A *moment* is the state right
after one event (the "current event"); features at a moment use that event and the events of the
session before it, never anything after it.

*Cart.* For each product, the cart quantity is ``max(0, adds - removes)``, where adds and removes
are the ``cart_add`` / ``cart_remove`` quantities since the product's last ``purchase`` in the
session (a purchase empties that product's line). The product's price is the latest non-null
price of any event about it in the session so far.

*Money and durations* are accumulated as integers (cents, microseconds, per-mille ratios) and
divided once at the end, so both implementations give bit-identical floats whatever the order
of summation.

*Customer features*, and whether a cart item was carted before, use the customer's events
strictly before the session's first event.
*Product features* use events strictly before 00:00 UTC of the day the session started (the
snapshot a nightly job would publish). *Category medians* come from the catalog (``products``),
which is reference data, not events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "CATEGORICAL_FEATURES",
    "EVENT_KINDS",
    "FEATURES",
    "FEATURE_NAMES",
    "KEY_COLUMNS",
    "MOMENTS",
    "Feature",
]

FeatureKind = Literal["count", "numeric", "categorical"]
FeatureGroup = Literal["session", "customer", "product"]


@dataclass(frozen=True)
class Feature:
    """One cart feature.

    Parameters
    ----------
    name : str
        Column name in the feature table and key in the live state's dict.
    kind : {"count", "numeric", "categorical"}
        ``count`` is a whole number (stored as float), ``numeric`` may be NaN when undefined,
        ``categorical`` is text or None.
    group : {"session", "customer", "product"}
        Where the information comes from.
    doc : str
        What the value means, in a store owner's words.
    """

    name: str
    kind: FeatureKind
    group: FeatureGroup
    doc: str


FEATURES: Final[tuple[Feature, ...]] = (
    # -- session: what happened in this visit so far ---------------------------------------------
    Feature("n_events", "count", "session", "events in the session so far, the current one included"),
    Feature("n_views", "count", "session", "product views so far"),
    Feature("n_cart_adds", "count", "session", "cart_add events so far"),
    Feature("n_cart_removes", "count", "session", "cart_remove events so far"),
    Feature("n_checkouts", "count", "session", "checkout events so far"),
    Feature("n_purchases", "count", "session", "purchase events so far"),
    Feature("n_products", "count", "session", "distinct products seen in the session"),
    Feature("add_rate", "numeric", "session", "cart adds per product view (NaN before a view): intent"),
    Feature("cart_items", "count", "session", "distinct products now in the cart"),
    Feature("cart_quantity", "count", "session", "units now in the cart"),
    Feature("cart_value", "numeric", "session", "value of the cart (quantity x latest price)"),
    Feature(
        "cart_items_carted_before",
        "count",
        "session",
        "cart items the customer already put in a cart in an earlier session (coming back for them)",
    ),
    Feature(
        "cart_price_ratio",
        "numeric",
        "session",
        "cart value / the same cart at its categories' median prices (NaN when unknown)",
    ),
    Feature("view_price_mean", "numeric", "session", "mean price of the viewed products (NaN when none)"),
    Feature("item_price", "numeric", "session", "price on the current event (NaN when none)"),
    Feature(
        "item_price_ratio",
        "numeric",
        "session",
        "current event's price / its category's median price (NaN when unknown)",
    ),
    Feature("session_seconds", "numeric", "session", "seconds from the session's first event"),
    Feature("seconds_since_prev", "numeric", "session", "seconds since the previous event (0 at the first)"),
    Feature("max_gap_seconds", "numeric", "session", "longest pause between two events so far"),
    Feature("mean_gap_seconds", "numeric", "session", "mean pause between events (dwell time)"),
    Feature(
        "seconds_since_first_add",
        "numeric",
        "session",
        "seconds since the session's first cart_add (NaN before it)",
    ),
    Feature("hour", "count", "session", "hour of the current event, 0-23 (UTC)"),
    Feature("weekday", "count", "session", "weekday of the current event, 0 = Monday (UTC)"),
    Feature("device", "categorical", "session", "the session's latest known device"),
    Feature("channel", "categorical", "session", "the session's latest known channel"),
    # -- customer: history before this visit -------------------------------------------------------
    Feature("cust_past_sessions", "count", "customer", "the customer's earlier sessions"),
    Feature("cust_past_purchase_sessions", "count", "customer", "earlier sessions with a purchase"),
    Feature("cust_past_cart_sessions", "count", "customer", "earlier sessions with a cart_add"),
    Feature(
        "cust_purchase_rate",
        "numeric",
        "customer",
        "share of earlier sessions with a purchase (NaN for a first visit)",
    ),
    Feature(
        "cust_cart_conversion",
        "numeric",
        "customer",
        "share of earlier sessions with a cart that also had a purchase (NaN when none)",
    ),
    Feature(
        "cust_add_rate",
        "numeric",
        "customer",
        "the customer's earlier cart adds per product view (NaN when none): a lasting intent",
    ),
    Feature("cust_days_since_visit", "numeric", "customer", "days since the customer's previous event"),
    Feature(
        "cust_days_since_abandoned",
        "numeric",
        "customer",
        "days since the customer's latest earlier session that added to cart and bought nothing",
    ),
    Feature("cust_days_since_purchase", "numeric", "customer", "RFM recency: days since the last purchase"),
    Feature("cust_purchases", "count", "customer", "RFM frequency: purchase events before this visit"),
    Feature("cust_purchase_value", "numeric", "customer", "RFM monetary: value of earlier purchases"),
    Feature(
        "cust_rfm_score",
        "count",
        "customer",
        "R + F + M scores, each 1-5 on fixed bins (0 for a customer who never bought)",
    ),
    Feature(
        "cust_price_index",
        "numeric",
        "customer",
        "price sensitivity: mean price / category median of the products the customer viewed",
    ),
    # -- product: what the store knew about the items at the start of the day ----------------------
    Feature("item_views", "numeric", "product", "earlier views of the current event's product"),
    Feature("item_conversion", "numeric", "product", "purchases / views of the current event's product"),
    Feature("cart_views_mean", "numeric", "product", "mean earlier views of the products in the cart"),
    Feature(
        "cart_conversion", "numeric", "product", "purchases / views, pooled over the products in the cart"
    ),
    Feature(
        "cart_add_conversion",
        "numeric",
        "product",
        "purchases / cart adds, pooled over the products in the cart",
    ),
)
"""Every cart feature, in column order."""

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
CATEGORICAL_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.kind == "categorical")

EVENT_KINDS: Final[dict[str, int]] = {
    "view": 0,
    "cart_add": 1,
    "cart_remove": 2,
    "checkout": 3,
    "purchase": 4,
}
"""Event types the session counts separately (any other type, such as ``return``, counts as 5)."""

KEY_COLUMNS: Final[tuple[str, ...]] = ("session_id", "user_id", "event_id", "seq", "ts", "event_type")
"""Columns that identify a scored moment (the feature table has them before the features)."""

MOMENTS: Final[tuple[str, ...]] = ("cart_events", "last_cart_event", "last_event")
"""Which moments to score.

``cart_events``: after every ``cart_add``/``cart_remove`` that leaves the cart non-empty;
``last_cart_event``: the last cart event of each session, when it leaves the cart non-empty
(the moment a customer leaves an open cart behind); ``last_event``: the latest event of each
session whose cart is open (for scoring carts now).
"""

RFM_RECENCY_DAYS: Final = (7.0, 30.0, 90.0, 365.0)
"""Days since the last purchase at or below which R scores 5, 4, 3, 2 (older scores 1)."""
RFM_FREQUENCY: Final = (2, 3, 5, 10)
"""Purchases at or above which F scores 2, 3, 4, 5 (one purchase scores 1)."""
RFM_MONETARY: Final = (10.0, 100.0, 1000.0, 10000.0)
"""Purchase value at or above which M scores 2, 3, 4, 5 (in the store's currency)."""
