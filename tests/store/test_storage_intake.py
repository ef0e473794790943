"""The service's storage: a posted group's catalog merge is skipped only where it would change nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any
from unittest.mock import patch

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from _store_helpers import event as _event
from hypothesis import given
from hypothesis import strategies as st

from cartlift.events import STORED_COLUMNS
from cartlift.store import DuckDBStorage, EventStore
from cartlift.store._storage import LIVE_COLUMNS, StoredIds, _live_row, _merge_sorted


def test_the_catalog_is_what_the_merge_would_make_whatever_ran_between_groups(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "store.duckdb")

    async def scenario() -> list[tuple[Any, ...]]:
        seen = []

        async def product() -> tuple[Any, ...]:
            return (await storage.sql("SELECT title, brand, price FROM products WHERE product_id = 'p1'"))[0]

        await storage.ingest(records=[_event(1, 10.0)])
        seen.append(await product())
        await storage.ingest(records=[_event(2, 10.0)])  # nothing new: the merge is skipped
        await storage.ingest(records=[_event(3, 12.0), _event(4, None), _event(5, 0.0)])
        seen.append(await product())
        # another job changes the catalog: the writer no longer trusts what it merged
        await storage.sql("UPDATE products SET price = 5, brand = 'B' WHERE product_id = 'p1'")
        await storage.ingest(records=[_event(6, 12.0)])
        seen.append(await product())
        await storage.ingest(records=[_event(7, 12.0, properties=None)])  # skipped again: holds 12
        await storage.run(lambda ctx: storage.rows(ctx, "SELECT 1"))
        seen.append(await product())
        return seen

    storage.start()
    try:
        seen = asyncio.run(scenario())
    finally:
        storage.close()
    assert seen == [(None, None, 10.0), (None, None, 12.0), (None, "B", 12.0), (None, "B", 12.0)]


def test_the_public_sql_runs_on_the_writer_in_a_transaction(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "store.duckdb")

    def both(ctx: Any) -> int:
        with storage.transaction(ctx):
            storage.rows(ctx, "INSERT INTO products (product_id, price) VALUES ('a', 1)")
            storage.rows(ctx, "INSERT INTO products (product_id, price) VALUES ('b', 2)")
        return int(storage.rows(ctx, "SELECT count(*) FROM products")[0][0])

    def failing(ctx: Any) -> None:
        with storage.transaction(ctx):
            storage.rows(ctx, "INSERT INTO products (product_id, price) VALUES ('c', 3)")
            storage.rows(ctx, "INSERT INTO products (product_id, price) VALUES ('a', 1)")  # duplicate key

    storage.start()
    try:
        assert asyncio.run(storage.run(both)) == 2
        with pytest.raises(duckdb.ConstraintException, match="Duplicate key"):
            asyncio.run(storage.run(failing))
        assert asyncio.run(storage.sql("SELECT product_id FROM products ORDER BY 1")) == [("a",), ("b",)]
    finally:
        storage.close()


def test_an_event_id_is_stored_once_whoever_stored_it_first(tmp_path: Path) -> None:
    # posted groups skip the look-up of stored ids when the writer's hashes of them say none is
    # stored: events stored by other jobs (an import on the writer, a load without it), before the
    # service started or between groups, must still be found
    path = tmp_path / "store.duckdb"
    with EventStore(path) as store:
        store.ingest_records([_event(1, 10.0)], source="before")
    storage = DuckDBStorage(path)

    async def scenario() -> list[tuple[int, int]]:
        counts = []
        for batch in (
            [_event(1, 10.0), _event(2, 10.0)],  # e1 was stored before the service started
            [_event(3, 10.0)],
            [_event(2, 10.0), _event(4, 10.0)],  # e2 came in a posted group
        ):
            outcome = await storage.ingest(records=batch)
            counts.append((outcome.accepted, outcome.duplicates))
        # an import through another job, then the same ids posted
        await storage.with_store(lambda store: store.ingest_records([_event(5, 10.0)], source="job"))
        outcome = await storage.ingest(records=[_event(5, 10.0), _event(6, 10.0)])
        counts.append((outcome.accepted, outcome.duplicates))
        # a job that stores nothing: the hashes stay trusted, the ids still found
        await storage.sql("SELECT 1")
        outcome = await storage.ingest(records=[_event(6, 10.0), _event(3, 10.0), _event(7, 10.0)])
        counts.append((outcome.accepted, outcome.duplicates))
        return counts

    storage.start()
    try:
        counts = asyncio.run(scenario())
    finally:
        storage.close()
    assert counts == [(1, 1), (1, 0), (1, 1), (1, 1), (1, 2)]
    # loads while the service is stopped (`run_now`): posted ones and an import between them
    loading = DuckDBStorage(path)

    def load(ctx: EventStore) -> tuple[int, int]:
        loading.ingest_now(ctx, [_event(8, 10.0)])
        ctx.ingest_records([_event(9, 10.0)], source="import")
        outcome = loading.ingest_now(ctx, [_event(9, 10.0), _event(10, 10.0)])
        return outcome.accepted, outcome.duplicates

    assert loading.run_now(load) == (1, 1)
    storage = DuckDBStorage(path)
    storage.start()
    try:
        outcome = asyncio.run(storage.ingest(records=[_event(8, 10.0), _event(7, 10.0), _event(11, 10.0)]))
    finally:
        storage.close()
    assert (outcome.accepted, outcome.duplicates) == (1, 2)
    with EventStore(path) as store:
        ids = [r[0] for r in store.con.execute("SELECT event_id FROM events ORDER BY 1").fetchall()]
    assert ids == sorted(f"e{i}" for i in range(1, 12))


def test_each_posted_group_leaves_its_counts_in_loads_whichever_way_it_was_written(tmp_path: Path) -> None:
    # a group of new ids writes its events and its loads row in one call, without RETURNING: the
    # counts it records must be what it stored, as those of groups that look stored ids up
    storage = DuckDBStorage(tmp_path / "store.duckdb")

    async def scenario() -> list[tuple[Any, ...]]:
        await storage.ingest(records=[_event(1)])  # p1 is new to the catalog: merged
        await storage.ingest(records=[_event(2), _event(3)])  # new ids, nothing else: one call
        await storage.ingest(records=[_event(3), _event(4)])  # e3 stored: the look-up
        await storage.ingest(records=[_event(5), _event(6, event_type="nope")])  # one quarantined
        await storage.ingest(records=[_event(7, price=20.0)])  # p1's price changes
        return await storage.sql(
            "SELECT rows_read, accepted, duplicates, quarantined FROM loads WHERE format = 'api' ORDER BY finished_at"
        )

    storage.start()
    try:
        loads = asyncio.run(scenario())
    finally:
        storage.close()
    assert loads == [(1, 1, 0, 0), (2, 2, 0, 0), (2, 1, 1, 0), (2, 1, 0, 1), (1, 1, 0, 0)]
    with EventStore(tmp_path / "store.duckdb") as store:
        assert store.count("events") == 6
        assert store.con.execute("SELECT price FROM products WHERE product_id = 'p1'").fetchall() == [(20.0,)]


def _threads_seen(path: Path) -> list[int]:
    """DuckDB's threads in a writer job, a `with_store` job, and a writer job after it."""
    storage = DuckDBStorage(path)

    def setting(store: EventStore) -> int:
        return int(store.con.execute("SELECT current_setting('threads')").fetchall()[0][0])

    async def scenario() -> list[int]:
        return [await storage.run(setting), await storage.with_store(setting), await storage.run(setting)]

    storage.start()
    try:
        return asyncio.run(scenario())
    finally:
        storage.close()


