"""Retraining: fit every served model on a snapshot of the store and publish new versions.

Training reads a *snapshot* so it never holds the store: a DuckDB file has one writer (the
running service), and a PostgreSQL store keeps taking events. The snapshot is a temporary DuckDB
file with the `events` and `products` tables, which is what the recommend and predict packages
train on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from cartlift.errors import StoreError
from cartlift.events import EventStore
from cartlift.serve._registry import ModelRegistry, train_all

__all__ = ["snapshot_duckdb", "snapshot_postgres", "train_from_db"]

_COLUMNS = {
    "events": "event_id, ts, user_id, session_id, event_type, product_id, quantity, price, order_id, channel, device, properties, load_id",
    "products": "product_id, title, description, category, brand, price, cost",
}


def snapshot_duckdb(store: EventStore, target: Path) -> Path:
    """Copy the store's events and products into a new DuckDB file (run where the store is open)."""
    lit = str(target).replace("'", "''")
    store.con.execute(f"ATTACH '{lit}' AS _snapshot")
    try:
        for table, cols in _COLUMNS.items():
            store.con.execute(f"CREATE TABLE _snapshot.{table} AS SELECT {cols} FROM main.{table}")
    finally:
        store.con.execute("DETACH _snapshot")
    return target


def snapshot_postgres(url: str, target: Path, *, chunk: int = 100_000) -> Path:
    """Copy a PostgreSQL store's events and products into a new DuckDB file, in chunks."""
    from cartlift.serve._postgres import connect

    con = connect(url)
    try:
        with EventStore(target) as snap:
            for table, cols in _COLUMNS.items():
                # a server-side cursor streams in chunks; it lives in a transaction
                with con.transaction(), con.cursor(name=f"snapshot_{table}") as cur:
                    cur.execute(f"SELECT {cols} FROM {table}")
                    names = [c.strip() for c in cols.split(",")]
                    while rows := cur.fetchmany(chunk):
                        batch = pa.table(
                            {
                                n: pa.array(list(v))
                                for n, v in zip(names, zip(*rows, strict=True), strict=True)
                            }
                        )
                        snap.con.register("_chunk", batch)
                        snap.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _chunk")
                        snap.con.unregister("_chunk")
    finally:
        con.close()
    return target


def train_from_db(
    db: str, registry: ModelRegistry, *, recommender: str = "itemknn"
) -> dict[str, dict[str, Any]]:
    """Train every served model on the store ``db`` (DuckDB file or PostgreSQL URL) and publish them.

    A DuckDB file is opened read-only, which fails while a service writes to it: then use
    ``POST /v1/admin/train`` on the running service instead.
    """
    if db.startswith(("postgresql://", "postgres://")):
        with tempfile.TemporaryDirectory(prefix="cartlift-train-") as tmp:
            path = snapshot_postgres(db, Path(tmp) / "snapshot.duckdb")
            with EventStore(path, read_only=True) as store:
                return train_all(store, registry, recommender=recommender)
    try:
        store = EventStore(db, read_only=True)
    except StoreError as e:
        raise StoreError(
            f"{e}\nIf `cartlift serve` is running on this store, train through it: POST /v1/admin/train."
        ) from None
    with store:
        return train_all(store, registry, recommender=recommender)
