"""A thread that writes to a DuckDB service store through a cursor of its own (the delivery worker's)
takes turns with the service's writer, instead of one of them failing on a conflict."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cartlift.deliver._tables import Db
from cartlift.store import DuckDBStorage

CLAIM = "UPDATE outbox SET status = 'sending' WHERE message_id = 1"
CANCEL = "UPDATE outbox SET status = 'cancelled' WHERE message_id = 1"


def _worker_claims(db: Db, claimed: threading.Event, release: threading.Event) -> None:
    """What the delivery worker does: a transaction that changes a message row, held open a while."""
    with db.transaction():
        db.execute(CLAIM)
        claimed.set()
        release.wait(timeout=30)


def _on_writer(storage: DuckDBStorage, fn: Any) -> Any:
    return storage.writer.submit(fn).result(timeout=30)


@pytest.fixture
def storage(tmp_path: Path) -> Any:
    storage = DuckDBStorage(tmp_path / "store.duckdb")
    storage.start()
    _on_writer(
        storage, lambda ctx: storage.rows(ctx, "CREATE TABLE outbox (message_id INTEGER, status VARCHAR)")
    )
    _on_writer(storage, lambda ctx: storage.rows(ctx, "INSERT INTO outbox VALUES (1, 'due')"))
    yield storage
    storage.close()


def _cancel_during_claim(storage: DuckDBStorage, db: Db) -> tuple[bool, Any]:
    """The writer changes the same row while the worker's transaction is open; whether it had to
    wait for that transaction, and what it got (a result or the exception it raised)."""
    claimed, release = threading.Event(), threading.Event()
    worker = threading.Thread(target=_worker_claims, args=(db, claimed, release))
    worker.start()
    assert claimed.wait(timeout=30)
    future = storage.writer.submit(lambda ctx: storage.rows(ctx, CANCEL))
    try:
        future.result(timeout=0.5)
        waited = False
    except TimeoutError:
        waited = True
    except duckdb.Error:
        waited = False
    release.set()
    worker.join(timeout=30)
    try:
        return waited, future.result(timeout=30)
    except duckdb.Error as e:
        return waited, e


def test_with_the_storage_lock_the_writer_waits_for_the_workers_transaction_and_both_land(
    storage: DuckDBStorage,
) -> None:
    db = Db(_on_writer(storage, lambda ctx: ctx.con.cursor()), lock=storage.write_lock)
    waited, got = _cancel_during_claim(storage, db)
    assert waited  # it could not run while the worker's transaction was open
    assert not isinstance(got, Exception)
    # the worker's claim committed first, then the writer's cancel: the later word stands
    assert _on_writer(storage, lambda ctx: storage.rows(ctx, "SELECT status FROM outbox")) == [("cancelled",)]


def test_without_it_duckdb_refuses_the_writers_change_the_conflict_the_lock_prevents(
    storage: DuckDBStorage,
) -> None:
    db = Db(_on_writer(storage, lambda ctx: ctx.con.cursor()))
    waited, got = _cancel_during_claim(storage, db)
    assert not waited
    assert isinstance(got, duckdb.TransactionException)
    assert _on_writer(storage, lambda ctx: storage.rows(ctx, "SELECT status FROM outbox")) == [("sending",)]


def test_the_postgresql_storage_needs_no_such_lock() -> None:
    from cartlift.store import PostgresStorage

    # row locks order two connections' transactions there; the delivery worker has its own connection
    assert PostgresStorage("postgresql://127.0.0.1/test").write_lock is None