def test_the_writer_plans_on_one_duckdb_thread_and_package_jobs_on_every_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARTLIFT_THREADS", raising=False)
    assert _threads_seen(tmp_path / "store.duckdb") == [1, os.cpu_count() or 1, 1]
    # a setting of the user's holds for both
    monkeypatch.setenv("CARTLIFT_THREADS", "3")
    assert _threads_seen(tmp_path / "store.duckdb") == [3, 3, 3]


@given(
    st.lists(st.text(max_size=12), max_size=60, unique=True),
    st.lists(st.text(max_size=12), max_size=60),
    st.integers(1, 20),
)
def test_stored_ids_never_miss_an_id_added(first: list[str], later: list[str], recent: int) -> None:
    with patch("cartlift.store._storage._RECENT_IDS", recent):  # the set joins the array often
        known = StoredIds.of([pa.record_batch([pa.array(first, pa.string())], names=["event_id"])])
        for i in range(0, len(later), 7):
            known.add(later[i : i + 7])
    held = set(first) | set(later)
    assert all(known.maybe([i]) for i in held)
    assert not known.maybe([])
    # an id never added is found only when its 64-bit hash equals one held's (about 1e-17 here)
    assert known.maybe(["never added", *held]) == bool(held) or "never added" in held
    if "never added" not in held:
        assert not known.maybe(["never added"])


