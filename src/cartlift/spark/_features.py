"""Cart features and customer-lifetime summaries on Spark SQL, from the DuckDB path's own SQL text.

The batch cart features (`cartlift.predict.cart_features`, with the customer-history features
the abandonment model uses) and the BG/NBD / Gamma-Gamma summary of `cartlift.analytics` are
each one SQL definition. Spark runs that same text after three mechanical rewrites, so a change
to a feature changes both engines at once:

* DuckDB functions Spark lacks (``epoch_us``, ``isodow``, ``to_microseconds``) become temporary
  SQL functions of the session (Spark inlines them like macros);
* ``f(x IGNORE NULLS)`` becomes ``f(x) IGNORE NULLS`` and ``arg_min`` becomes ``min_by``;
* ``date_diff('day', a, b)`` becomes ``date_diff(DAY, a, b)``.

Every cart feature is computed from integers (microseconds, cents, per-mille ratios) and divided
once, as in the DuckDB path, so the two tables agree to the last bit; the CLV summary's spend
means can differ in their last bits, because Spark adds the doubles in another order.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cartlift.analytics._clv import ORDERS_SQL, _check_unit, summary_sql
from cartlift.analytics._steps import parse_bound
from cartlift.errors import DataError
from cartlift.events._schema import EVENT_COLUMNS, PRODUCT_COLUMNS
from cartlift.predict._batch import LABEL, cart_features_sql, feature_table
from cartlift.predict._spec import CATEGORICAL_FEATURES, FEATURE_NAMES
from cartlift.spark._ingest import _REQUIRED

__all__ = ["spark_cart_features", "spark_clv_summary", "to_spark_sql"]

# DuckDB built-ins that the shared SQL uses and Spark lacks, as session-scoped SQL functions
_FUNCTIONS = (
    "epoch_us(t TIMESTAMP_NTZ) RETURNS BIGINT RETURN unix_micros(CAST(t AS TIMESTAMP))",
    # DuckDB's isodow is 1 = Monday .. 7 = Sunday; Spark's weekday is 0 = Monday
    "isodow(t TIMESTAMP_NTZ) RETURNS INT RETURN weekday(t) + 1",
    "to_microseconds(n BIGINT) RETURNS INTERVAL DAY TO SECOND "
    "RETURN make_dt_interval(0, 0, 0, CAST(n AS DECIMAL(18, 0)) / 1000000)",
)
_IGNORE_NULLS = re.compile(r"\b(\w+)\((\w+(?:\.\w+)?) IGNORE NULLS\)")
_REWRITES = (
    (re.compile(r"\barg_min\("), "min_by("),
    (re.compile(r"\barg_max\("), "max_by("),
    (re.compile(r"\bdate_diff\('day',"), "date_diff(DAY,"),
)
_SQL_TYPES = {"VARCHAR": "STRING", "DOUBLE": "DOUBLE", "BIGINT": "BIGINT", "INTEGER": "INT"}


def to_spark_sql(sql: str) -> str:
    """DuckDB SQL of the shared feature definitions, rewritten for Spark SQL.

    Only the constructs the shared definitions use are rewritten (see the module docstring);
    the DuckDB-only functions they call are registered by the Spark jobs as SQL functions.
    """
    out = _IGNORE_NULLS.sub(r"\1(\2) IGNORE NULLS", sql)
    for pattern, replacement in _REWRITES:
        out = pattern.sub(replacement, out)
    return out


@contextmanager
def _views(events: Any, products: Any | None) -> Iterator[tuple[Any, str, str]]:
    """Register ``events`` (timestamps as UTC wall-clock ``TIMESTAMP_NTZ``, as DuckDB stores them)
    and ``products`` (an empty catalog when None) under fresh names, with the shared functions.

    Optional event columns that a file lacks (``device``, ``order_id`` ...) are added as NULL, and a
    missing ``quantity`` as 1, which is what the store's importers give such rows.
    """
    from pyspark.sql import functions as F

    missing = [c for c in _REQUIRED if c not in events.columns]
    if missing:
        raise DataError(
            f"The events lack {', '.join(missing)}: give the table that EventStore.export('events', path) "
            "writes (read it with cartlift.spark.read_events)."
        )
    spark = events.sparkSession
    for fn in _FUNCTIONS:
        spark.sql(f"CREATE OR REPLACE TEMPORARY FUNCTION {fn}")
    tag = uuid.uuid4().hex[:12]
    ev, pr = f"cl_events_{tag}", f"cl_products_{tag}"
    for name, kind in EVENT_COLUMNS.items():
        if name not in events.columns:
            value = F.lit(1) if name == "quantity" else F.lit(None)
            events = events.withColumn(name, value.cast(_SQL_TYPES[kind.split()[0]]))
    events.withColumn("ts", F.col("ts").cast("timestamp_ntz")).createOrReplaceTempView(ev)
    if products is None:
        schema = ", ".join(f"{name} {_SQL_TYPES[kind.split()[0]]}" for name, kind in PRODUCT_COLUMNS.items())
        products = spark.createDataFrame([], schema)
    products.createOrReplaceTempView(pr)
    try:
        yield spark, ev, pr
    finally:
        spark.catalog.dropTempView(ev)
        spark.catalog.dropTempView(pr)


def spark_cart_features(
    events: Any,
    products: Any | None = None,
    *,
    moments: str = "last_cart_event",
    window_hours: float | None = None,
    sessions: Sequence[str] | None = None,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """The abandonment model's training table, computed by Spark SQL: `cartlift.predict.cart_features`.

    Parameters
    ----------
    events : pyspark.sql.DataFrame
        The ``events`` layout (as `read_events` returns).
    products : pyspark.sql.DataFrame, optional
        The ``products`` layout (``EventStore.export("products", path)``); without it no category
        medians are known and the price-ratio features are NaN, as on a store without a catalog.
    moments, window_hours, sessions
        As `cartlift.predict.cart_features`.
    out : path, optional
        Also write the table there as Parquet (a folder of part files), which
        ``cartlift abandonment train --features PATH`` and `cartlift.predict.read_cart_features` read.

    Returns
    -------
    pandas.DataFrame
        The same rows, order, columns and dtypes as `cartlift.predict.cart_features` on a store
        holding the same events and products (one row per cart moment, collected to the driver,
        where the abandonment model is fitted).
    """
    cart_features_sql(moments, window_hours, sessions)  # refuse bad arguments before any Spark work
    with _views(events, products) as (spark, ev, pr):
        sql = cart_features_sql(moments, window_hours, sessions, events=ev, products=pr)
        table = spark.sql(to_spark_sql(sql))
        table = _typed(table)
        if out is not None:
            table.write.mode("overwrite").parquet(str(out))
            # read the written rows back rather than running the whole query a second time
            table = spark.read.parquet(str(out)).orderBy("ts", "session_id", "seq")
        arrow = table.toArrow()
    return feature_table(arrow.to_pandas())


def _typed(table: Any) -> Any:
    """The DuckDB result's column types (row_number is BIGINT there and INT in Spark)."""
    from pyspark.sql import functions as F

    cols = [F.col("session_id"), F.col("user_id"), F.col("event_id"), F.col("seq").cast("bigint")]
    cols += [F.col("ts").cast("timestamp_ntz"), F.col("event_type")]
    cols += [
        F.col(name).cast("string" if name in CATEGORICAL_FEATURES else "double") for name in FEATURE_NAMES
    ]
    cols.append(F.col(LABEL).cast("int"))
    return table.select(*cols)


