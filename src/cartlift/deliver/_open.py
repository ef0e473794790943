"""Open the store a delivery command works on: a DuckDB file or a PostgreSQL URL, as a `Db`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cartlift.deliver import _repo
from cartlift.deliver._tables import Db, connect_postgres, is_postgres_url
from cartlift.errors import StoreError
from cartlift.store import EventStore

__all__ = ["open_db"]


@contextmanager
def open_db(db: str | Path | None) -> Iterator[Db]:
    """The store as a `Db`, its deliver tables created; closed on exit.

    A DuckDB file opens through `EventStore` (so the event tables exist); a PostgreSQL store must
    already hold them (`cartlift serve` creates them at its first start).
    """
    if is_postgres_url(str(db) if db is not None else None):
        pg = connect_postgres(str(db))
        try:
            if "events" not in pg.tables():
                raise StoreError(
                    "The PostgreSQL store has no events table yet; start `cartlift serve` on it once."
                )
            _repo.create(pg)
            yield pg
        finally:
            pg.con.close()
        return
    with EventStore(db) as store:
        wrapped = Db(store.con)
        _repo.create(wrapped)
        yield wrapped