def test_stored_ids_find_every_id_while_recent_ones_are_merged() -> None:
    """The merge of recent hashes runs on a thread of its own: held up here, every id added is
    still found (in the joining array or the new set), and after it as well."""
    gate = threading.Event()

    def held_up(held: np.ndarray, new: np.ndarray) -> np.ndarray:
        gate.wait(10)
        return _merge_sorted(held, new)

    added = [f"id{i}" for i in range(12)]
    with (
        patch("cartlift.store._storage._RECENT_IDS", 5),
        patch("cartlift.store._storage._merge_sorted", held_up),
    ):
        known = StoredIds.of([pa.record_batch([pa.array(added[:2], pa.string())], names=["event_id"])])
        known.add(added[2:7])  # five recent: they start joining the array, and the merge waits
        assert known.add(added[7:]) is False  # none of these was held before
        assert known._merge is not None and not known._merge.done()
        assert all(known.maybe([i]) for i in added) and not known.maybe(["never added"])
        assert len(known) == 12
        gate.set()
        known._merge.result(10)
        assert all(known.maybe([i]) for i in added) and not known.maybe(["never added"])
        assert len(known) == 12 and known._merge is None


def test_the_writer_folds_the_log_into_the_file_when_it_falls_idle(tmp_path: Path) -> None:
    # the checkpoint happens between loads, not inside the commit a client waits for; a store
    # left alone holds its events in the file, so a crash or a copy of the file loses nothing
    storage = DuckDBStorage(tmp_path / "store.duckdb")
    wal = tmp_path / "store.duckdb.wal"

    def logged() -> int:
        return wal.stat().st_size if wal.exists() else 0

    storage.start()
    try:
        asyncio.run(storage.ingest(records=[_event(n, 10.0) for n in range(50)]))
        assert logged() > 0  # committed to the log: far below the threshold of a checkpoint
        deadline = time.monotonic() + 15
        while logged() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logged() == 0
        copy = tmp_path / "copy.duckdb"
        shutil.copy(tmp_path / "store.duckdb", copy)  # the file alone, without its log
        with duckdb.connect(str(copy), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM events").fetchone() == (50,)
    finally:
        storage.close()


def test_a_live_row_holds_the_live_columns_of_a_typed_row() -> None:
    # the live sessions read these keys; the record is spelled out for speed, so it is checked here
    row = tuple(f"value of {c}" for c in STORED_COLUMNS)
    assert _live_row(row) == {c: f"value of {c}" for c in LIVE_COLUMNS}
    assert list(_live_row(row)) == list(LIVE_COLUMNS)
