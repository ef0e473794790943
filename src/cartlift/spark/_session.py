"""The one factory of Spark sessions, local or on a cluster."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cartlift.spark._engine import require_spark

__all__ = ["DEFAULT_MASTER", "spark_session"]

DEFAULT_MASTER = "local[*]"

# UTC so that the store's naive UTC timestamps keep their instant on every executor
_BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
}


def spark_session(
    master: str | None = None,
    *,
    app_name: str = "cartlift",
    conf: Mapping[str, str] | None = None,
) -> Any:
    """A `pyspark.sql.SparkSession` (created, or the active one with ``conf`` applied).

    Parameters
    ----------
    master : str, optional
        ``local[*]`` (default), ``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://...``:
        any URL ``spark-submit --master`` takes.
    app_name : str
        Shown in the cluster's UI.
    conf : mapping, optional
        Extra Spark settings (``spark.executor.memory`` ...).
    """
    require_spark()
    from pyspark.sql import SparkSession

    if master is None or master.startswith("local"):
        # a local driver binds to the loopback address (no surprise network interface lookups)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName(app_name).master(master or DEFAULT_MASTER)
    for key, value in {**_BASE_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session
