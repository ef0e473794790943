"""Train the served models from a Parquet event table on Spark and publish them to the model registry.

``cartlift train --all --engine spark`` runs this: the recommender is `SparkALS` (the fit runs on
Spark MLlib; the factors come back as a plain `ALS` file), the popularity fallback is fitted on the
same interactions, and the abandonment model on the cart features Spark SQL computes. Everything is
published through `cartlift.serve.ModelRegistry`, so ``cartlift serve`` loads these versions
exactly as it loads the embedded path's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cartlift.errors import DataError
from cartlift.recommend import Interactions
from cartlift.recommend._interactions import DEFAULT_EVENT_WEIGHTS

if TYPE_CHECKING:
    from cartlift.serve import ModelRegistry

__all__ = ["parquet_tables", "read_products", "spark_interactions", "spark_train_all"]

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


def spark_train_all(
    events: str | Path,
    registry: ModelRegistry,
    *,
    products: str | Path | None = None,
    master: str | None = None,
    recommender: str = "als",
    recommender_params: Mapping[str, Any] | None = None,
    moments: str = "last_cart_event",
    window_hours: float | None = None,
    features_out: str | Path | None = None,
    random_state: int = 0,
) -> dict[str, dict[str, Any]]:
    """Fit every served model on a Parquet event table with Spark and publish a new version of each.

    Parameters
    ----------
    events : path
        The event table (``EventStore.export("events", path)``, or `write_events_partitioned`'s folder).
    registry : cartlift.serve.ModelRegistry
        Where the versions go (what ``cartlift serve --model-dir`` loads).
    products : path, optional
        The catalog as Parquet (category medians for the price features, catalog items).
    master : str, optional
        Spark master URL (default ``local[*]``).
    recommender : str
        ``als`` fits `SparkALS` on Spark; any other name of `cartlift.recommend.MODELS` is fitted on
        the driver from the interactions Spark read.
    recommender_params : mapping, optional
        Hyper-parameters of the recommender (e.g. ``{"factors": 32}``); the popularity fallback
        takes none.
    moments, window_hours
        The abandonment model's rows and label (`cartlift.predict.cart_features`).
    features_out : path, optional
        Also keep the cart feature table there as Parquet.
    random_state : int
        Seed of every model.

    Returns
    -------
    dict
        As `cartlift.serve.train_all`: kind -> ``{"version", "name", ...}`` or ``{"error": reason}``.
    """
    from cartlift.predict import train_features
    from cartlift.recommend import make_model
    from cartlift.serve._registry import abandonment_meta, publish_all
    from cartlift.spark._als import SparkALS
    from cartlift.spark._features import spark_cart_features
    from cartlift.spark._ingest import read_events
    from cartlift.spark._session import spark_session

    spark = spark_session(master)
    frame = read_events(spark, events)
    catalog = None if products is None else read_products(spark, products)
    interactions = cache(lambda: spark_interactions(frame, catalog))

    def recommender_builder(name: str, params: Mapping[str, Any]) -> Callable[[Path], dict[str, Any]]:
        def build(folder: Path) -> dict[str, Any]:
            data = interactions()
            model = (
                SparkALS(**{"random_state": random_state, **params}, spark_master=master)
                if name == "als"
                else make_model(name, random_state=random_state, **params)
            )
            start = time.perf_counter()
            model.fit(data)
            seconds = time.perf_counter() - start
            model.save(folder / "model.npz")
            return {
                "name": name,
                "model": name,
                "users": data.n_users,
                "items": data.n_items,
                "events": len(data),
                "fit_seconds": round(seconds, 4),
                "engine": "spark",
            }

        return build

    def abandonment(folder: Path) -> dict[str, Any]:
        table = spark_cart_features(
            frame, catalog, moments=moments, window_hours=window_hours, out=features_out
        )
        info = train_features(
            table,
            folder,
            seed=random_state,
            source=str(events),
            moments=moments,
            window_hours=window_hours,
        )
        return {**abandonment_meta(info), "engine": "spark"}

    return publish_all(
        registry,
        [
            ("recommender", recommender_builder(recommender, recommender_params or {})),
            ("popularity", recommender_builder("popularity", {})),
            ("abandonment", abandonment),
        ],
    )


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
