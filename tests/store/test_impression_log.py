"""The impression log's writes: posted events never queue behind them, and an erasure never runs
while lists it drops are still on their way to the store. Real stores: a DuckDB file and the
local PostgreSQL (skipped, saying why, without it)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cartlift.errors import StoreError
from cartlift.store import DuckDBStorage, ImpressionLog, PostgresStorage, Shown, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from _serve_helpers import pg_schema
from _store_helpers import event as _event


def _shown(user: str, n: int = 3) -> Shown:
    items = [f"p{i}" for i in range(n)]
    return Shown(time.time(), user, None, "home", items, [("popularity", 0)], {})


def test_posted_events_are_stored_while_an_impression_flush_waits_on_postgresql() -> None:
    """The flush runs on a connection of its own: a table lock that holds it up holds up no event."""
    with pg_schema() as url:
        storage = PostgresStorage(url)
        storage.start()
        log = ImpressionLog(storage.write_impressions)
        blocker = connect(url)
        try:
            log.add(_shown("u1"))
            blocker.autocommit = False
            blocker.execute("LOCK TABLE rec_impressions IN ACCESS EXCLUSIVE MODE")
            flushing = threading.Thread(target=log.flush)
            flushing.start()
            time.sleep(0.3)  # the COPY now waits on the lock
            assert flushing.is_alive()

            async def post() -> Any:
                return await asyncio.wait_for(storage.ingest(records=[_event(1), _event(2)]), timeout=10)

            outcome = asyncio.run(post())
            assert outcome.accepted == 2
            assert flushing.is_alive(), (
                "the flush finished early: the lock did not hold it, nothing was shown"
            )
            blocker.rollback()
            flushing.join(10)
            assert not flushing.is_alive()
            rows = storage.run_now(lambda ctx: storage.rows(ctx, "SELECT count(*) FROM rec_impressions"))
            assert rows[0][0] == 3
        finally:
            blocker.close()
            storage.close()


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_forget_waits_for_a_flush_under_way_and_drops_what_is_buffered(backend: str, tmp_path: Path) -> None:
    """After `forget` returns, every list taken before it is committed (the erasure's DELETE that
    follows finds it) and no buffered list of the user is written later."""
    if backend == "duckdb":
        _forget_scenario(DuckDBStorage(tmp_path / "store.duckdb"))
        return
    with pg_schema() as url:
        _forget_scenario(PostgresStorage(url))


def _forget_scenario(storage: DuckDBStorage | PostgresStorage) -> None:
    storage.start()
    entered, release = threading.Event(), threading.Event()

    def slow_write(table: pa.Table) -> None:  # the real write, held up until the test lets it go
        entered.set()
        release.wait(10)
        storage.write_impressions(table)

    log = ImpressionLog(slow_write)
    count = "SELECT count(*) FROM rec_impressions WHERE user_id = 'gone'"
    try:
        log.add(_shown("gone"))
        flushing = threading.Thread(target=log.flush)
        flushing.start()
        assert entered.wait(10)
        assert log.pending == 1  # taken by the flush, not committed yet
        log.add(_shown("gone"))  # shown while the first list is being written
        log.add(_shown("kept"))
        assert log.pending == 3
        forgetting = threading.Thread(target=log.forget, args=("gone",))
        forgetting.start()
        time.sleep(0.3)
        assert forgetting.is_alive(), "forget returned while a flush of the user's list was under way"
        release.set()
        forgetting.join(10)
        flushing.join(10)
        assert storage.run_now(lambda ctx: storage.rows(ctx, count))[0][0] == 3  # the first list, committed
        assert log.pending == 1  # the list of 'kept'; the buffered one of 'gone' was dropped
        storage.run_now(lambda ctx: storage.rows(ctx, "DELETE FROM rec_impressions WHERE user_id = 'gone'"))
        assert log.flush() == 3  # the list of 'kept' only
        assert log.pending == 0
        assert storage.run_now(lambda ctx: storage.rows(ctx, count))[0][0] == 0
    finally:
        release.set()
        storage.close()


def test_a_flush_after_the_store_closed_fails_at_once_and_closing_the_log_still_returns(
    tmp_path: Path,
) -> None:
    """No wait for a writer that is gone: the flush says why, and the service's stop goes on."""
    storage = DuckDBStorage(tmp_path / "store.duckdb")
    storage.start()
    storage.close()
    log = ImpressionLog(storage.write_impressions)
    log.add(_shown("u1"))
    with pytest.raises(StoreError, match="closed"):
        log.flush()
    log.add(_shown("u1"))
    log.start()
    log.close()  # logs the loss, raises nothing
    assert log.written == 0
