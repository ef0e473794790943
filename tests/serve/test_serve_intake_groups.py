"""Group commit on both backends: concurrent batches merged into one transaction, each answered for itself.

The writer folds a group's statements together (DuckDB: BEGIN with the insert, the `loads` row
with COMMIT; PostgreSQL: one statement whose `loads` row counts the insert's own result), and the
batches are typed on the caller's side before they reach it. These tests post batches at once
(so they share groups), with a duplicate inside a batch, one across batches, a rejected record and
an id already stored, and read the store back: every outcome and every `loads` row must add up.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cartlift.store import open_storage


def _event(n: int, *, session: str = "s1", price: Any = 9.5, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"g{n}",
        "ts": "2026-10-01T10:00:00Z",
        "user_id": "u1",
        "session_id": session,
        "event_type": "view",
        "product_id": "p1",
        "price": price,
        **extra,
    }


def test_concurrent_batches_share_groups_and_every_load_row_adds_up(any_db: str) -> None:
    storage = open_storage(any_db)
    stored_rows: list[dict[str, Any]] = []
    storage.on_stored = stored_rows.extend
    batches = [[_event(10 * b + i, session=f"s{b}") for i in range(5)] for b in range(12)]
    batches[3].append(_event(31, session="s3"))  # a retry inside the batch: a duplicate
    batches[4].append(_event(0, session="s0"))  # the same event as in batch 0: one of the two is a duplicate
    batches[5].append(_event(99, price="not a price"))  # rejected, quarantined
    batches[6].append(_event(1, session="s0"))  # stored before the concurrent posts (below)

    async def scenario() -> tuple[list[Any], int]:
        first = await storage.ingest(records=[_event(1, session="s0")])
        outcomes = await asyncio.gather(*(storage.ingest(records=b) for b in batches))
        count = (await storage.sql("SELECT count(*) FROM events"))[0][0]
        return [first, *outcomes], int(count)

    storage.start()
    try:
        outcomes, count = asyncio.run(scenario())
        loads = storage.writer.submit(
            lambda ctx: storage.rows(
                ctx,
                "SELECT rows_read, accepted, duplicates, quarantined FROM loads WHERE format = 'api'",
            )
        ).result()
        quarantined = storage.writer.submit(
            lambda ctx: storage.rows(ctx, "SELECT count(*) FROM quarantine")
        ).result()[0][0]
    finally:
        storage.close()

    distinct = {e["event_id"] for b in batches for e in b} - {"g99"}
    assert count == len(distinct)
    assert sum(o.accepted for o in outcomes) == len(distinct)
    assert sum(o.rejected for o in outcomes) == 1 == quarantined
    assert outcomes[6].errors == [{"index": 5, "event_id": "g99", "reason": outcomes[6].errors[0]["reason"]}]
    assert outcomes[4].duplicates == 1 and outcomes[4].duplicate_ids == ["g31"]
    assert outcomes[7].duplicates == 1 and outcomes[7].duplicate_ids == ["g1"]
    # batch 0 and batch 4 both hold g0: exactly one of them stored it; batch 0 holds g1 too
    assert outcomes[1].duplicate_ids.count("g0") + outcomes[5].duplicate_ids.count("g0") == 1
    assert "g1" in outcomes[1].duplicate_ids
    # the live state heard of every stored event once, with typed values
    assert sorted(r["event_id"] for r in stored_rows) == sorted(distinct)
    assert {type(r["ts"]).__name__ for r in stored_rows} == {"datetime"}
    # one loads row per group, and the groups' counts are the posts' counts
    read = sum(len(b) for b in batches) + 1
    assert sum(r[0] for r in loads) == read
    assert sum(r[1] for r in loads) == len(distinct)
    assert sum(r[3] for r in loads) == 1
    assert sum(r[2] for r in loads) == read - len(distinct) - 1
    assert all(r[0] == r[1] + r[2] + r[3] for r in loads)
