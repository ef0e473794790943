"""Reference data the cart features look up: category medians, product snapshots, customer history.

Medians and product snapshots are one SQL template each, used unchanged by the batch feature
table (for every session at once) and by `FeatureContext` (for one day). Customer features are
computed twice, like the session features: `customer_sql` for the batch table, and
`customer_features` in Python for the live state; the tests compare the two value by value.

The live state asks for a customer's history at each new session's first event. Reading it
from the events is a scan of the whole table (DuckDB keeps no index on ``user_id``: it would
slow every bulk load), so a DuckDB context keeps every customer's history as per-session sums
(`CustomerHistory`): built by one aggregate query at the first look-up, kept current by the
service's writer (`FeatureContext.take` with each committed group's rows). A session's sums are
the same integers `customer_features` adds up from its events, so the features are the same.
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Final

import duckdb
import pyarrow as pa

from cartlift.predict._spec import RFM_FREQUENCY, RFM_MONETARY, RFM_RECENCY_DAYS
from cartlift.store import EventStore

__all__ = [
    "CUSTOMER_FEATURES",
    "FIRST_VISIT",
    "CustomerHistory",
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

    index_customers : bool
        Keep every customer's history as per-session sums (`CustomerHistory`: built by one
        aggregate query by `customer_history` or the writer's first `take`, then kept current by
        `take`), so a new session's look-up reads no events. Only with a DuckDB connection:
        PostgreSQL has an index on ``events.user_id``, and several processes write to it.

    Notes
    -----
    Medians are read once; product snapshots once per day (a nightly job's output); customer
    history once per session, at its first event. The snapshot and customer queries are written
    in SQL that PostgreSQL runs too: a subclass that overrides `_fetch` (and `_median_rows`, whose
    ``median`` is DuckDB's) reads another store.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None, *, index_customers: bool = True) -> None:
        self.con = con
        self._medians: dict[str, tuple[float, int]] | None = None
        self._snapshots: dict[date, dict[str, ProductStats]] = {}
        self._index = index_customers and con is not None
        self._history: CustomerHistory | None = None
        self._reread: set[str] = set()
        self.events_read = 0
        """Customer look-ups that read the customer's events (no history kept, or a session straddled the start)."""
        self._lock = threading.RLock()  # the writer adds events while a request looks a customer up

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

    def customer_history(self) -> CustomerHistory | None:
        """Every customer's history, built now if it is not yet (None without ``index_customers``).

        Call it where no events are stored meanwhile (before scoring a store, or from the writer:
        `take` does); until it is built, look-ups read the customer's events.
        """
        with self._lock:
            if self._history is None and self._index and self.con is not None:
                self.median("")  # the sums use the medians this context answers with
                assert self._medians is not None
                self._history = CustomerHistory.from_events(self.con, self._medians, self.median)
                self._reread.clear()
                # a store's history is millions of small lists that live as long as the process: kept
                # out of the collector's full passes, which would otherwise stall look-ups for ms
                gc.freeze()
            return self._history

    def take(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Events just committed, from the writer's thread (after each group): the history takes them in.

        The first call builds the history from the store, which holds these events already; the
        customers `forget` named are read again from the store, which holds theirs too.
        """
        with self._lock:
            if self._history is None:
                self.customer_history()
                return
            reread, self._reread = self._reread, set()
            for user in reread:
                self._history.replace(user, self._customer_rows(user, None))
            self._history.add(
                events if not reread else (e for e in events if str(e["user_id"]) not in reread)
            )

    def forget(self, user_ids: Iterable[str]) -> None:
        """These customers' events changed other than by new events (erased, moved to another id):
        their history is read from the store again (at the writer's next `take`; until then their
        look-ups read their events)."""
        with self._lock:
            if self._history is not None:
                for user in user_ids:
                    self._history.forget(user)
                    self._reread.add(user)

    def _customer_rows(self, user_id: str, before: datetime | None) -> list[tuple[Any, ...]]:
        sql = "SELECT session_id, ts, event_type, product_id, quantity, price FROM events WHERE user_id = ?"
        fetched = self._fetch(
            sql + " AND ts < ?" if before else sql, [user_id, before] if before else [user_id]
        )
        # microseconds since the epoch in Python: the same integers as DuckDB's epoch_us, on any store
        return [(s, (ts - _EPOCH) // _US, k, p, q, pr) for s, ts, k, p, q, pr in fetched]

    def customer(self, user_id: str, start: datetime) -> tuple[tuple[float, ...], frozenset[str]]:
        """The `CUSTOMER_FEATURES` of a session that starts at ``start`` (naive UTC), and the
        products the customer put in a cart before it.

        From the customer history where the context keeps one; else (and for a customer with a
        session still going on at ``start``) one query fetches the customer's earlier events and
        `customer_features` aggregates them with exactly the rules of `customer_sql`.
        """
        start_us = (start - _EPOCH) // _US
        with self._lock:
            if self._history is not None and user_id not in self._reread:
                found = self._history.features(user_id, start_us)
                if found is not None:
                    return found
        self.events_read += 1
        rows = self._customer_rows(user_id, start)
        carted = frozenset(str(r[3]) for r in rows if r[2] == "cart_add" and r[3] is not None)
        return customer_features(rows, start_us, self.median), carted


def _rfm(days_buy: float, buys: int, value: float) -> float:
    r = next((5 - i for i, cut in enumerate(RFM_RECENCY_DAYS) if days_buy <= cut), 1)
    f = next((i + 2 for i, cut in reversed(list(enumerate(RFM_FREQUENCY))) if buys >= cut), 1)
    m = next((i + 2 for i, cut in reversed(list(enumerate(RFM_MONETARY))) if value >= cut), 1)
    return float(r + f + m)


# a customer's earlier session as sums: first and last event, bought, carted, last purchase,
# purchases, views, cart adds, purchase value in cents, price index numerator and count
_FIRST, _LAST, _BOUGHT, _CARTED, _BUY_US, _BUYS, _VIEWS, _ADDS, _CENTS, _PM_SUM, _PM_N = range(11)


def _new_session(us: int) -> list[Any]:
    return [us, us, False, False, None, 0, 0, 0, 0, 0, 0]


def _add_event(
    s: list[Any],
    us: int,
    kind: str,
    product: Any,
    quantity: Any,
    price: Any,
    median: Callable[[str], tuple[float, int] | None],
) -> None:
    """Add one event to its session's sums (the rules of `customer_sql`)."""
    if us < s[_FIRST]:
        s[_FIRST] = us
    if us > s[_LAST]:
        s[_LAST] = us
    if kind == "purchase":
        s[_BOUGHT] = True
        s[_BUY_US] = us if s[_BUY_US] is None or us > s[_BUY_US] else s[_BUY_US]
        s[_BUYS] += 1
        if price is not None:
            s[_CENTS] += int(quantity) * math.floor(price * 100 + 0.5)
    elif kind == "cart_add":
        s[_CARTED] = True
        s[_ADDS] += 1
    elif kind == "view":
        s[_VIEWS] += 1
        m = None if product is None or price is None else median(str(product))
        if m is not None:
            s[_PM_SUM] += math.floor(price / m[0] * 1000 + 0.5)
            s[_PM_N] += 1


def _features(sessions: Sequence[Sequence[Any]], start_us: int) -> tuple[float, ...]:
    """`CUSTOMER_FEATURES` from the sums of the customer's sessions before ``start_us``."""
    if not sessions:
        return FIRST_VISIT
    n = len(sessions)
    bought = sum(1 for s in sessions if s[_BOUGHT])
    carted = sum(1 for s in sessions if s[_CARTED])
    carted_bought = sum(1 for s in sessions if s[_BOUGHT] and s[_CARTED])
    last = max(s[_LAST] for s in sessions)
    left = [s[_LAST] for s in sessions if s[_CARTED] and not s[_BOUGHT]]
    last_buy = max((s[_BUY_US] for s in sessions if s[_BUY_US] is not None), default=None)
    buys = sum(s[_BUYS] for s in sessions)
    views = sum(s[_VIEWS] for s in sessions)
    adds = sum(s[_ADDS] for s in sessions)
    pm_sum = sum(s[_PM_SUM] for s in sessions)
    pm_n = sum(s[_PM_N] for s in sessions)
    days_buy = _NAN if last_buy is None else (start_us - last_buy) / _DAY_US
    value = sum(s[_CENTS] for s in sessions) / 100
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


def customer_features(
    rows: list[tuple[Any, ...]], start_us: int, median: Callable[[str], tuple[float, int] | None]
) -> tuple[float, ...]:
    """`CUSTOMER_FEATURES` from a customer's earlier events, the rules of `customer_sql` in Python.

    ``rows`` are ``(session_id, epoch microseconds, event_type, product_id, quantity, price)``
    of the customer's events before the session; ``median`` gives a product's category median.
    """
    sessions: dict[Any, list[Any]] = {}
    for session_id, us, kind, product, quantity, price in rows:
        s = sessions.get(session_id)
        if s is None:
            s = sessions[session_id] = _new_session(us)
        _add_event(s, us, kind, product, quantity, price, median)
    return _features(list(sessions.values()), start_us)


class CustomerHistory:
    """Every customer's sessions as sums, and the first time they put each product in a cart.

    What `customer_features` needs of a customer's earlier events, kept per session so that a new
    session's look-up reads a few sums instead of the events: a session that ended before the
    new one began counts whole, one that began at or after it not at all. A session that was
    still going on when the new one began (two devices at once) cannot be cut from its sums:
    `features` then answers None and the caller reads the events.

    Parameters
    ----------
    median : callable
        A product's category median (the context's own, so price indices match a scan's).
    """

    def __init__(self, median: Callable[[str], tuple[float, int] | None]) -> None:
        self._median = median
        self._sessions: dict[str, dict[str, list[Any]]] = {}
        self._carted: dict[str, dict[str, int]] = {}

    def __len__(self) -> int:
        """Customers held."""
        return len(self._sessions)

    @classmethod
    def from_events(
        cls,
        con: duckdb.DuckDBPyConnection,
        medians: Mapping[str, tuple[float, int]],
        median: Callable[[str], tuple[float, int] | None],
        events: str = "events",
    ) -> CustomerHistory:
        """Every customer's history from ``events`` on ``con``: one aggregate query per table.

        ``medians`` are the category medians the sums use (the context's, registered as a table).
        """
        history = cls(median)
        ids = list(medians)
        con.register(
            "_history_medians",
            pa.table(
                {
                    "product_id": pa.array(ids, pa.string()),
                    "median_price": pa.array([medians[p][0] for p in ids], pa.float64()),
                }
            ),
        )
        try:
            rows = con.execute(
                f"""SELECT e.user_id, e.session_id, epoch_us(min(e.ts)), epoch_us(max(e.ts)),
                           bool_or(e.event_type = 'purchase'), bool_or(e.event_type = 'cart_add'),
                           epoch_us(max(e.ts) FILTER (WHERE e.event_type = 'purchase')),
                           count(*) FILTER (WHERE e.event_type = 'purchase'),
                           count(*) FILTER (WHERE e.event_type = 'view'),
                           count(*) FILTER (WHERE e.event_type = 'cart_add'),
                           coalesce(CAST(sum(CAST(e.quantity AS BIGINT) * {cents_sql("e.price")})
                                         FILTER (WHERE e.event_type = 'purchase') AS BIGINT), 0),
                           coalesce(CAST(sum(CAST(floor(e.price / m.median_price * 1000 + 0.5) AS BIGINT))
                                         FILTER (WHERE e.event_type = 'view' AND e.price IS NOT NULL) AS BIGINT), 0),
                           count(*) FILTER (WHERE e.event_type = 'view' AND e.price IS NOT NULL
                                            AND m.median_price IS NOT NULL)
                    FROM {events} e LEFT JOIN _history_medians m ON m.product_id = e.product_id
                    GROUP BY e.user_id, e.session_id"""
            ).fetchall()
            carted = con.execute(
                f"""SELECT user_id, product_id, epoch_us(min(ts)) FROM {events}
                    WHERE event_type = 'cart_add' AND product_id IS NOT NULL GROUP BY 1, 2"""
            ).fetchall()
        finally:
            con.unregister("_history_medians")
        sessions = history._sessions
        for user, session, *sums in rows:
            sessions.setdefault(str(user), {})[str(session)] = sums
        for user, product, us in carted:
            history._carted.setdefault(str(user), {})[str(product)] = int(us)
        return history

    def add(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Take stored events (``ts`` naive UTC, ``user_id``, ``session_id``, ``event_type``, ...) in.

        The writer calls this with every committed group, holding the GIL the event loop needs:
        a group's events mostly share a time object (the events package reuses the time of a
        text it parsed before), so its microseconds are computed once per distinct object.
        """
        customers, median = self._sessions, self._median
        last_ts: Any = object()  # no event's time
        us = 0
        for e in events:
            user, session, kind, product = (
                str(e["user_id"]),
                str(e["session_id"]),
                e["event_type"],
                e.get("product_id"),
            )
            ts = e["ts"]
            if ts is not last_ts:
                last_ts, us = ts, (ts - _EPOCH) // _US
            sums = customers.get(user)
            if sums is None:
                sums = customers[user] = {}
            s = sums.get(session)
            if s is None:
                s = sums[session] = _new_session(us)
            _add_event(s, us, kind, product, e.get("quantity") or 1, e.get("price"), median)
            if kind == "cart_add" and product is not None:
                first = self._carted.setdefault(user, {})
                if us < first.get(str(product), us + 1):
                    first[str(product)] = us

    def replace(self, user_id: str, rows: list[tuple[Any, ...]]) -> None:
        """Set a customer's history from all of their events (``customer_features`` rows)."""
        self.forget(user_id)
        self.add(
            {"user_id": user_id, "session_id": s, "ts": _EPOCH + us * _US, "event_type": k, "product_id": p,
             "quantity": q, "price": pr}
            for s, us, k, p, q, pr in rows
        )  # fmt: skip

    def forget(self, user_id: str) -> None:
        """Drop a customer's history (erased, or their events moved to another id)."""
        self._sessions.pop(user_id, None)
        self._carted.pop(user_id, None)

    def features(self, user_id: str, start_us: int) -> tuple[tuple[float, ...], frozenset[str]] | None:
        """`CUSTOMER_FEATURES` and carted products before ``start_us``; None when a session straddles it."""
        before = []
        for s in self._sessions.get(user_id, {}).values():
            if s[_LAST] < start_us:
                before.append(s)
            elif s[_FIRST] < start_us:
                return None
        carted = frozenset(p for p, us in self._carted.get(user_id, {}).items() if us < start_us)
        return _features(before, start_us), carted
