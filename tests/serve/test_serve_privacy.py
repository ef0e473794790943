"""Pseudonymised user ids: the store never holds the id a client sent when a secret is configured."""

from __future__ import annotations

from pathlib import Path

from _serve_helpers import Api, Server, make_events

from cartlift.serve import create_key_in_store, pseudonymise
from cartlift.store import EventStore

SECRET = "a-test-secret-of-the-shop"


def test_user_ids_are_stored_as_keyed_hashes(tmp_path: Path) -> None:
    db = str(tmp_path / "store.duckdb")
    key = create_key_in_store(db, scope="admin")[0]
    events = [{**e, "user_id": "alice@example.com"} for e in make_events(sessions=5)]
    with Server(db, tmp_path / "server.log", env={"CARTLIFT_SERVE_PSEUDONYMISE_KEY": SECRET}) as server:
        api = Api(server, key)
        try:
            assert api("POST", "/v1/events", json={"events": events}).json()["accepted"] == len(events)
            assert api("GET", "/v1/users/alice@example.com/recommendations?k=3").status_code == 200
            assert api("GET", "/v1/experiments/none/assignment?unit=alice@example.com").status_code == 404
        finally:
            api.close()
    with EventStore(db, read_only=True) as store:
        users = {r[0] for r in store.con.execute("SELECT DISTINCT user_id FROM events").fetchall()}
        raw = store.con.execute("SELECT string_agg(properties, '') FROM events").fetchall()[0][0] or ""
    assert users == {pseudonymise("alice@example.com", SECRET)}
    assert "alice" not in raw
    # erasure takes the id as the client knows it
    with Server(db, tmp_path / "server.log", env={"CARTLIFT_SERVE_PSEUDONYMISE_KEY": SECRET}) as server:
        api = Api(server, key)
        try:
            assert api("DELETE", "/v1/users/alice@example.com").json()["erased"]["events"] == len(events)
        finally:
            api.close()
