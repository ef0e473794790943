"""What Spark jobs read besides the events: the catalog, the interactions models learn from, and
the store's tables exported as Parquet when no exported table is given.

``cartlift train --all --engine spark`` (`cartlift.serve.spark_train_all`) fits the served models
from these; the registry they are published to is the service's, above this package.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cartlift.errors import DataError
from cartlift.recommend import Interactions
from cartlift.recommend._interactions import DEFAULT_EVENT_WEIGHTS

__all__ = ["parquet_tables", "read_products", "spark_interactions"]

_CATALOG = ("product_id", "title", "description", "category", "brand")


def read_products(spark: Any, path: str | Path) -> Any:
    """The catalog at ``path`` (``EventStore.export("products", path)``) as a Spark DataFrame."""
    frame = spark.read.parquet(str(path))
    missing = [c for c in ("product_id", "category", "price") if c not in frame.columns]
    if missing:
        raise DataError(
            f"The products at {str(path)!r} lack {', '.join(missing)}: give the table that "
            "EventStore.export('products', path) writes."
        )
    return frame


def spark_interactions(
    events: Any, products: Any | None = None, *, weights: Mapping[str, float] | None = None
) -> Interactions:
    """`Interactions` of a Spark DataFrame of events: what `Interactions.from_store` reads from a store.

    Spark filters the product events with a positive weight and orders them; the driver receives
    only those rows (``user_id, item_id, session_id, ts, event_type``). With ``products`` every
    catalog product is in the item universe, as with a store's catalog.
    """
    from pyspark.sql import functions as F

    table = dict(DEFAULT_EVENT_WEIGHTS if weights is None else weights)
    wanted = sorted(t for t, w in table.items() if w > 0)  # zero weights are dropped by from_frame too
    rows = (
        events.where(F.col("product_id").isNotNull() & F.col("event_type").isin(wanted))
        .orderBy("ts", "event_id")
        .select(
            "user_id",
            F.col("product_id").alias("item_id"),
            "session_id",
            F.col("ts").cast("timestamp_ntz").alias("ts"),
            "event_type",
        )
    )
    frame = rows.toArrow().to_pandas()
    if frame.empty:
        raise DataError("The events have no product events to learn from: check the Parquet path.")
    catalog = item_ids = None
    if products is not None:
        catalog = products.select(*_CATALOG).toArrow().to_pandas().set_index("product_id")
        if len(catalog):
            item_ids = np.union1d(catalog.index.astype(str).to_numpy(), frame["item_id"].astype(str).unique())
    return Interactions.from_frame(frame, weights=table, item_ids=item_ids, catalog=catalog)


@contextmanager
def parquet_tables(
    events: str | Path | None,
    products: str | Path | None,
    open_store: Callable[[], AbstractContextManager[Any]],
) -> Iterator[tuple[Path, Path | None]]:
    """The ``(events, products)`` Parquet paths a Spark job reads: the given ones, or else the
    store's two tables exported once to a temporary folder (removed afterwards).

    ``open_store`` opens the store (read-only) when no event table is given.
    """
    if events is not None:
        yield Path(events), None if products is None else Path(products)
        return
    with tempfile.TemporaryDirectory(prefix="cartlift-spark-") as tmp, open_store() as store:
        folder = Path(tmp)
        store.export("events", folder / "events.parquet")
        store.export("products", folder / "products.parquet")
        yield folder / "events.parquet", folder / "products.parquet"
