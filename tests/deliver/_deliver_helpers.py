"""Helpers of the delivery tests: a small shop with contacts and decisions, real SMTP and HTTP servers, the service."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from cartlift.act import create_decision_tables, set_holdout
from cartlift.deliver import Db, DeliverSettings, load_contacts
from cartlift.store import EventStore


def free_port() -> int:
    """A TCP port nobody listens on now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# -- a shop -------------------------------------------------------------------------------------------
def message_ids(sink: Sink) -> list[str]:
    """The Message-ID local part (the outbox row's id) of every e-mail received, repeats included."""
    return [m["Message-ID"].strip("<>").split("@")[0] for m in sink.mails()]


def copy_to_postgres(duck: Path, url: str) -> None:
    """Create a PostgreSQL store at ``url`` (the service's tables) and copy a DuckDB shop's rows into it."""
    import duckdb

    from cartlift.deliver import connect_postgres
    from cartlift.deliver._repo import create
    from cartlift.store._postgres import connect

    connect(url).close()
    pg = connect_postgres(url)
    create(pg)
    src = duckdb.connect(str(duck), read_only=True)
    for table in ("events", "products", "decisions", "customers", "consents"):
        cur = src.execute(f"SELECT * FROM {table}")
        cols = [d[0] for d in cur.description]
        pg.insert(table, cols, cur.fetchall())
    src.close()
    pg.con.close()


def make_shop(path: Path, *, carts: int = 6, decided_ago: timedelta = timedelta(hours=2)) -> Path:
    """A store with ``carts`` abandoned carts (users u0.., sessions s0..), contacts and e-mail decisions.

    Every customer consented to e-mail, u0 also to SMS; every cart has one ``reminder_email_1h``
    decision (u1's is ``coupon_10`` with a code), decided ``decided_ago`` before now. The global
    holdout's share is 0 (no cart held out).
    """
    now = utcnow()
    events: list[dict[str, Any]] = []
    for i in range(carts):
        t = now - decided_ago - timedelta(minutes=10)
        for j in range(2):
            events.append(
                {"event_id": f"e{i}-{j}", "ts": (t + timedelta(seconds=j)).isoformat() + "Z", "user_id": f"u{i}",
                 "session_id": f"s{i}", "event_type": "cart_add", "product_id": f"p{(i + j) % 5}",
                 "price": 10.0 + (i + j) % 5, "quantity": 1}
            )  # fmt: skip
    events.append(
        {"event_id": "buy-old", "ts": (now - timedelta(days=5)).isoformat() + "Z", "user_id": "u9",
         "session_id": "old", "event_type": "purchase", "product_id": "p1", "price": 11.0, "quantity": 1}
    )  # fmt: skip
    with EventStore(path) as store:
        store.ingest_records(events, source="test")
        store.ingest_products(
            [{"product_id": f"p{k}", "title": f"Product <{k}> & more", "category": "c", "price": 10.0 + k, "cost": 5.0}
             for k in range(5)]
        )  # fmt: skip
        db = Db(store.con)
        contacts = [
            {"user_id": f"u{i}", "email": f"u{i}@example.com", "phone": "+12025550100" if i == 0 else None,
             "time_zone": "Europe/Berlin" if i % 2 else "America/New_York", "email_consent": True,
             "sms_consent": i == 0}
            for i in range(carts)
        ]  # fmt: skip
        load_contacts(db, contacts, source="test")
        create_decision_tables(store)
        # no global holdout here: these tests count every message (tests/deliver/test_holdout.py has one)
        set_holdout(store, 0.0)
        rows = [
            [f"d{i}", now - decided_ago, f"u{i}", f"s{i}", "coupon_10" if i == 1 else "reminder_email_1h",
             "CODE-U1" if i == 1 else None, now + timedelta(hours=70) if i == 1 else None, 2.1 if i == 1 else 0.0]
            for i in range(carts)
        ]  # fmt: skip
        store.con.executemany(
            "INSERT INTO decisions (decision_id, ts, user_id, cart_id, policy, action, channel, propensity, "
            "window_hours, coupon_code, coupon_expires_at, discount_value) VALUES (?, ?, ?, ?, 'default', ?, 'email', "
            "0.5, 168, ?, ?, ?)",
            rows,
        )
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A fresh shop store (see `make_shop`)."""
    return make_shop(tmp_path / "shop.duckdb")


def settings(**kw: Any) -> DeliverSettings:
    """Settings for tests: no quiet hours (the clock of the machine must not decide), quick retries."""
    base: dict[str, Any] = {"quiet_hours": None, "backoff_seconds": 0.01, "max_per_week": None}
    return DeliverSettings(**{**base, **kw})


# -- an SMTP server ---------------------------------------------------------------------------------
@dataclass
class Sink:
    """What the SMTP server received; ``answers`` are replies to give to the next DATA commands."""

    received: list[bytes] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    delay: float = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answers:
            return self.answers.pop(0)
        self.received.append(envelope.original_content or envelope.content)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted"

    def mails(self) -> list[Message]:
        return [message_from_bytes(b) for b in self.received]


@dataclass
class SmtpServer:
    sink: Sink
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An aiosmtpd server on 127.0.0.1 that keeps every message."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(sink, controller.port)
    finally:
        controller.stop()


# -- an HTTP server -------------------------------------------------------------------------------------
@dataclass
class HttpLog:
    """Requests received (method, path, headers, body) and the answers to give: (status, body, delay)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any], float]] = field(default_factory=list)


@dataclass
class HttpServer:
    log: HttpLog
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def http() -> Iterator[HttpServer]:
    """A local HTTP server that records each request and answers from ``log.answers`` (default 201)."""
    log = HttpLog()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            log.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status, doc, delay = (
                log.answers.pop(0) if log.answers else (201, {"sid": f"SM{len(log.requests)}"}, 0.0)
            )
            time.sleep(delay)
            payload = json.dumps(doc).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up (time-out test)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpServer(log, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# -- the service ----------------------------------------------------------------------------------------
CLI = Path(__import__("sys").executable).with_name("cartlift")


class Served:
    """``cartlift serve`` as a real process on 127.0.0.1 (stopped with SIGTERM on exit)."""

    def __init__(self, db: Path, env: dict[str, str]) -> None:
        import os

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.env = {**os.environ, "CARTLIFT_PUBLIC_URL": self.url, **env}
        self.log = db.parent / "serve.log"

    def __enter__(self) -> Served:
        import subprocess

        import httpx

        cmd = [str(CLI), "serve", "--db", str(self.db), "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text()[-3000:])
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("cartlift serve did not start: " + self.log.read_text()[-3000:])

    def __exit__(self, *exc: object) -> None:
        import signal

        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
