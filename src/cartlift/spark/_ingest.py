"""Parquet in and out on Spark: read the exported event table, write it partitioned by date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cartlift.errors import DataError

__all__ = ["read_events", "write_events_partitioned"]

_REQUIRED = ("event_id", "ts", "user_id", "session_id", "event_type")


def read_events(spark: Any, path: str | Path, *, format: str = "parquet") -> Any:
    """The events at ``path`` as a Spark DataFrame (``parquet``: a file, directory or glob; ``csv``
    with a header in the events schema). The ``event_date`` partition column, if any, is dropped."""
    reader = spark.read
    if format == "csv":
        df = reader.option("header", True).option("inferSchema", True).csv(str(path))
    elif format == "parquet":
        df = reader.parquet(str(path))
    else:
        raise DataError(f"read_events reads parquet or csv. Got format={format!r} instead.")
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise DataError(
            f"The events at {str(path)!r} lack {', '.join(missing)}: give the table that "
            "EventStore.export('events', path) writes."
        )
    return df.drop("event_date") if "event_date" in df.columns else df


def write_events_partitioned(events: Any, out: str | Path, *, mode: str = "overwrite") -> int:
    """Write ``events`` as Parquet partitioned by UTC date (``event_date=YYYY-MM-DD/``), de-duplicated
    by ``event_id`` (loading a batch twice changes nothing); returns the number of rows written."""
    from pyspark.sql import functions as F

    table = events.dropDuplicates(["event_id"]).withColumn(
        "event_date", F.to_date(F.col("ts").cast("timestamp"))
    )
    table = table.repartition("event_date")
    table.write.mode(mode).partitionBy("event_date").parquet(str(out))
    return int(table.count())
