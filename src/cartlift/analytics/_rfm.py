"""RFM: recency, frequency and monetary scores (1-5) per customer, and named segments.

Scores are quintiles by percent rank, computed in DuckDB, so ties share a score (with many
one-order customers, they all get F = 1 instead of being spread over scores at random as
``ntile`` would). The named segments follow the widely used R x F grid (Champions, Loyal
customers, At risk, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import duckdb
import pandas as pd

from cartlift.analytics._clv import customer_orders
from cartlift.analytics._steps import parse_bound
from cartlift.errors import DataError
from cartlift.guardrails import Guardrail, short_history
from cartlift.store import EventStore

__all__ = ["SEGMENTS", "RFMResult", "rfm", "rfm_from_orders", "segment_summary"]

# (R scores, F scores) -> segment, as in the common RFM grid (e.g. Putler's "RFM analysis for
# successful customer segmentation"); every one of the 25 R x F cells falls in exactly one.
_GRID: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("Champions", (5,), (4, 5)),
    ("Loyal customers", (3, 4), (4, 5)),
    ("Potential loyalists", (4, 5), (2, 3)),
    ("New customers", (5,), (1,)),
    ("Promising", (4,), (1,)),
    ("Need attention", (3,), (3,)),
    ("About to sleep", (3,), (1, 2)),
    ("Can't lose them", (1, 2), (5,)),
    ("At risk", (1, 2), (3, 4)),
    ("Hibernating", (1, 2), (1, 2)),
)

SEGMENTS: dict[str, str] = {
    "Champions": "bought recently and often: reward them, ask for reviews, no discount needed",
    "Loyal customers": "buy often: offer loyalty perks and cross-sell",
    "Potential loyalists": "recent, a few orders: invite them into a loyalty programme",
    "New customers": "first order very recently: onboard them well, suggest a second purchase",
    "Promising": "recent but one order: build the habit with relevant recommendations",
    "Need attention": "average on both: a limited-time offer based on past purchases",
    "About to sleep": "fading, few orders: re-engage with popular products before they go",
    "Can't lose them": "used to buy very often, not lately: win them back personally",
    "At risk": "bought often a while ago: a personalised reminder or offer",
    "Hibernating": "long gone, few orders: low-cost reactivation or let go",
}
"""Each named segment and what it means for a store (plain words, with the usual action)."""


def _segment_sql() -> str:
    cases = " ".join(
        f"WHEN r IN ({', '.join(map(str, rs))}) AND f IN ({', '.join(map(str, fs))}) THEN '{name.replace(chr(39), chr(39) * 2)}'"
        for name, rs, fs in _GRID
    )
    return f"CASE {cases} END"


_RFM_SQL = """
WITH o AS ({orders}),
c AS (
    -- fractional days: whole days tie everybody in a short history and would put all in one R score
    SELECT customer, (epoch(CAST(? AS TIMESTAMP)) - epoch(max(ts))) / 86400.0 AS recency_days,
           count(*) AS frequency, sum(value) AS monetary, min(ts) AS first_order, max(ts) AS last_order
    FROM o GROUP BY customer
),
s AS (
    SELECT *,
           CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY recency_days DESC))) AS INTEGER) AS r,
           CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY frequency))) AS INTEGER) AS f,
           CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY monetary))) AS INTEGER) AS m
    FROM c
)
SELECT customer, recency_days, frequency, monetary, first_order, last_order, r, f, m,
       CAST(r AS VARCHAR) || CAST(f AS VARCHAR) || CAST(m AS VARCHAR) AS rfm, {segment} AS segment
FROM s ORDER BY customer
"""

"""One row per order in the store: the purchase events of one order id (or, without one, one session)."""


@dataclass(frozen=True)
class RFMResult:
    """RFM scores per customer and a summary per named segment."""

    as_of: datetime
    customers: pd.DataFrame = field(repr=False)
    segments: pd.DataFrame = field(repr=False)
    warnings: tuple[Guardrail, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The RFM part of ``cartlift segments --json``."""
        seg = self.segments.copy()
        return {
            "as_of": self.as_of,
            "customers": len(self.customers),
            "segments": seg.astype(object).where(seg.notna(), None).to_dict("records"),
            "warnings": [w.to_dict() for w in self.warnings],
        }


