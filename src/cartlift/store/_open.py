"""Opening a store from its one name: a DuckDB file or a PostgreSQL URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cartlift.store._eventstore import EventStore
from cartlift.store._postgres import PostgresStorage
from cartlift.store._storage import DuckDBStorage, Storage
from cartlift.store._url import StoreURL, parse_store_url
from cartlift.store._workcopy import postgres_store

__all__ = ["open_storage", "open_store"]


@contextmanager
def open_store(db: str | Path | StoreURL | None = None, *, read_only: bool = False) -> Iterator[EventStore]:
    """The `EventStore` a command works on, closed when the block ends.

    Parameters
    ----------
    db : str, optional
        A DuckDB file or a ``postgresql://`` URL (default: ``CARTLIFT_DB``). A PostgreSQL store
        opens as a working copy whose new policies, experiments, exposures, decisions and catalog
        rows are written back when the block succeeds (`postgres_store`).
    read_only : bool
        Open without the write lock (DuckDB) / write nothing back (PostgreSQL).
    """
    url = parse_store_url(db)
    if url.is_postgres:
        with postgres_store(url, read_only=read_only) as store:
            yield store
        return
    with EventStore(url, read_only=read_only) as store:
        yield store


def open_storage(db: str | Path | StoreURL | None = None, *, max_batch_events: int = 5_000) -> Storage:
    """The service's backend for ``db`` (not started yet): `PostgresStorage` or `DuckDBStorage`."""
    url = parse_store_url(db)
    if url.is_postgres:
        return PostgresStorage(url, max_batch_events=max_batch_events)
    return DuckDBStorage(url, max_batch_events=max_batch_events)
