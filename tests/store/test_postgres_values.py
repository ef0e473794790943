"""The PostgreSQL store keeps every value of a posted event exactly as the DuckDB store does.

Its insert sends a group's rows to PostgreSQL as one JSON text (`cartlift.store._postgres`); the
DuckDB store, whose insert reads the Arrow table itself, is the reference. Runs against the real
PostgreSQL on 127.0.0.1:5432 (a schema of its own, dropped after) and skips without it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cartlift.errors import StoreError
from cartlift.events._check import typed_rows
from cartlift.store import DuckDBStorage, PostgresStorage, Storage, _postgres
from cartlift.store._postgres import _event_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from _serve_helpers import pg_schema
from _store_helpers import event

COLUMNS = "event_id, ts, user_id, session_id, event_type, product_id, quantity, price, order_id, channel, device, properties"

# the check's shortcut types these in Python (`typed_rows`): their tuples are what PostgreSQL gets
TYPED = [
    event(2, price=123456789.12345679, ts="2026-10-01T10:00:00.123456+05:30", quantity="3"),
    event(
        3, price=1e-300, session_id='s "quoted" \\ back', properties='{"emoji": "🛒", "n": [1, 2.5, null]}'
    ),
    event(5, channel="web\tapp\nline", device="   padded   "),
    event(7, event_type="cart_add", quantity=2, price=19.99, ts="2026-10-01T23:59:59.999999-11:00"),
    {**event(8), "event_id": 'id "with" \\ json {"chars": [1]}'},
]
# these only the importers' SQL checks: PostgreSQL gets the Arrow table's values
OTHERS = [
    event(1, price=0.1, user_id="ü\\\"ser'; DROP TABLE events; --"),
    event(4, price=None, product_id="製品-é", order_id="o-1", event_type="purchase", quantity=2_000_000_000),
    {**event(6), "event_type": "teleport"},  # refused: its batch takes the generic insert
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


def _stored(storage: Storage, batches: list[list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """Post ``batches`` one after the other (as the API does) and read every stored event back."""
    storage.start()
    try:

        async def post() -> list[Any]:
            return [await storage.ingest(records=[dict(r) for r in batch]) for batch in batches]

        outcomes = asyncio.run(post())
        assert [o.accepted for o in outcomes] == [
            len(b) - sum(r["event_type"] == "teleport" for r in b) for b in batches
        ]
        return storage.run_now(
            lambda ctx: storage.rows(ctx, f"SELECT {COLUMNS} FROM events ORDER BY event_id")
        )
    finally:
        storage.close()


@pytest.mark.parametrize("json_rows", [None, 2], ids=["one-statement", "in-chunks"])
def test_postgres_stores_every_value_as_duckdb_does(
    tmp_path: Path, pg_url: str, json_rows: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if json_rows is not None:  # a group larger than one JSON parameter holds: sent in chunks
        monkeypatch.setattr(_postgres, "_JSON_ROWS", json_rows)
    assert typed_rows([dict(r) for r in TYPED]) is not None
    assert typed_rows([dict(r) for r in OTHERS]) is None
    batches = [TYPED, OTHERS]
    reference = _stored(DuckDBStorage(tmp_path / "store.duckdb"), batches)
    assert len(reference) == 7
    assert _stored(PostgresStorage(pg_url), batches) == reference


def test_a_price_that_is_not_finite_is_refused_not_stored_as_missing() -> None:
    rows = pa.table({"event_id": ["a", "b"], "price": [1.0, float("inf")]})
    with pytest.raises(StoreError, match="not a finite number"):
        _event_json(rows)
