"""The intake front process on a DuckDB store: event posts answered beside the process that owns the
store, byte for byte as the service alone answers them, with keys revoked at once and either
process killed without losing an acknowledged event."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
from _serve_helpers import Api, Server, alive, check_error, copy_store, gone

from cartlift.serve import create_key_in_store
from cartlift.serve._split import event_post
from cartlift.store import open_store

SMALL_BODY = 30_000
"""The services' body limit here (a few batches of this test fit, one of 400 events does not)."""


def _views(prefix: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "ts": "2026-10-01T10:00:00Z",
            "user_id": "u1",
            "session_id": f"{prefix}-s",
            "event_type": "view",
            "product_id": f"p{i % 7}",
            "price": 9.5,
            **extra,
        }
        for i in range(n)
    ]


def _front_connections(server: Server) -> int:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    found = re.search(r"^cartlift_intake_front_connections (\S+)$", text, re.M)
    assert found, "no cartlift_intake_front_connections gauge"
    return int(float(found.group(1)))


def _rows(db: str, sql: str) -> list[tuple[Any, ...]]:
    with open_store(db, read_only=True) as store:
        return store.con.execute(sql).fetchall()


def test_a_connection_goes_to_the_front_when_its_first_request_is_an_event_post() -> None:
    assert event_post(b"POST /v1/events HTTP/1.1\r\n") is True
    assert event_post(b"POST /v1/events?x=1 HTTP/1.1") is True
    assert event_post(b"POST /v1/events/more HTTP/1.1") is False
    assert event_post(b"GET /v1/events HTTP/1.1") is False
    assert event_post(b"POST /v1/eventsX") is False
    assert event_post(b"POS") is None  # too few bytes yet
    assert event_post(b"POST /v1/events") is None
    assert event_post(b"") is None


def test_event_posts_through_the_front_answer_as_the_service_alone_does(
    trained_store: Path, tmp_path: Path
) -> None:
    """The same requests, on one connection that begins with an event post, to a service with its
    front process and to one without (`--no-intake-process`): the same statuses and bodies, and the
    same rows stored (events, quarantine); requests other than event posts on that connection
    are answered by the service through the front."""
    env = {"CARTLIFT_SERVE_MAX_BODY_BYTES": str(SMALL_BODY)}
    answers: dict[str, list[tuple[int, Any]]] = {}
    dbs: dict[str, str] = {}
    for mode in ("front", "alone"):
        folder = tmp_path / mode
        folder.mkdir()
        db = dbs[mode] = str(copy_store(trained_store, folder))
        keys = {s: create_key_in_store(db, scope=s)[0] for s in ("ingest", "read", "admin")}
        args = [] if mode == "front" else ["--no-intake-process"]
        with Server(db, folder / "server.log", env=env, args=args) as server:
            if mode == "front":
                server.wait_front()
                before = _front_connections(server)
            api = Api(server, keys["ingest"])
            try:
                sent = [
                    api("POST", "/v1/events", json={"events": _views("a", 5)}),
                    api("POST", "/v1/events", json={"events": _views("a", 3)}),  # all stored: duplicates
                    api(
                        "POST",
                        "/v1/events",
                        json={
                            "events": [
                                *_views("b", 2),
                                {"ts": "not a time", "user_id": "u2", "event_type": "view"},
                                {"ts": "2026-10-01T10:00:00Z", "user_id": "u2", "event_type": "teleport"},
                                # no event_id: its id derived, the same whichever process stores it
                                {
                                    "ts": "2026-10-01T11:00:00+01:00",
                                    "user_id": "u3",
                                    "event_type": "cart_add",
                                    "product_id": "p1",
                                    "price": "19.90",
                                    "properties": {"b": 2, "a": 1},
                                },
                            ]
                        },
                    ),
                    api("POST", "/v1/events", json={"events": _views("c", 2)}, key=None),
                    api("POST", "/v1/events", json={"events": _views("c", 2)}, key="cl_not-a-key"),
                    api("POST", "/v1/events", json={"events": _views("c", 2)}, key=keys["read"]),
                    api(
                        "POST",
                        "/v1/events",
                        content=b'{"events": [',
                        headers={"content-type": "application/json"},
                    ),
                    api("POST", "/v1/events", json={"events": []}),
                    api("POST", "/v1/events", json={"events": _views("d", 400)}),  # over the body limit
                    api("POST", "/v1/events", json={"events": [{"x": 1}]}),
                    # not event posts, on the same connection: the service answers them
                    api("GET", "/v1/users/u1/recommendations?k=5", key=keys["read"]),
                    api("GET", "/v1/carts/a-s/risk", key=keys["read"]),
                    api("GET", "/healthz", key=None),
                    api("GET", "/v1/no-such-route", key=keys["read"]),
                    api("POST", "/v1/events", json={"events": _views("f", 4)}),
                ]
                answers[mode] = [(r.status_code, r.json()) for r in sent]
                for r in sent:
                    assert r.status_code < 500, r.text
                if mode == "front":
                    # one connection, handed to the front once: every post above went through it
                    assert _front_connections(server) == before + 1
                    # asked for at once: /metrics gathers the front's counts before it answers
                    metrics = httpx.get(server.url + "/metrics", timeout=5).text
                    assert 'cartlift_events_ingested_total{outcome="accepted"} 12' in metrics, metrics
                    assert (
                        'cartlift_http_requests_total{method="POST",route="/v1/events",status="200"} 4'
                        in metrics
                    )
            finally:
                api.close()
    front, alone = answers["front"], answers["alone"]
    for i, (a, b) in enumerate(zip(front, alone, strict=True)):
        assert a == b, f"request {i}: {a} != {b}"
    assert [s for s, _ in front] == [
        200,
        200,
        200,
        401,
        401,
        403,
        400,
        422,
        413,
        422,
        200,
        200,
        200,
        404,
        200,
    ]
    assert front[1][1]["duplicates"] == 3 and front[2][1]["rejected"] == 2
    for sql in (
        "SELECT event_id, ts, user_id, event_type, price, properties FROM events ORDER BY event_id",
        "SELECT raw, reason FROM quarantine ORDER BY raw",
    ):
        assert _rows(dbs["front"], sql) == _rows(dbs["alone"], sql), sql


