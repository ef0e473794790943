"""The funnel on Spark: the DuckDB funnel's answers, computed with Spark SQL.

Every option of `cartlift.analytics.Funnel` works: ordered, strict and unordered orders,
conversion windows, entry ranges, exclusions, catalog filters in steps (category, brand, title:
the products table is joined) and every breakdown, with the trend and the time-to-convert
histogram. The per-unit query is Spark SQL (`_funnel_sql`, same semantics as the DuckDB one);
everything after it, the step counts, time gaps, trend, breakdown groups with their chi-square
and Holm tests, is the shared code of `cartlift.analytics._funnel_summary` run on the cached
per-unit table, so both engines report the same figures.

Two things are refused rather than answered differently: a breakdown by a column that is not
text, an integer or a boolean (a price written as text is ``1e-05`` on DuckDB and ``1.0E-5``
on Spark: use ``price_band``), and a ``properties.<key>`` breakdown whose key holds a quote,
a backslash, a bracket or ``*``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from cartlift.analytics import Funnel
from cartlift.analytics._funnel import FunnelPlan
from cartlift.analytics._funnel_result import FunnelResult
from cartlift.analytics._funnel_summary import BreakdownSource
from cartlift.analytics._steps import Exclusion, Step, parse_step
from cartlift.errors import DataError, InvalidParameterError
from cartlift.spark._funnel_sql import SPARK, spark_units_sql

__all__ = ["funnel_on_parquet", "spark_funnel"]

_TEXT_TYPES = ("string", "tinyint", "smallint", "int", "bigint", "boolean")


def _catalog_steps(spec: Funnel) -> list[str]:
    """Names of the steps and exclusions of ``spec`` that filter on the catalog."""
    steps = [s if isinstance(s, Step) else parse_step(s) for s in spec.steps or []]
    steps += [(x if isinstance(x, Exclusion) else Exclusion(x)).step for x in spec.exclusions]
    return [s.name for s in steps if s.needs_products]


def _no_products(names: list[str]) -> DataError:
    return DataError(
        f"The funnel filters on the catalog ({', '.join(names)}) and no products table was given: "
        "put products.parquet beside the events (EventStore.export('products', path)) or pass it "
        "(products=..., --products PATH)."
    )


def _duplicate_product(pid: Any) -> DataError:
    return DataError(
        f"The products table has product_id {pid!r} more than once, so joining it would count events "
        "twice: give one row per product (EventStore.export('products', path) does)."
    )


def _check_text_column(frame: Any, table: str, source: BreakdownSource) -> None:
    kind = frame.schema[source.name].dataType.simpleString()
    if kind not in _TEXT_TYPES and not kind.startswith(("varchar(", "char(")):
        raise InvalidParameterError(
            f"The Spark engine does not break funnels down by {source.column!r}, a {kind} column of "
            f"{table}: its values would be written as text differently from DuckDB. Use --engine duckdb "
            "(or price_band for prices)."
        )


def spark_funnel(events: Any, spec: Funnel | None = None, *, products: Any = None) -> FunnelResult:
    """Run ``spec`` on a Spark DataFrame of events (the ``events`` Parquet layout).

    Parameters
    ----------
    events : pyspark.sql.DataFrame
        Columns ``event_id, ts, session_id, user_id, event_type`` at least, plus any column a
        step filters on or the breakdown reads.
    spec : Funnel, optional
        Default ``Funnel()``: the ordered session funnel view -> cart_add -> checkout -> purchase.
    products : pyspark.sql.DataFrame, optional
        The catalog (``product_id`` plus category, brand, title ...; one row per product),
        needed by catalog filters in steps and catalog breakdowns.

    Returns
    -------
    FunnelResult
        The same document as ``spec.compute(store)`` on the same data: steps with counts,
        conversions, Wilson intervals and time gaps, time to convert with its histogram, the
        trend, and the breakdown with its chi-square and Holm-adjusted tests.
    """
    spec = spec or Funnel()
    spark = events.sparkSession
    tag = uuid.uuid4().hex[:12]
    view, catalog, units_view = f"cl_events_{tag}", f"cl_products_{tag}", f"cl_units_{tag}"
    # the store's naive timestamps are UTC: read them so on a session set to another zone too
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    events.createOrReplaceTempView(view)
    try:
        # one pass gives the event types (for the default steps) and the last event time (for the trend)
        stats = spark.sql(
            f"SELECT event_type, max(unix_micros(CAST(ts AS TIMESTAMP))) FROM {view} GROUP BY event_type"
        ).collect()
        last = max((r[1] for r in stats if r[1] is not None), default=None)
        product_cols = list(products.columns) if products is not None else []
        plan = spec.plan(
            seen=lambda: {r[0] for r in stats},
            columns=lambda table: list(events.columns) if table == "events" else product_cols,
            no_steps="The events have no view, cart_add, checkout or purchase events: check the Parquet path.",
            dialect=SPARK,
        )
        uses_catalog = _prepare_catalog(plan, events, products)
        if uses_catalog:
            products.createOrReplaceTempView(catalog)
        sql = spark_units_sql(plan.query, view, catalog if uses_catalog else None)
        units = spark.sql(sql).cache()
        units.createOrReplaceTempView(units_view)
        try:
            return spec.summarise(
                lambda q: spark.sql(q).collect(),
                SPARK,
                units_view,
                plan,
                SPARK.timestamp(last),
                events=view,
                products=catalog,
            )
        finally:
            units.unpersist()
            spark.catalog.dropTempView(units_view)
    finally:
        spark.catalog.dropTempView(view)
        spark.catalog.dropTempView(catalog)
        spark.conf.set("spark.sql.session.timeZone", zone)


def _prepare_catalog(plan: FunnelPlan, events: Any, products: Any) -> bool:
    """Check what the funnel reads from the events and the catalog; True when the catalog is joined."""
    bd = plan.breakdown
    if bd is not None and bd.kind in ("event", "product"):
        _check_text_column(events if bd.kind == "event" else products, bd.kind + "s", bd)
    q = plan.query
    if not (q.join_products or (bd is not None and bd.kind == "product")):
        return False
    if products is None:
        names = [s.name for s in q.steps if s.needs_products]
        raise _no_products(names + [x.step.name for x in q.exclusions if x.step.needs_products])
    if "product_id" not in products.columns:
        raise DataError(
            f"The products table has no product_id column (it has {', '.join(products.columns)})."
        )
    from pyspark.sql import functions as F

    twice = products.groupBy("product_id").count().where(F.col("count") > 1).limit(1).collect()
    if twice:
        raise _duplicate_product(twice[0][0])
    return True


def _products_path(events: str | Path, products: str | Path | None) -> str | None:
    """The products Parquet to use: the one given, else ``products.parquet`` beside the events."""
    if products is not None:
        if not any(c in str(products) for c in "*?[") and not Path(products).exists():
            raise DataError(
                f"No products table at {str(products)!r}: export one with EventStore.export('products', path)."
            )
        return str(products)
    if any(c in str(events) for c in "*?["):
        return None
    beside = Path(events).parent / "products.parquet"
    return str(beside) if beside.is_file() else None


def funnel_on_parquet(
    path: str | Path,
    spec: Funnel | None = None,
    *,
    engine: str = "duckdb",
    master: str | None = None,
    products: str | Path | None = None,
) -> FunnelResult:
    """Run a funnel on an exported event table (a Parquet file, directory or glob) with either engine.

    ``engine="duckdb"`` reads the Parquet in an in-memory store; ``engine="spark"`` runs
    `spark_funnel` on a session from `spark_session` (``master``). Both give the same result.
    ``products`` is the catalog Parquet that catalog filters and breakdowns read; by default
    ``products.parquet`` beside the events file (or directory) is used when it exists.
    """
    from cartlift.spark._engine import check_engine

    spec = spec or Funnel()
    name = check_engine(engine)
    target = Path(path)
    if not any(c in str(path) for c in "*?[") and not target.exists():
        raise DataError(
            f"No event table at {str(path)!r}: export one with EventStore.export('events', path) "
            "or give a Parquet file, directory or glob."
        )
    catalog = _products_path(path, products)
    if catalog is None and (names := _catalog_steps(spec)):
        raise _no_products(names)  # before a Spark session is started for nothing
    if name == "spark":
        from cartlift.spark._ingest import read_events
        from cartlift.spark._session import spark_session

        spark = spark_session(master)
        frame = None if catalog is None else spark.read.parquet(catalog)
        return spark_funnel(read_events(spark, path), spec, products=frame)
    from cartlift.store import EventStore

    source = str(target / "**" / "*.parquet") if target.is_dir() else str(path)
    with EventStore(":memory:") as store:
        con = store.con
        con.execute("DROP TABLE IF EXISTS events")
        con.execute(
            f"CREATE VIEW events AS SELECT * FROM read_parquet({_lit(source)}, hive_partitioning = false, "
            "union_by_name = true)"
        )
        # the store's empty products table would make catalog filters match nothing, silently
        con.execute("DROP TABLE IF EXISTS products")
        if catalog is not None:
            con.execute(f"CREATE VIEW products AS SELECT * FROM read_parquet({_lit(catalog)})")
        if catalog is not None and (spec.breakdown is not None or _catalog_steps(spec)):
            twice = con.execute(
                "SELECT product_id FROM products GROUP BY 1 HAVING count(*) > 1 LIMIT 1"
            ).fetchall()
            if twice:
                raise _duplicate_product(twice[0][0])
        return spec.compute(store)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
