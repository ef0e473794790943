"""RFM on Spark SQL: the same orders, recency, percent-rank quintiles and segments as the DuckDB path."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cartlift.analytics._rfm import RFMResult, _segment_sql, segment_summary
from cartlift.analytics._steps import parse_bound
from cartlift.errors import DataError

__all__ = ["spark_rfm"]

_ORDERS = (
    "SELECT user_id AS customer, min(CAST(ts AS TIMESTAMP)) AS ts, "
    "sum(coalesce(price, 0) * quantity) AS value FROM {events} WHERE event_type = 'purchase' "
    "GROUP BY user_id, coalesce(order_id, session_id)"
)

# the DuckDB query of `cartlift.analytics._rfm`, in Spark SQL (percent_rank has the same definition)
_RFM_SQL = """
WITH o AS ({orders}),
c AS (
    SELECT customer, (unix_micros(TIMESTAMP '{as_of}') - unix_micros(max(ts))) / 1e6 / 86400.0 AS recency_days,
           count(*) AS frequency, sum(value) AS monetary, CAST(min(ts) AS TIMESTAMP_NTZ) AS first_order, CAST(max(ts) AS TIMESTAMP_NTZ) AS last_order
    FROM o GROUP BY customer
),
s AS (
    SELECT *,
           CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY recency_days DESC))) AS INT) AS r,
           CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY frequency))) AS INT) AS f,
           CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY monetary))) AS INT) AS m
    FROM c
)
SELECT customer, recency_days, frequency, monetary, first_order, last_order, r, f, m,
       CAST(r AS STRING) || CAST(f AS STRING) || CAST(m AS STRING) AS rfm, {segment} AS segment
FROM s
"""


def spark_rfm(
    events: Any,
    *,
    as_of: date | datetime | str | None = None,
    out: str | Path | None = None,
) -> RFMResult:
    """RFM scores and segments of the buyers in a Spark DataFrame of events.

    Parameters
    ----------
    events : pyspark.sql.DataFrame
        The ``events`` layout (``user_id, session_id, order_id, ts, event_type, price, quantity``).
    as_of : date, datetime or ISO string, optional
        The day recency is measured to; default the last order.
    out : path, optional
        Also write the per-customer table there as Parquet (where the service and the embedded
        path read features).

    Returns
    -------
    RFMResult
        As `cartlift.analytics.rfm`, customers sorted by id.
    """
    spark = events.sparkSession
    view = f"cl_rfm_{uuid.uuid4().hex[:12]}"
    events.createOrReplaceTempView(view)
    try:
        orders = _ORDERS.format(events=view)
        when = parse_bound(as_of, end=False, what="as-of date")
        if when is None:
            last = spark.sql(f"SELECT CAST(max(ts) AS TIMESTAMP_NTZ) FROM ({orders})").collect()[0][0]
            if last is None:
                raise DataError("No orders: RFM needs purchases (purchase events or a transactions file).")
            when = last if isinstance(last, datetime) else datetime.combine(last, datetime.min.time())
        table = spark.sql(
            _RFM_SQL.format(orders=orders, as_of=when.isoformat(sep=" "), segment=_segment_sql())
        )
        if out is not None:
            table.write.mode("overwrite").parquet(str(out))
        rows = table.orderBy("customer").collect()
    finally:
        spark.catalog.dropTempView(view)
    customers = pd.DataFrame.from_records([r.asDict() for r in rows])
    if customers.empty:
        raise DataError("No orders: RFM needs purchases (purchase events or a transactions file).")
    return RFMResult(as_of=when, customers=customers, segments=segment_summary(customers))