def spark_clv_summary(
    events: Any,
    *,
    observation_end: date | datetime | str | None = None,
    time_unit: str = "days",
) -> pd.DataFrame:
    """Frequency, recency, T and monetary value per buyer: `cartlift.analytics.summary_from_store` on Spark.

    Parameters
    ----------
    events : pyspark.sql.DataFrame
        The ``events`` layout; orders are its purchase events, one per order id (or session).
    observation_end, time_unit
        As `summary_from_store`.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer (sorted), columns ``frequency, recency, T, monetary_value``; the input
        of `cartlift.analytics.clv_from_summary`.
    """
    end = parse_bound(observation_end, end=False, what="observation end")
    _check_unit(time_unit)
    with _views(events, None) as (spark, ev, _):
        source = f"({ORDERS_SQL.format(events=ev)})"
        last = (
            end.date()
            if end is not None
            else spark.sql(f"SELECT max(CAST(ts AS DATE)) FROM {source}").collect()[0][0]
        )
        if last is None:
            raise DataError("The events have no purchase events: CLV needs orders.")
        sql, params = summary_sql(source, last, time_unit)
        arrow = spark.sql(to_spark_sql(sql), args=params).toArrow()
    frame = arrow.to_pandas().set_index("customer")
    if frame.empty:
        raise DataError("The events have no purchase events: CLV needs orders.")
    return frame
