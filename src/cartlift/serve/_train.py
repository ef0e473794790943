"""Retraining: fit every served model on a snapshot of the store, or on Spark, and publish new versions.

Training reads a *snapshot* (`cartlift.store.snapshot_duckdb`, `snapshot_postgres`) so it never
holds the store: a DuckDB file has one writer (the running service), and a PostgreSQL store keeps
taking events. `spark_train_all` (``cartlift train --all --engine spark``) reads an exported Parquet
event table instead: the recommender is `SparkALS` (fitted on Spark MLlib; the factors come back
as a plain `ALS` file), the popularity fallback is fitted on the same interactions, and the
abandonment model on the cart features Spark SQL computes; all are published through the same
`ModelRegistry`, so ``cartlift serve`` loads them exactly as it loads the embedded path's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from cartlift.errors import StoreError
from cartlift.predict import train_features
from cartlift.recommend import make_model
from cartlift.serve._registry import ModelRegistry, abandonment_meta, publish_all, train_all
from cartlift.store import EventStore, StoreURL, parse_store_url, snapshot_postgres

__all__ = ["spark_train_all", "train_from_db"]


def train_from_db(
    db: str | StoreURL, registry: ModelRegistry, *, recommender: str = "best"
) -> dict[str, dict[str, Any]]:
    """Train every served model on the store ``db`` (DuckDB file or PostgreSQL URL) and publish them.

    A DuckDB file is opened read-only, which fails while a service writes to it: then use
    ``POST /v1/admin/train`` on the running service instead.
    """
    url = parse_store_url(db)
    if url.is_postgres:
        with tempfile.TemporaryDirectory(prefix="cartlift-train-") as tmp:
            path = snapshot_postgres(url, Path(tmp) / "snapshot.duckdb")
            with EventStore(path, read_only=True) as store:
                return train_all(store, registry, recommender=recommender)
    try:
        store = EventStore(url, read_only=True)
    except StoreError as e:
        raise StoreError(
            f"{e}\nIf `cartlift serve` is running on this store, train through it: POST /v1/admin/train."
        ) from None
    with store:
        return train_all(store, registry, recommender=recommender)


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
    from cartlift.spark import (
        SparkALS,
        read_events,
        read_products,
        spark_cart_features,
        spark_interactions,
        spark_session,
    )

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
