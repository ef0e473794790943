"""Cart features in batch: one SQL query over the store, window functions over each session.

Every running total is a window ``ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`` over the
session's events in ``(ts, event_id)`` order, so a row sees its own event and earlier ones only.
The cart is kept per product (a window over the session and product) and turned into session
totals by summing each product's *change* of contribution, which is the incremental state's
bookkeeping written as SQL. Definitions: ``_spec.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from cartlift._params import Interval, Options, validate_params
from cartlift.errors import DataError
from cartlift.predict._context import (
    CUSTOMER_FEATURES,
    carted_sql,
    cents_sql,
    customer_sql,
    medians_sql,
    snapshot_sql,
)
from cartlift.predict._spec import FEATURE_NAMES, KEY_COLUMNS, MOMENTS
from cartlift.store import EventStore

__all__ = ["LABEL", "cart_features", "cart_features_sql", "feature_table"]

LABEL = "abandoned"
"""The label column: 1 when no purchase followed the moment (in the session, or within the window)."""

_W = "PARTITION BY session_id ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
_WP = "PARTITION BY session_id, product_id ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"

# contributions of one product to the cart totals after an event (integers: see _spec.py)
_CONTRIBUTIONS = ("items", "qty", "value", "rnum", "rden", "views", "adds", "buys", "prev")


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def cart_features_sql(
    moments: str,
    window_hours: float | None,
    sessions: Sequence[str] | None,
    *,
    events: str = "events",
    products: str = "products",
) -> str:
    """The feature table's query in DuckDB SQL, reading the relations named ``events`` and ``products``.

    The one definition of the batch features: `cart_features` runs it on the store, and
    ``cartlift.spark`` runs it on Spark SQL after a few mechanical dialect rewrites. The
    arguments are those of `cart_features`, checked here so that both engines refuse the same.
    """
    validate_params(_Request(moments, window_hours))
    if sessions is not None and not list(sessions):
        raise DataError("No sessions given: pass at least one session id, or None for all.")
    only = ""
    if sessions is not None:
        only = f"AND session_id IN ({', '.join(_lit(str(s)) for s in sessions)})"
    deltas = ",\n".join(
        f"c_{c} - coalesce(lag(c_{c}) OVER (PARTITION BY session_id, product_id ORDER BY seq), 0) AS d_{c}"
        for c in _CONTRIBUTIONS
    )
    totals = ",\n".join(f"CAST(sum(coalesce(d_{c}, 0)) OVER w AS BIGINT) AS t_{c}" for c in _CONTRIBUTIONS)
    moment = {
        "cart_events": "event_type IN ('cart_add', 'cart_remove') AND t_items > 0",
        "last_cart_event": "seq = last_cart_seq AND t_items > 0",
        "last_event": "seq = last_seq AND t_items > 0",
    }[moments]
    if window_hours is None:
        label = "NOT coalesce(bought_after, false)"
    else:
        # a purchase by the same customer within the window: later in time, or at the same
        # instant but later in this session's order
        label = f"""NOT (EXISTS (SELECT 1 FROM {events} b WHERE b.event_type = 'purchase' AND b.user_id = s.user_id
                         AND b.ts > r.ts AND b.ts <= r.ts + to_microseconds({round(float(window_hours) * 3.6e9)}))
                     OR EXISTS (SELECT 1 FROM ev b WHERE b.event_type = 'purchase' AND b.session_id = r.session_id
                         AND b.ts = r.ts AND b.seq > r.seq))"""
    cust = ", ".join(f"c.{name}" for name in CUSTOMER_FEATURES)
    return f"""
WITH
cs AS (SELECT DISTINCT session_id FROM {events} WHERE event_type IN ('cart_add', 'cart_remove') {only}),
ev AS (
    SELECT session_id, user_id, event_id, ts, event_type, product_id, quantity, price, device, channel,
           epoch_us(ts) AS us, {cents_sql("price")} AS cents,
           row_number() OVER (PARTITION BY session_id ORDER BY ts, event_id) AS seq
    FROM {events} WHERE session_id IN (SELECT session_id FROM cs)
),
sess AS (
    SELECT session_id, arg_min(user_id, seq) AS user_id, min(ts) AS start_ts, CAST(min(ts) AS DATE) AS day
    FROM ev GROUP BY session_id
),
med AS ({medians_sql(products)}),
need AS (SELECT DISTINCT ev.product_id, sess.day FROM ev JOIN sess USING (session_id)
         WHERE ev.product_id IS NOT NULL),
