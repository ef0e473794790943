"""Durability: kill -9 the server while clients post; every acknowledged event survives, none twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from _serve_helpers import Server, gone

from cartlift.serve import create_key_in_store
from cartlift.store import open_store

CLIENTS = 4
BATCH = 20


def _batch(client: int, n: int) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"c{client}-b{n}-e{i}",
            "ts": "2026-10-01T10:00:00Z",
            "user_id": f"user{client}",
            "session_id": f"c{client}-b{n}",
            "event_type": "view",
            "product_id": f"p{i}",
            "price": 1.0,
        }
        for i in range(BATCH)
    ]


def _stored(db: str, sql: str) -> list[tuple[object, ...]]:
    with open_store(db, read_only=True) as store:
        return store.con.execute(sql).fetchall()


@pytest.mark.slow
def test_kill9_while_posting_loses_no_acknowledged_event(tmp_path: Path, any_db: str) -> None:
    db = any_db
    key = create_key_in_store(db, scope="ingest")[0]
    headers = {"Authorization": f"Bearer {key}"}
    acked: list[set[str]] = [set() for _ in range(CLIENTS)]
    sent: list[list[list[dict[str, object]]]] = [[] for _ in range(CLIENTS)]
    stop = threading.Event()
    server = Server(db, tmp_path / "server.log").start()
    # on DuckDB the posts go through the intake front process (once it is connected), as users run it
    front = None if db.startswith("postgresql") else server.wait_front()

    def client(c: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            n = 0
            while not stop.is_set() and n < 5_000:
                batch = _batch(c, n)
                sent[c].append(batch)
                n += 1
                try:
                    r = http.post("/v1/events", json={"events": batch}, headers=headers)
                except httpx.HTTPError:
                    return  # the server died under us: this batch is unacknowledged
                if 200 <= r.status_code < 300:
                    acked[c].update(str(e["event_id"]) for e in batch)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while sum(map(len, acked)) < 2_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill9()
        if front is not None:
            assert gone(front), "the front process outlived the service"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.stop()
    acknowledged = set().union(*acked)
    assert len(acknowledged) >= 500, "too few acknowledged events before the kill to test anything"

    stored = {
        str(r[0]): int(str(r[1])) for r in _stored(db, "SELECT event_id, count(*) FROM events GROUP BY 1")
    }
    assert acknowledged <= set(stored), f"{len(acknowledged - set(stored))} acknowledged events were lost"
    assert max(stored.values()) == 1

    # clients retry everything they sent: after restart, each event is stored exactly once
    with Server(db, tmp_path / "server.log") as again, httpx.Client(base_url=again.url, timeout=30) as http:
        for batches in sent:
            for batch in batches:
                assert http.post("/v1/events", json={"events": batch}, headers=headers).status_code == 200
    total, distinct = _stored(db, "SELECT count(*), count(DISTINCT event_id) FROM events")[0]
    assert total == distinct == sum(len(b) for batches in sent for b in batches)
