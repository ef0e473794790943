"""Batch jobs on Apache Spark: the same answers as the embedded DuckDB path, on a cluster.

pyspark is an optional extra (``pip install 'cartlift[spark]'``). `HAS_SPARK` says whether it
imports; every entry point goes through `require_spark`, which raises `SparkUnavailableError`
with the install command when it does not. The modules import pyspark only inside the jobs,
so importing this package is safe without it. `spark_session` is the one factory of sessions:
``master="local[*]"`` on one machine, or any cluster URL (``spark://host:7077``, ``yarn``,
``k8s://...``) with nothing else changed. The jobs read the Parquet layout that
``EventStore.export("events", path)`` and `write_events_partitioned` write (and the catalog
that ``EventStore.export("products", path)`` writes). The cart features and the CLV summary run
the DuckDB path's own SQL text (`to_spark_sql`); `cartlift.serve.spark_train_all` fits the served
models from these jobs and publishes them into the service's registry.
"""

from __future__ import annotations

from cartlift.spark._als import SparkALS, spark_als
from cartlift.spark._engine import ENGINES, HAS_SPARK, SparkUnavailableError, check_engine, require_spark
from cartlift.spark._features import spark_cart_features, spark_clv_summary, to_spark_sql
from cartlift.spark._fpm import baskets_from_events, spark_frequent_itemsets
from cartlift.spark._funnel import funnel_on_parquet, spark_funnel
from cartlift.spark._ingest import read_events, write_events_partitioned
from cartlift.spark._rfm import spark_rfm
from cartlift.spark._session import DEFAULT_MASTER, spark_session
from cartlift.spark._tables import read_products, spark_interactions

__all__ = [
    "DEFAULT_MASTER",
    "ENGINES",
    "HAS_SPARK",
    "SparkALS",
    "SparkUnavailableError",
    "baskets_from_events",
    "check_engine",
    "funnel_on_parquet",
    "read_events",
    "read_products",
    "require_spark",
    "spark_als",
    "spark_cart_features",
    "spark_clv_summary",
    "spark_frequent_itemsets",
    "spark_funnel",
    "spark_interactions",
    "spark_rfm",
    "spark_session",
    "to_spark_sql",
    "write_events_partitioned",
]
