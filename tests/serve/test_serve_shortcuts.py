"""The shortcuts in front of the framework answer exactly what the whole stack answers.

Two real servers on copies of the same store: one as it runs by default (posted events and plain
recommendation requests take the shortcut, `cartlift.serve._shortcuts`), one with CORS on, which
sends every request through FastAPI's stack. The same requests, in the same order, must get the
same status, headers and body from both, and the same counts in ``/metrics``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _serve_helpers import Server, copy_store

from cartlift.serve import ServeSettings, create_app, create_key_in_store

EVENT = {
    "ts": "2026-10-01T10:00:00Z",
    "user_id": "shortcut-u1",
    "session_id": "shortcut-s1",
    "event_type": "view",
    "product_id": "p1",
    "price": 9.5,
}


@pytest.fixture(scope="module")
def twins(trained_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``{"shortcut": (url, keys), "stack": (url, keys)}``: the same store and keys, with and without CORS."""
    out: dict[str, Any] = {}
    servers = []
    try:
        for name, env in (
            ("shortcut", {}),
            ("stack", {"CARTLIFT_SERVE_CORS_ORIGINS": "https://shop.example"}),
        ):
            folder = tmp_path_factory.mktemp(name)
            db = str(copy_store(trained_store, folder))
            keys = {s: create_key_in_store(db, scope=s)[0] for s in ("read", "ingest")}
            keys["slow"] = create_key_in_store(db, scope="ingest", rate_limit=1.0)[0]
            server = Server(db, folder / "server.log", env={**env, "CARTLIFT_SERVE_MAX_BODY_BYTES": "2000"})
            servers.append(server.start())
            out[name] = (server.url, keys)
        yield out
    finally:
        for server in servers:
            server.stop()


def _chunks(size: int) -> Iterator[bytes]:
    # no Content-Length: the limit has to count the body as it streams in
    body = b'{"events": [' + b" " * size + b"]}"
    for i in range(0, len(body), 500):
        yield body[i : i + 500]


REQUESTS: list[tuple[str, str, str | None, dict[str, Any]]] = [
    # (method, path, key name or None, httpx arguments)
    ("POST", "/v1/events", "ingest", {"json": {"events": [{**EVENT, "event_id": "sc-1"}]}}),
    ("POST", "/v1/events", "ingest", {"json": {"events": [{**EVENT, "event_id": "sc-1"}]}}),  # duplicate
    ("POST", "/v1/events", "ingest", {"json": {"events": [{**EVENT, "ts": "yesterday"}]}}),  # rejected
    ("POST", "/v1/events", "ingest", {"json": {"events": [EVENT, EVENT]}}),  # no ids: one stored
    ("POST", "/v1/events", None, {"json": {"events": [EVENT]}}),
    ("POST", "/v1/events", "wrong", {"json": {"events": [EVENT]}}),
    ("POST", "/v1/events", "read", {"json": {"events": [EVENT]}}),
    (
        "POST",
        "/v1/events",
        "ingest",
        {"content": b'{"events": [', "headers": {"content-type": "application/json"}},
    ),
    ("POST", "/v1/events", "ingest", {"json": {"events": []}}),
    ("POST", "/v1/events", "ingest", {"json": {"events": [{**EVENT, "colour": "red"}]}}),
    ("POST", "/v1/events", "ingest", {"content": b"events", "headers": {"content-type": "text/plain"}}),
    ("POST", "/v1/events", "ingest", {"content": b""}),
    ("POST", "/v1/events", None, {"json": {"events": [EVENT] * 40}}),  # declared too large, before the key
    ("POST", "/v1/events", "ingest", {"content": _chunks(3000)}),  # streamed too large
    ("POST", "/v1/events?x=1", "ingest", {"json": {"events": [{**EVENT, "event_id": "sc-2"}]}}),
    ("POST", "/v1/events", "slow", {"json": {"events": [{**EVENT, "event_id": "sc-3"}]}}),
    ("POST", "/v1/events", "slow", {"json": {"events": [{**EVENT, "event_id": "sc-4"}]}}),  # 429
    ("GET", "/v1/events", "ingest", {}),  # 405: not the shortcut's
    ("GET", "/v1/users/u1/recommendations", "read", {}),
    ("GET", "/v1/users/u1/recommendations?k=3", "read", {}),
    ("GET", "/v1/users/nobody-knows-me/recommendations", "read", {}),
    ("GET", "/v1/users/u1/recommendations?k=0", "read", {}),
    ("GET", "/v1/users/u1/recommendations?k=101", "read", {}),
    ("GET", "/v1/users/u1/recommendations?k=3&context=cart", "read", {}),
    ("GET", "/v1/users/" + "x" * 201 + "/recommendations", "read", {}),
    ("GET", "/v1/users/a%2Fb/recommendations", "read", {}),
    ("GET", "/v1/users/u1/recommendations", None, {}),
    ("GET", "/v1/users/u1/recommendations", "ingest", {}),
    ("POST", "/v1/users/u1/recommendations", "read", {}),
]