snap AS ({snapshot_sql("need", events)}),
cust AS ({customer_sql("sess", "med", events)}),
sp AS (SELECT DISTINCT session_id, product_id FROM ev WHERE product_id IS NOT NULL),
prev AS ({carted_sql("sp", "sess", events)}),
pk AS (
    SELECT session_id, seq, product_id, event_type, quantity,
           row_number() OVER (PARTITION BY session_id, product_id ORDER BY seq) = 1 AS first_seen,
           coalesce(sum(CAST(event_type = 'purchase' AS BIGINT)) OVER (PARTITION BY session_id, product_id
               ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS epoch,
           last_value(cents IGNORE NULLS) OVER ({_WP}) AS p_cents
    FROM ev WHERE product_id IS NOT NULL
),
pn AS (
    SELECT *,
           CASE WHEN event_type = 'purchase' THEN 0
                ELSE CAST(sum(CASE event_type WHEN 'cart_add' THEN quantity WHEN 'cart_remove' THEN -quantity
                                  ELSE 0 END)
                          OVER (PARTITION BY session_id, product_id, epoch ORDER BY seq
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) END AS net
    FROM pk
),
pc AS (
    SELECT pn.session_id, pn.seq, pn.product_id, pn.first_seen,
           CAST(pn.net > 0 AS BIGINT) AS c_items,
           greatest(pn.net, 0) AS c_qty,
           greatest(pn.net, 0) * coalesce(pn.p_cents, 0) AS c_value,
           CASE WHEN pn.p_cents IS NOT NULL AND m.median_cents > 0
                THEN greatest(pn.net, 0) * pn.p_cents ELSE 0 END AS c_rnum,
           CASE WHEN pn.p_cents IS NOT NULL AND m.median_cents > 0
                THEN greatest(pn.net, 0) * m.median_cents ELSE 0 END AS c_rden,
           CAST(pn.net > 0 AS BIGINT) * coalesce(sn.views, 0) AS c_views,
           CAST(pn.net > 0 AS BIGINT) * coalesce(sn.adds, 0) AS c_adds,
           CAST(pn.net > 0 AS BIGINT) * coalesce(sn.buys, 0) AS c_buys,
           CAST(pn.net > 0 AND pv.product_id IS NOT NULL AS BIGINT) AS c_prev
    FROM pn
    JOIN sess s USING (session_id)
    LEFT JOIN med m ON m.product_id = pn.product_id
    LEFT JOIN snap sn ON sn.product_id = pn.product_id AND sn.day = s.day
    LEFT JOIN prev pv ON pv.session_id = pn.session_id AND pv.product_id = pn.product_id
),
pd AS (SELECT session_id, seq, first_seen, {deltas} FROM pc),
run AS (
    SELECT ev.*,
           CAST(sum(CAST(event_type = 'view' AS BIGINT)) OVER w AS DOUBLE) AS n_views,
           CAST(sum(CAST(event_type = 'cart_add' AS BIGINT)) OVER w AS DOUBLE) AS n_cart_adds,
           CAST(sum(CAST(event_type = 'cart_remove' AS BIGINT)) OVER w AS DOUBLE) AS n_cart_removes,
           CAST(sum(CAST(event_type = 'checkout' AS BIGINT)) OVER w AS DOUBLE) AS n_checkouts,
           CAST(sum(CAST(event_type = 'purchase' AS BIGINT)) OVER w AS DOUBLE) AS n_purchases,
           CAST(sum(CAST(coalesce(pd.first_seen, false) AS BIGINT)) OVER w AS DOUBLE) AS n_products,
           CAST(sum(CASE WHEN event_type = 'view' THEN cents END) OVER w AS BIGINT) AS vp_sum,
           count(CASE WHEN event_type = 'view' THEN cents END) OVER w AS vp_n,
           first_value(us) OVER w AS first_us,
           max(us - coalesce(lag_us, us)) OVER w AS max_gap_us,
           min(CASE WHEN event_type = 'cart_add' THEN us END) OVER w AS first_add_us,
           last_value(device IGNORE NULLS) OVER w AS device_now,
           last_value(channel IGNORE NULLS) OVER w AS channel_now,
           bool_or(event_type = 'purchase') OVER (PARTITION BY session_id ORDER BY seq
               ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS bought_after,
           max(seq) OVER (PARTITION BY session_id) AS last_seq,
           max(CASE WHEN event_type IN ('cart_add', 'cart_remove') THEN seq END)
               OVER (PARTITION BY session_id) AS last_cart_seq,
           {totals}
    FROM (SELECT *, lag(us) OVER (PARTITION BY session_id ORDER BY seq) AS lag_us FROM ev) ev
    LEFT JOIN pd USING (session_id, seq)
    WINDOW w AS ({_W})
)
SELECT r.session_id, s.user_id, r.event_id, r.seq, r.ts, r.event_type,
       CAST(r.seq AS DOUBLE) AS n_events,
       r.n_views, r.n_cart_adds, r.n_cart_removes, r.n_checkouts, r.n_purchases, r.n_products,
       CASE WHEN r.n_views > 0 THEN r.n_cart_adds / r.n_views END AS add_rate,
       CAST(r.t_items AS DOUBLE) AS cart_items,
       CAST(r.t_qty AS DOUBLE) AS cart_quantity,
       CAST(r.t_value AS DOUBLE) / 100 AS cart_value,
       CAST(r.t_prev AS DOUBLE) AS cart_items_carted_before,
       CASE WHEN r.t_rden > 0 THEN CAST(r.t_rnum AS DOUBLE) / CAST(r.t_rden AS DOUBLE) END AS cart_price_ratio,
       CASE WHEN r.vp_n > 0 THEN CAST(r.vp_sum AS DOUBLE) / CAST(r.vp_n * 100 AS DOUBLE) END AS view_price_mean,
       r.price AS item_price,
       r.price / m.median_price AS item_price_ratio,
       CAST(r.us - r.first_us AS DOUBLE) / 1000000 AS session_seconds,
       CAST(r.us - coalesce(r.lag_us, r.us) AS DOUBLE) / 1000000 AS seconds_since_prev,
       CAST(r.max_gap_us AS DOUBLE) / 1000000 AS max_gap_seconds,
       CASE WHEN r.seq > 1 THEN CAST(r.us - r.first_us AS DOUBLE) / CAST((r.seq - 1) * 1000000 AS DOUBLE)
            ELSE 0.0 END AS mean_gap_seconds,
       CAST(r.us - r.first_add_us AS DOUBLE) / 1000000 AS seconds_since_first_add,
       CAST(hour(r.ts) AS DOUBLE) AS hour,
       CAST(isodow(r.ts) - 1 AS DOUBLE) AS weekday,
       r.device_now AS device,
       r.channel_now AS channel,
       {cust},
       CASE WHEN r.product_id IS NOT NULL THEN CAST(coalesce(sn.views, 0) AS DOUBLE) END AS item_views,
       CASE WHEN sn.views > 0 THEN CAST(sn.buys AS DOUBLE) / CAST(sn.views AS DOUBLE) END AS item_conversion,
       CASE WHEN r.t_items > 0 THEN CAST(r.t_views AS DOUBLE) / CAST(r.t_items AS DOUBLE) END AS cart_views_mean,
       CASE WHEN r.t_views > 0 THEN CAST(r.t_buys AS DOUBLE) / CAST(r.t_views AS DOUBLE) END AS cart_conversion,
       CASE WHEN r.t_adds > 0 THEN CAST(r.t_buys AS DOUBLE) / CAST(r.t_adds AS DOUBLE) END AS cart_add_conversion,
       CAST({label} AS INTEGER) AS {LABEL}
FROM run r
JOIN sess s USING (session_id)
JOIN cust c USING (session_id)
LEFT JOIN med m ON m.product_id = r.product_id
LEFT JOIN snap sn ON sn.product_id = r.product_id AND sn.day = s.day
WHERE {moment}
ORDER BY r.ts, r.session_id, r.seq"""


class _Request:
    """The arguments of `cart_features`, validated from one table like an estimator's."""

    _parameter_constraints: dict[str, list[Any]] = {  # noqa: RUF012 (read-only table)
        "moments": [Options(MOMENTS)],
        "window_hours": [None, Interval(float, 0, None, closed="neither")],
    }

    def __init__(self, moments: str, window_hours: float | None) -> None:
        self.moments = moments
        self.window_hours = window_hours


def cart_features(
    store: EventStore,
    *,
    moments: str = "last_cart_event",
    window_hours: float | None = None,
    sessions: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The feature table of every scored moment, with its label, computed in the store.

    Parameters
    ----------
    store : EventStore
        The store to read ``events`` and ``products`` from.
    moments : {"last_cart_event", "cart_events", "last_event"}
        Which moments become rows (`MOMENTS`).
    window_hours : float, optional
        None: a cart counts as bought when a purchase follows later in the same session. A
        number: when the same customer buys within that many hours (in any session).
    sessions : sequence of str, optional
        Only these sessions.

    Returns
    -------
    pandas.DataFrame
        One row per moment, ordered by time: `KEY_COLUMNS`, then `FEATURE_NAMES` (numeric
        columns as float64, ``device``/``channel`` as text), then the label ``abandoned``
        (1 = no purchase followed).
    """
    sql = cart_features_sql(moments, window_hours, sessions)
    return feature_table(store.con.execute(sql).df())


def feature_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A cart feature table (from the store, Spark or a Parquet file) in `cart_features`'s layout.

    Keeps `KEY_COLUMNS`, `FEATURE_NAMES` and the label in that order, with missing text as None;
    raises `DataError` naming the missing columns when ``frame`` is not a cart feature table.
    """
    columns = [*KEY_COLUMNS, *FEATURE_NAMES, LABEL]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"Not a cart feature table: it lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. "
            "Build one with cartlift.predict.cart_features or cartlift.spark.spark_cart_features."
        )
    frame = frame[columns].copy()
    for name in ("device", "channel"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame
