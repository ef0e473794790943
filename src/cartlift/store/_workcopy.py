"""A working copy of a PostgreSQL store: how a command that speaks DuckDB SQL runs on PostgreSQL.

Events, the catalog and the package tables are copied into a temporary DuckDB file; when the
command succeeds, the rows it added or changed are merged back (`postgres_store`). That is how a
PostgreSQL store gets its saved policy (``cartlift act train --db postgresql://...``), its
experiments (``cartlift experiment create``) and its catalog (``cartlift ingest catalog.csv
--format products``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cartlift.errors import StoreError
from cartlift.store._eventstore import EventStore
from cartlift.store._postgres import connect
from cartlift.store._slice import columns_of, fill, new_slice, write_back
from cartlift.store._snapshot import snapshot_postgres
from cartlift.store._tables import PACKAGE_TABLES, TABLES
from cartlift.store._url import StoreURL, parse_store_url

__all__ = ["postgres_store"]


@contextmanager
def postgres_store(url: str | StoreURL, *, read_only: bool = False) -> Iterator[EventStore]:
    """A working copy of a PostgreSQL store for one command; what the command writes is merged back.

    Events, the catalog and the package tables are copied into a temporary DuckDB file. When the
    block ends without an error (and not ``read_only``), the rows the command added or changed in
    the package tables (saved policies, experiments, their phases and exposures, decisions) and in
    the catalog, with its ``loads`` and ``quarantine`` records, are merged into PostgreSQL in one
    transaction (so ``cartlift ingest catalog.csv --format products`` loads a catalog). Events reach
    PostgreSQL through the service (``POST /v1/events``): a command that added events here raises
    `StoreError` and writes nothing back. Consents are kept as exported into PostgreSQL.
    """
    if not parse_store_url(url).is_postgres:
        raise StoreError(f"A PostgreSQL store is given as postgresql://user@host/db. Got {str(url)!r}.")
    compared = (*(t for t in PACKAGE_TABLES if TABLES[t].merge is not None), "products")
    with tempfile.TemporaryDirectory(prefix="cartlift-pg-") as tmp:
        path = Path(tmp) / "copy.duckdb"
        snapshot_postgres(url, path)  # events and products, streamed in chunks
        store = new_slice(path)
        pg = connect(url)
        try:
            for table in PACKAGE_TABLES:
                fill(pg, store, table)
            # the tables as copied, to merge back only what the command changed; loads and quarantine
            # start empty here, so all their rows are the command's
            store.con.execute("CREATE SCHEMA _copied")
            for table in compared:
                store.con.execute(f"CREATE TABLE _copied.{table} AS SELECT * FROM main.{table}")
            events = store.count("events")
            yield store
            if read_only:
                return
            if store.count("events") != events:
                raise StoreError(
                    "This command added events, which a PostgreSQL store takes through the service "
                    "(POST /v1/events); nothing was written back."
                )
            with pg.transaction():
                for table in compared:
                    cols = ", ".join(columns_of(store, table))
                    store.con.execute(
                        f"CREATE TEMP TABLE _new AS SELECT {cols} FROM main.{table} EXCEPT SELECT {cols} FROM _copied.{table}"
                    )
                    try:
                        store.con.execute(f"DELETE FROM main.{table}")
                        store.con.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM _new")
                    finally:
                        store.con.execute("DROP TABLE _new")
                for table in (*compared, "loads", "quarantine"):
                    write_back(pg, store, table)
        finally:
            pg.close()
            store.close()