def _ask(
    url: str, keys: dict[str, str], method: str, path: str, key: str | None, kw: dict[str, Any]
) -> httpx.Response:
    headers = dict(kw.get("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {keys.get(key, 'not-a-key')}"
    args = {k: v for k, v in kw.items() if k != "headers"}
    if "content" in args and not isinstance(args["content"], bytes):
        args["content"] = _chunks(3000)  # a generator is used once: a new one per server
    return httpx.request(method, url + path, headers=headers, timeout=30, **args)


def _counted(text: str) -> dict[str, float]:
    """The request, posted-event and rate-limit counters of a /metrics page."""
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if re.match(r"cartlift_(http_requests_total\{|events_ingested_total\{|rate_limited_total )", line)
    }


def test_shortcuts_answer_what_the_whole_stack_answers(twins: dict[str, Any]) -> None:
    answers: dict[str, list[tuple[int, dict[str, str], bytes]]] = {"shortcut": [], "stack": []}
    for method, path, key, kw in REQUESTS:
        for name, (url, keys) in twins.items():
            r = _ask(url, keys, method, path, key, kw)
            headers = {k: v for k, v in r.headers.items() if k not in ("date", "vary")}
            # the wait a 429 names depends on when it was asked
            body = re.sub(rb"retry after \d+\.\d+ s", b"retry after N s", r.content)
            if body != r.content:
                headers.pop("content-length")
            answers[name].append((r.status_code, headers, body))
        time.sleep(0.01)
    for (method, path, key, _), got, want in zip(
        REQUESTS, answers["shortcut"], answers["stack"], strict=True
    ):
        assert got == want, f"{method} {path} with key {key}"
    statuses = [a[0] for a in answers["shortcut"]]
    # the requests reached what they were written for, so the comparison covers those answers
    assert statuses[:4] == [200, 200, 200, 200]
    assert {401, 403, 400, 413, 422, 429, 405, 404} <= set(statuses)
    first, again = (httpx.Response(200, content=a[2]).json() for a in answers["shortcut"][:2])
    assert (first["accepted"], again["duplicates"]) == (1, 1)
    seen = [_counted(httpx.get(url + "/metrics", timeout=30).text) for url, _ in twins.values()]
    assert seen[0] == seen[1], {
        k: (seen[0].get(k), seen[1].get(k))
        for k in seen[0].keys() | seen[1].keys()
        if seen[0].get(k) != seen[1].get(k)
    }
    assert seen[0]['cartlift_http_requests_total{method="POST",route="/v1/events",status="200"}'] >= 6


def test_the_shortcuts_are_on_unless_cors_wraps_the_app(tmp_path: Path) -> None:
    # the comparison above means something only if the default server takes the shortcuts
    plain = create_app(ServeSettings(db=str(tmp_path / "s.duckdb")))
    cors = create_app(ServeSettings(db=str(tmp_path / "s.duckdb"), cors_origins=["https://shop.example"]))
    assert getattr(plain, "events_limit", None) is not None
    assert getattr(cors, "events_limit", None) is None
