"""The service's storage: a posted group's catalog merge is skipped only where it would change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cartlift.store import DuckDBStorage


def _event(n: int, price: float | None, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "ts": "2026-10-01T10:00:00Z",
        "user_id": "u1",
        "session_id": "s1",
        "event_type": "view",
        "product_id": "p1",
        "price": price,
        **extra,
    }


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