def _run(con: Any, orders: str, as_of: datetime | None) -> RFMResult:
    if as_of is None:
        last = con.execute(f"SELECT max(ts) FROM ({orders})").fetchall()[0][0]
        if last is None:
            raise DataError("No orders: RFM needs purchases (purchase events or a transactions file).")
        as_of = last if isinstance(last, datetime) else datetime.combine(last, datetime.min.time())
    customers = con.execute(_RFM_SQL.format(orders=orders, segment=_segment_sql()), [as_of]).df()
    if customers.empty:
        raise DataError("No orders: RFM needs purchases (purchase events or a transactions file).")
    span = pd.Timestamp(as_of) - pd.Timestamp(customers["first_order"].min())
    warning = short_history(
        span.to_pytimedelta(), RFM_MIN_HISTORY_DAYS, "RFM (recency scored as 'long gone')"
    )
    return RFMResult(
        as_of=as_of,
        customers=customers,
        segments=segment_summary(customers),
        warnings=(warning,) if warning else (),
    )


RFM_MIN_HISTORY_DAYS: Final = 90
"""RFM's recency quintiles read as "recent" ... "long gone": on a short history they rank minutes."""


def segment_summary(customers: pd.DataFrame) -> pd.DataFrame:
    """Per named segment: customers, share, mean recency/frequency/monetary, revenue and its share.

    Every engine that scores customers (DuckDB here, Spark in `cartlift.spark`) summarises
    them here, so the segment table is the same whichever computed the scores.
    """
    total_value = float(customers["monetary"].sum())
    seg = (
        customers.groupby("segment", sort=False)
        .agg(
            customers=("customer", "size"),
            recency_days=("recency_days", "mean"),
            frequency=("frequency", "mean"),
            monetary=("monetary", "mean"),
            revenue=("monetary", "sum"),
        )
        .reset_index()
    )
    seg["share"] = seg["customers"] / len(customers)
    seg["revenue_share"] = seg["revenue"] / total_value if total_value else None
    seg["meaning"] = seg["segment"].map(SEGMENTS)
    order = {name: i for i, (name, _, _) in enumerate(_GRID)}
    seg = seg.sort_values("segment", key=lambda s: s.map(order)).reset_index(drop=True)
    cols = ["segment", "customers", "share", "recency_days", "frequency", "monetary", "revenue"]
    return seg[[*cols, "revenue_share", "meaning"]]


def rfm(
    store: EventStore, *, as_of: date | datetime | str | None = None, include_anonymous: bool = False
) -> RFMResult:
    """RFM scores and segments of the store's buyers.

    Parameters
    ----------
    store : EventStore
    as_of : date, datetime or ISO string, optional
        The day recency is measured to; default the last order in the store.
    include_anonymous : bool
        Count anonymous buyers (``anonymous:<invoice>``, one order each) as customers.

    Returns
    -------
    RFMResult
        ``customers``: customer, recency_days (fractional days since the last order), frequency
        (orders), monetary (their value),
        first/last order, scores r, f, m (1-5, 5 best), ``rfm`` (e.g. "545") and ``segment``;
        ``segments``: per segment, size, share, means, revenue and what it means.
    """
    orders = customer_orders("events", include_anonymous=include_anonymous)
    return _run(store.con, orders, parse_bound(as_of, end=False, what="as-of date"))


def rfm_from_orders(orders: pd.DataFrame, *, as_of: date | datetime | str | None = None) -> RFMResult:
    """RFM from a table of orders with columns ``customer, ts, value`` (e.g. `read_transactions`)."""
    missing = [c for c in ("customer", "ts", "value") if c not in orders]
    if missing:
        raise DataError(
            f"The orders table lacks {', '.join(missing)}: it needs customer, ts and value columns."
        )
    con = duckdb.connect()
    try:
        con.register("orders_in", orders[["customer", "ts", "value"]])
        return _run(con, "SELECT * FROM orders_in", parse_bound(as_of, end=False, what="as-of date"))
    finally:
        con.close()
