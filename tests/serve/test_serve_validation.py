"""One validation and one id rule on every way in: files, the API, DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from _serve_helpers import Server

from cartlift.events import CONFLICT_REASON
from cartlift.serve import create_key_in_store
from cartlift.store import EventStore, open_store


def _post(server: Server, key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/v1/events",
        # NaN and Infinity as Python's json writes them: what a careless client sends
        content=json.dumps({"events": events}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_same_event_by_file_and_by_api_in_any_spelling_is_stored_once(tmp_path: Path) -> None:
    db = str(tmp_path / "store.duckdb")
    path = tmp_path / "events.csv"
    path.write_text(
        "ts,user_id,session_id,event_type,product_id,price\n2026-10-01T10:00:00Z,u1,s1,cart_add,p1,19.9\n"
    )
    with EventStore(db) as store:
        assert store.ingest(path, "cartlift").accepted == 1
    key = create_key_in_store(db, scope="ingest")[0]
    base = {"user_id": "u1", "session_id": "s1", "event_type": "cart_add", "product_id": "p1"}
    spellings = [
        {**base, "ts": "2026-10-01T10:00:00Z", "price": "19.9"},  # the number as a string
        {**base, "ts": "2026-10-01T11:00:00+01:00", "price": 19.9},  # another offset, the same instant
        {**base, "ts": "2026-10-01T10:00:00.000000Z", "price": 19.90, "quantity": 1},  # the default written
    ]
    with Server(db, tmp_path / "server.log") as server:
        for event in spellings:
            body = _post(server, key, [event])
            assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 1, 0), (event, body)
        # a different event (another quantity) is a new one
        assert _post(server, key, [{**spellings[0], "quantity": 2}])["accepted"] == 1
    with EventStore(db, read_only=True) as store:
        assert store.count("events") == 2


def test_hostile_events_are_refused_per_event_with_reasons_on_both_backends(
    tmp_path: Path, any_db: str
) -> None:
    db = any_db
    key = create_key_in_store(db, scope="ingest")[0]
    good = {
        "ts": "2026-10-01T10:00:00Z",
        "user_id": "h1",
        "session_id": "hs1",
        "event_type": "cart_add",
        "product_id": "p1",
        "price": 5.0,
    }
    batch = [
        {**good, "event_id": "ok"},
        {**good, "event_id": "year0", "ts": "0000-01-01T00:00:00Z"},
        {**good, "event_id": "huge", "price": 1e308},
        {**good, "event_id": "nul", "product_id": "p\x00"},
        {**good, "event_id": ""},
        {**good, "event_id": " "},
        {**good, "event_id": "bool", "price": False},
        {**good, "event_id": "nan", "properties": {"score": float("nan")}},
        {**good, "event_id": "ok", "price": 7.0},
        {**good, "event_id": "ok2", "properties": {"note": "fine"}},
    ]
    with Server(db, tmp_path / "server.log") as server:
        body = _post(server, key, batch)
        again = _post(server, key, batch)  # a client that retries gets no 5xx
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 8)
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [
        (1, "time before 1970"),
        (2, "price above 1,000,000,000"),
        (3, "NUL byte in text"),
        (4, "blank event id"),
        (5, "blank event id"),
        (6, "a boolean is not a number"),
        (7, "properties hold NaN or Infinity"),
        (8, CONFLICT_REASON),
    ]
    # the retry is answered alike: the second "ok" still conflicts with the first
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 2, 8)
    assert again["errors"] == body["errors"]
    with open_store(db, read_only=True) as store:
        assert sorted(r[0] for r in store.con.execute("SELECT event_id FROM events").fetchall()) == [
            "ok",
            "ok2",
        ]
        assert store.con.execute("SELECT price FROM events WHERE event_id = 'ok'").fetchall() == [(5.0,)]
