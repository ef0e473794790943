"""Reference data the cart features look up: category medians, product snapshots, customer history.

Medians and product snapshots are one SQL template each, used unchanged by the batch feature
table (for every session at once) and by `FeatureContext` (for one day). Customer features are
computed twice, like the session features: `customer_sql` for the batch table, and
`customer_features` in Python from the customer's earlier events for the live state, which costs
one cheap query per new session; the tests compare the two value by value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Final

import duckdb

from cartlift.predict._spec import RFM_FREQUENCY, RFM_MONETARY, RFM_RECENCY_DAYS
from cartlift.store import EventStore

__all__ = [
    "CUSTOMER_FEATURES",
    "FIRST_VISIT",
    "FeatureContext",
    "ProductStats",
    "carted_sql",
    "customer_features",
    "customer_sql",
    "medians_sql",
    "snapshot_sql",
]

ProductStats = tuple[int, int, int]
"""(views, cart adds, purchases) of a product before a day."""

CUSTOMER_FEATURES: Final = (
    "cust_past_sessions",
    "cust_past_purchase_sessions",
    "cust_past_cart_sessions",
    "cust_purchase_rate",
    "cust_cart_conversion",
    "cust_add_rate",
    "cust_days_since_visit",
    "cust_days_since_abandoned",
    "cust_days_since_purchase",
    "cust_purchases",
    "cust_purchase_value",
    "cust_rfm_score",
    "cust_price_index",
)

_NAN = math.nan
FIRST_VISIT: Final[tuple[float, ...]] = (
    0.0,
    0.0,
    0.0,
    _NAN,
    _NAN,
    _NAN,
    _NAN,
    _NAN,
    _NAN,
    0.0,
    0.0,
    0.0,
    _NAN,
)
"""Customer features of someone with no earlier events (what `customer_sql` gives them)."""

_DAY_US: Final = 86_400_000_000
_EPOCH: Final = datetime(1970, 1, 1)
_US: Final = timedelta(microseconds=1)


def cents_sql(price: str) -> str:
    """A price in whole cents, rounded half up (``math.floor(price * 100 + 0.5)`` in Python)."""
    return f"CAST(floor({price} * 100 + 0.5) AS BIGINT)"


def medians_sql(products: str = "products") -> str:
    """``product_id, median_price, median_cents``: the median catalog price of each product's category.

    ``products`` names the catalog relation (the Spark jobs pass their temporary view).
    """
    return f"""
        SELECT p.product_id, c.median_price, {cents_sql("c.median_price")} AS median_cents
        FROM {products} p
        JOIN (SELECT category, median(price) AS median_price FROM {products}
              WHERE price > 0 AND category IS NOT NULL GROUP BY category) c USING (category)"""


def snapshot_sql(need: str, events: str = "events") -> str:
    """Views, cart adds and purchases of each product strictly before ``day``.

    ``need`` is a relation of ``(product_id, day DATE)`` pairs; the result has one row per pair
    with ``views, adds, buys`` (0 when the product had no such events). ``events`` names the
    event relation.
    """
    return f"""
        SELECT n.product_id, n.day,
               CAST(coalesce(sum(d.views), 0) AS BIGINT) AS views,
               CAST(coalesce(sum(d.adds), 0) AS BIGINT) AS adds,
               CAST(coalesce(sum(d.buys), 0) AS BIGINT) AS buys
        FROM {need} n
        LEFT JOIN (
            SELECT product_id, CAST(ts AS DATE) AS d,
                   count(*) FILTER (WHERE event_type = 'view') AS views,
                   count(*) FILTER (WHERE event_type = 'cart_add') AS adds,
                   count(*) FILTER (WHERE event_type = 'purchase') AS buys
            FROM {events}
            WHERE product_id IN (SELECT product_id FROM {need})
            GROUP BY product_id, CAST(ts AS DATE)
        ) d ON d.product_id = n.product_id AND d.d < n.day
        GROUP BY n.product_id, n.day"""


def _score(value: str, cuts: tuple[float, ...], *, ascending: bool) -> str:
    """SQL for a 1-5 score from 4 cut points (``ascending``: larger values score higher)."""
    if ascending:  # value >= cut[i] scores i + 2
        whens = " ".join(f"WHEN {value} >= {c} THEN {i + 2}" for i, c in reversed(list(enumerate(cuts))))
    else:  # value <= cut[i] scores 5 - i
        whens = " ".join(f"WHEN {value} <= {c} THEN {5 - i}" for i, c in enumerate(cuts))
    return f"(CASE {whens} ELSE 1 END)"


def customer_sql(sessions: str, medians: str, events: str = "events") -> str:
    """The customer features of each session, from the customer's events before the session began.

    ``sessions`` is a relation ``(session_id, user_id, start_ts)``; ``medians`` names the relation of
    `medians_sql` (a table or CTE name, or a parenthesised subquery: DuckDB 2.0.1 refuses a
    bare name in parentheses); ``events`` the events to read (a live lookup passes the customer's only).
    Returns ``session_id`` and the columns of `CUSTOMER_FEATURES` (as DOUBLE).
    """
    days_visit = f"CAST(s.start_us - max(p.last_us) AS DOUBLE) / {_DAY_US}"
    abandoned = "max(p.last_us) FILTER (WHERE p.carted AND NOT p.bought)"
    days_buy = f"CAST(s.start_us - max(p.buy_us) AS DOUBLE) / {_DAY_US}"
    buys = "coalesce(sum(p.buys), 0)"
    value = "CAST(coalesce(sum(p.buy_cents), 0) AS DOUBLE) / 100"
    rfm = (
        f"CASE WHEN {buys} = 0 THEN 0 ELSE {_score(days_buy, RFM_RECENCY_DAYS, ascending=False)}"
        f" + {_score(buys, tuple(float(c) for c in RFM_FREQUENCY), ascending=True)}"
        f" + {_score(value, RFM_MONETARY, ascending=True)} END"
    )
    return f"""
        SELECT s.session_id,
               CAST(count(p.psid) AS DOUBLE) AS cust_past_sessions,
               CAST(count(p.psid) FILTER (WHERE p.bought) AS DOUBLE) AS cust_past_purchase_sessions,
               CAST(count(p.psid) FILTER (WHERE p.carted) AS DOUBLE) AS cust_past_cart_sessions,
               CASE WHEN count(p.psid) > 0 THEN CAST(count(p.psid) FILTER (WHERE p.bought) AS DOUBLE)
                    / count(p.psid) END AS cust_purchase_rate,
               CASE WHEN count(p.psid) FILTER (WHERE p.carted) > 0
                    THEN CAST(count(p.psid) FILTER (WHERE p.carted AND p.bought) AS DOUBLE)
                         / count(p.psid) FILTER (WHERE p.carted) END AS cust_cart_conversion,
               CASE WHEN sum(p.views) > 0 THEN CAST(sum(p.adds) AS DOUBLE) / CAST(sum(p.views) AS DOUBLE)
                    END AS cust_add_rate,
               {days_visit} AS cust_days_since_visit,
               CAST(s.start_us - {abandoned} AS DOUBLE) / {_DAY_US} AS cust_days_since_abandoned,
               {days_buy} AS cust_days_since_purchase,
               CAST({buys} AS DOUBLE) AS cust_purchases,
               {value} AS cust_purchase_value,
               CAST({rfm} AS DOUBLE) AS cust_rfm_score,
               CASE WHEN sum(p.pm_n) > 0 THEN CAST(sum(p.pm_sum) AS DOUBLE) / CAST(sum(p.pm_n) * 1000 AS DOUBLE)
                    END AS cust_price_index
        FROM (SELECT session_id, user_id, start_ts, epoch_us(start_ts) AS start_us FROM {sessions}) s
        LEFT JOIN (
            SELECT s2.session_id AS sid, e.session_id AS psid,
                   bool_or(e.event_type = 'purchase') AS bought,
                   bool_or(e.event_type = 'cart_add') AS carted,
                   max(epoch_us(e.ts)) AS last_us,
                   max(epoch_us(e.ts)) FILTER (WHERE e.event_type = 'purchase') AS buy_us,
                   count(*) FILTER (WHERE e.event_type = 'purchase') AS buys,
                   count(*) FILTER (WHERE e.event_type = 'view') AS views,
                   count(*) FILTER (WHERE e.event_type = 'cart_add') AS adds,
                   CAST(sum(CAST(e.quantity AS BIGINT) * {cents_sql("e.price")})
                        FILTER (WHERE e.event_type = 'purchase') AS BIGINT) AS buy_cents,
                   -- per-mille integers: the mean is exact whatever order the rows come in
                   CAST(sum(CAST(floor(e.price / m.median_price * 1000 + 0.5) AS BIGINT))
                        FILTER (WHERE e.event_type = 'view' AND e.price IS NOT NULL) AS BIGINT) AS pm_sum,
                   count(*) FILTER (WHERE e.event_type = 'view' AND e.price IS NOT NULL
                                    AND m.median_price IS NOT NULL) AS pm_n
            FROM {sessions} s2
            JOIN {events} e ON e.user_id = s2.user_id AND e.ts < s2.start_ts
            LEFT JOIN {medians} m ON m.product_id = e.product_id
            GROUP BY s2.session_id, e.session_id
        ) p ON p.sid = s.session_id
        GROUP BY s.session_id, s.start_us"""


def carted_sql(pairs: str, sessions: str, events: str = "events") -> str:
    """The ``(session_id, product_id)`` pairs whose customer added the product to a cart before the session.

    ``pairs`` is a relation of ``(session_id, product_id)``; ``sessions`` of
    ``(session_id, user_id, start_ts)``; ``events`` names the event relation.
    """
    return f"""
        SELECT DISTINCT sp.session_id, sp.product_id
        FROM {pairs} sp
        JOIN {sessions} s ON s.session_id = sp.session_id
        JOIN {events} e ON e.user_id = s.user_id AND e.product_id = sp.product_id
                     AND e.event_type = 'cart_add' AND e.ts < s.start_ts"""


class FeatureContext:
    """What the live state looks up outside the session: catalog medians, product and customer history.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection or None
        The store's connection (``store.con``). None gives an empty context: no catalog, no
        product history, every customer on a first visit (useful for benchmarks and demos).

    Notes
    -----
    Medians are read once; product snapshots once per day (a nightly job's output); customer
    history once per session, at its first event (one query for the customer's earlier events).
    The snapshot and customer queries are written in SQL that PostgreSQL runs too: a subclass
    that overrides `_fetch` (and `_median_rows`, whose ``median`` is DuckDB's) reads another store.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        self.con = con
        self._medians: dict[str, tuple[float, int]] | None = None
        self._snapshots: dict[date, dict[str, ProductStats]] = {}

    @classmethod
    def from_store(cls, store: EventStore) -> FeatureContext:
        """A context reading from an `EventStore`."""
        return cls(store.con)

    def median(self, product_id: str) -> tuple[float, int] | None:
        """``(median_price, median_cents)`` of the product's category, or None when unknown."""
        if self._medians is None:
            self._medians = {str(p): (float(m), int(c)) for p, m, c in self._median_rows()}
        return self._medians.get(product_id)

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` (``?`` placeholders) on the store; none without a store."""
        return [] if self.con is None else self.con.execute(sql, list(params)).fetchall()

    def _median_rows(self) -> list[tuple[Any, ...]]:
        """``(product_id, median_price, median_cents)`` of every catalog product with a category median."""
        return self._fetch(medians_sql())

    def products(self, day: date) -> dict[str, ProductStats]:
        """Every product's ``(views, adds, buys)`` before ``day`` (absent products had none)."""
        snap = self._snapshots.get(day)
        if snap is None:
            # a CTE, not a subquery: PostgreSQL before 16 wants an alias on every subquery in FROM
            need = f"SELECT DISTINCT product_id, DATE '{day.isoformat()}' AS day FROM events WHERE product_id IS NOT NULL"
            rows = self._fetch(f"WITH need AS ({need}) {snapshot_sql('need')}")
            snap = {str(p): (int(v), int(a), int(b)) for p, _, v, a, b in rows if v or a or b}
            self._snapshots[day] = snap
        return snap

    def customer(self, user_id: str, start: datetime) -> tuple[tuple[float, ...], frozenset[str]]:
        """The `CUSTOMER_FEATURES` of a session that starts at ``start`` (naive UTC), and the
        products the customer put in a cart before it.

        One query fetches the customer's earlier events; `customer_features` aggregates them in
        Python with exactly the rules of `customer_sql` (the tests compare the two).
        """
        fetched = self._fetch(
            "SELECT session_id, ts, event_type, product_id, quantity, price FROM events"
            " WHERE user_id = ? AND ts < ?",
            [user_id, start],
        )
        # microseconds since the epoch in Python: the same integers as DuckDB's epoch_us, on any store
        rows = [(s, (ts - _EPOCH) // _US, k, p, q, pr) for s, ts, k, p, q, pr in fetched]
        start_us = (start - _EPOCH) // _US
        carted = frozenset(str(r[3]) for r in rows if r[2] == "cart_add" and r[3] is not None)
        return customer_features(rows, start_us, self.median), carted


def _rfm(days_buy: float, buys: int, value: float) -> float:
    r = next((5 - i for i, cut in enumerate(RFM_RECENCY_DAYS) if days_buy <= cut), 1)
    f = next((i + 2 for i, cut in reversed(list(enumerate(RFM_FREQUENCY))) if buys >= cut), 1)
    m = next((i + 2 for i, cut in reversed(list(enumerate(RFM_MONETARY))) if value >= cut), 1)
    return float(r + f + m)


def customer_features(
    rows: list[tuple[Any, ...]], start_us: int, median: Callable[[str], tuple[float, int] | None]
) -> tuple[float, ...]:
    """`CUSTOMER_FEATURES` from a customer's earlier events, the rules of `customer_sql` in Python.

    ``rows`` are ``(session_id, epoch microseconds, event_type, product_id, quantity, price)``
    of the customer's events before the session; ``median`` gives a product's category median.
    """
    if not rows:
        return FIRST_VISIT
    # per earlier session: bought, carted, last event, last purchase
    sessions: dict[Any, list[Any]] = {}
    buys = views = adds = buy_cents = pm_sum = pm_n = 0
    for session_id, us, kind, product, quantity, price in rows:
        s = sessions.setdefault(session_id, [False, False, us, None])
        if us > s[2]:
            s[2] = us
        if kind == "purchase":
            s[0] = True
            s[3] = us if s[3] is None or us > s[3] else s[3]
            buys += 1
            if price is not None:
                buy_cents += int(quantity) * math.floor(price * 100 + 0.5)
        elif kind == "cart_add":
            s[1] = True
            adds += 1
        elif kind == "view":
            views += 1
            m = None if product is None or price is None else median(str(product))
            if m is not None:
                pm_sum += math.floor(price / m[0] * 1000 + 0.5)
                pm_n += 1
    n = len(sessions)
    bought = sum(1 for s in sessions.values() if s[0])
    carted = sum(1 for s in sessions.values() if s[1])
    carted_bought = sum(1 for s in sessions.values() if s[0] and s[1])
    last = max(s[2] for s in sessions.values())
    left = [s[2] for s in sessions.values() if s[1] and not s[0]]
    last_buy = max((s[3] for s in sessions.values() if s[3] is not None), default=None)
    days_buy = _NAN if last_buy is None else (start_us - last_buy) / _DAY_US
    value = buy_cents / 100
    return (
        float(n),
        float(bought),
        float(carted),
        bought / n,
        carted_bought / carted if carted else _NAN,
        adds / views if views else _NAN,
        (start_us - last) / _DAY_US,
        (start_us - max(left)) / _DAY_US if left else _NAN,
        days_buy,
        float(buys),
        value,
        _rfm(days_buy, buys, value) if buys else 0.0,
        pm_sum / (pm_n * 1000) if pm_n else _NAN,
    )
