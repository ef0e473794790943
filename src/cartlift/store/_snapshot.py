"""Snapshots: a store's events and catalog copied into a new DuckDB file, to train on without holding the store.

A DuckDB file has one writer (the running service) and a PostgreSQL store keeps taking events, so
training reads a copy: `snapshot_duckdb` copies where the store is open (the service's writer
thread), `snapshot_postgres` streams a PostgreSQL store's rows in chunks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pyarrow as pa

from cartlift.store._eventstore import EventStore
from cartlift.store._postgres import connect
from cartlift.store._tables import TABLES
from cartlift.store._url import StoreURL

__all__ = ["SNAPSHOT_TABLES", "snapshot_duckdb", "snapshot_postgres"]

SNAPSHOT_TABLES: Final = ("events", "products")
"""What a snapshot holds: what the recommend and predict packages train on."""


def _columns(table: str) -> list[str]:
    return list(TABLES[table].columns)


def snapshot_duckdb(store: EventStore, target: Path) -> Path:
    """Copy the store's events and products into a new DuckDB file (run where the store is open)."""
    lit = str(target).replace("'", "''")
    store.con.execute(f"ATTACH '{lit}' AS _snapshot")
    try:
        for table in SNAPSHOT_TABLES:
            cols = ", ".join(_columns(table))
            store.con.execute(f"CREATE TABLE _snapshot.{table} AS SELECT {cols} FROM main.{table}")
    finally:
        store.con.execute("DETACH _snapshot")
    return target


def snapshot_postgres(url: str | StoreURL, target: Path, *, chunk: int = 100_000) -> Path:
    """Copy a PostgreSQL store's events and products into a new DuckDB file, in chunks."""
    con = connect(url)
    try:
        with EventStore(target) as snap:
            for table in SNAPSHOT_TABLES:
                names = _columns(table)
                cols = ", ".join(names)
                # a server-side cursor streams in chunks; it lives in a transaction
                with con.transaction(), con.cursor(name=f"snapshot_{table}") as cur:
                    cur.execute(f"SELECT {cols} FROM {table}")
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