def test_a_key_revoked_in_the_service_is_refused_at_once_by_the_front(
    trained_store: Path, tmp_path: Path
) -> None:
    """The front has the ingest key cached; an admin revokes it (through the service); the very next
    post on the front's connection is refused, and another key's posts still go through."""
    db = str(copy_store(trained_store, tmp_path))
    ingest, ingest_id = create_key_in_store(db, scope="ingest")
    other = create_key_in_store(db, scope="ingest")[0]
    admin = create_key_in_store(db, scope="admin")[0]
    with Server(db, tmp_path / "server.log") as server:
        server.wait_front()
        front, service = Api(server, ingest), Api(server, admin)
        try:
            assert front("POST", "/v1/events", json={"events": _views("k", 3)}).status_code == 200
            assert front("POST", "/v1/events", json={"events": _views("k2", 3)}, key=other).status_code == 200
            assert service("DELETE", f"/v1/admin/keys/{ingest_id}").status_code == 200
            body = check_error(front("POST", "/v1/events", json={"events": _views("k3", 3)}), 401)
            assert "revoked" in body["message"]
            answer = front("POST", "/v1/events", json={"events": _views("k4", 3)}, key=other)
            assert answer.status_code == 200 and answer.json()["accepted"] == 3
        finally:
            front.close()
            service.close()
    stored = {r[0] for r in _rows(db, "SELECT event_id FROM events WHERE event_id LIKE 'k%'")}
    assert stored == {f"{p}-{i}" for p in ("k", "k2", "k4") for i in range(3)}


def test_the_service_answers_event_posts_while_its_front_is_down_and_starts_a_new_one(
    trained_store: Path, tmp_path: Path
) -> None:
    db = str(copy_store(trained_store, tmp_path))
    key = create_key_in_store(db, scope="ingest")[0]
    with Server(db, tmp_path / "server.log") as server:
        first = server.wait_front()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            headers = {"Authorization": f"Bearer {key}"}
            assert (
                http.post("/v1/events", json={"events": _views("x", 5)}, headers=headers).status_code == 200
            )
        os.kill(first, signal.SIGKILL)
        assert gone(first)
        # at once, on new connections: answered by the service itself
        for n in range(5):
            with httpx.Client(base_url=server.url, timeout=30) as http:
                r = http.post("/v1/events", json={"events": _views(f"y{n}", 5)}, headers=headers)
                assert r.status_code == 200 and r.json()["accepted"] == 5, r.text
        second = server.wait_front()
        assert second != first
        with httpx.Client(base_url=server.url, timeout=30) as http:
            r = http.post("/v1/events", json={"events": _views("z", 5)}, headers=headers)
            assert r.status_code == 200 and r.json()["accepted"] == 5
    assert not alive(second), "the front outlived the service"
    n = _rows(db, "SELECT count(*) FROM events WHERE regexp_matches(event_id, '^(x|y[0-9]|z)-')")[0][0]
    assert n == 35


def test_the_front_stops_when_the_service_is_killed(trained_store: Path, tmp_path: Path) -> None:
    db = str(copy_store(trained_store, tmp_path))
    server = Server(db, tmp_path / "server.log").start()
    try:
        front = server.wait_front()
        server.kill9()
        assert gone(front), "the front process outlived the service killed with SIGKILL"
    finally:
        server.stop()
    assert _rows(db, "SELECT count(*) FROM events")[0][0] > 0  # the store opens: nobody holds it
