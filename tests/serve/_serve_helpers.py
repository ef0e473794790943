"""Helpers of the service tests: a synthetic shop, real server processes on free ports, HTTP calls."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

CLI = Path(sys.executable).with_name("cartlift")  # the installed command, as users run it
N_PRODUCTS = 40


def make_events(*, sessions: int = 600, users: int = 150, seed: int = 0) -> list[dict[str, Any]]:
    """A small shop: users with a taste for one of four product groups, views, carts, purchases."""
    rng = random.Random(seed)
    base = datetime(2026, 9, 1)
    events: list[dict[str, Any]] = []
    for s in range(sessions):
        user = rng.randrange(users)
        group = user % 4
        t = base + timedelta(minutes=37 * s)
        carted = []
        for _ in range(rng.randint(1, 4)):
            p = group * 10 + rng.randrange(10)
            price = 5.0 + p
            t += timedelta(seconds=rng.randint(5, 120))
            events.append(_event(len(events), t, user, s, "view", p, price))
            if rng.random() < 0.5:
                t += timedelta(seconds=rng.randint(5, 60))
                events.append(_event(len(events), t, user, s, "cart_add", p, price))
                carted.append((p, price))
        if carted and rng.random() < 0.6:
            t += timedelta(seconds=30)
            events.append(_event(len(events), t, user, s, "checkout", None, None))
            if rng.random() < 0.7:
                for p, price in carted:
                    t += timedelta(seconds=1)
                    events.append(_event(len(events), t, user, s, "purchase", p, price))
    return events


def _event(
    n: int, t: datetime, user: int, session: int, kind: str, product: int | None, price: float | None
) -> dict[str, Any]:
    return {
        "event_id": f"seed-{n}",
        "ts": t.isoformat() + "Z",
        "user_id": f"u{user}",
        "session_id": f"s{session}",
        "event_type": kind,
        "product_id": None if product is None else f"p{product}",
        "price": price,
        "quantity": 1,
    }


def children_of(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def gone(pid: int, timeout: float = 15.0) -> bool:
    """Wait up to ``timeout`` seconds for process ``pid`` to end; True when it has."""
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def free_port() -> int:
    """A TCP port nobody listens on now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``cartlift serve`` as a real process on 127.0.0.1, always stopped on exit.

    Parameters
    ----------
    db : str
        The store (DuckDB file or PostgreSQL URL).
    log : Path
        Where the server's output goes (read when it fails to start).
    env : mapping, optional
        Extra environment (``CARTLIFT_SERVE_*`` settings).
    args : list of str, optional
        Extra ``serve`` options.
    """

    def __init__(
        self, db: str, log: Path, *, env: Mapping[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> Server:
        """Start and wait until ``/healthz`` answers."""
        cmd = [
            str(CLI),
            "serve",
            "--db",
            self.db,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.args,
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int | None:
        """SIGTERM (graceful: queued batches are committed), then SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def wait_front(self, timeout: float = 90.0) -> int:
        """Wait until the intake front process is connected (``/metrics``); its process id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = httpx.get(self.url + "/metrics", timeout=5).text
            if "cartlift_intake_front_up 1.0" in text:
                front = self.children()
                assert len(front) == 1, front
                return front[0]
            time.sleep(0.2)
        raise RuntimeError(
            f"the intake front process did not connect within {timeout} s:\n{self.log.read_text()[-3000:]}"
        )

    def children(self) -> list[int]:
        """The process ids of the server's child processes (read from /proc)."""
        assert self.proc is not None
        return children_of(self.proc.pid)

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Api:
    """An HTTP client of one server with a default key."""

    def __init__(self, server: Server, key: str | None = None) -> None:
        self.server = server
        self.key = key
        self.client = httpx.Client(base_url=server.url, timeout=60)

    def __call__(self, method: str, path: str, *, key: str | None = "default", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        token = self.key if key == "default" else key
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.request(method, path, headers=headers, **kw)

    def close(self) -> None:
        self.client.close()


def check_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response has ``status`` and the JSON error body, with no trace or path in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    error = body["error"]
    assert error["status"] == status
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    for leak in ("Traceback", 'File "', "site-packages", "/work/", "/tmp/", '.py"'):
        assert leak not in response.text, f"{leak!r} leaked into an error body: {response.text}"
    return dict(error)


@dataclass
class Running:
    """A running server with keys of each scope."""

    server: Server
    folder: Path
    keys: dict[str, str]
    api: Api


def copy_store(trained: Path, target: Path) -> Path:
    """A private copy of the trained store and its models."""
    shutil.copy(trained / "store.duckdb", target / "store.duckdb")
    shutil.copytree(trained / "models", target / "models")
    return target / "store.duckdb"


PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def pg_schema() -> Iterator[str]:
    """The URL of a fresh schema in the local PostgreSQL, dropped afterwards; skips without one."""
    import pytest

    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except psycopg.Error as e:
        pytest.skip(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 ({str(e).strip()[:80]}); `.ci/run` installs it"
        )
    schema = f"cartlift_test_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{PG_BASE}?schema={schema}"
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


def copy_to_postgres(duck: Path, url: str, tables: Sequence[str]) -> None:
    """Copy ``tables`` of the DuckDB store ``duck`` into the PostgreSQL store ``url`` (tables created by `connect`)."""
    from cartlift.store import EventStore, connect

    with EventStore(duck, read_only=True) as store:
        present = {r[0] for r in store.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        frames = {t: store.query(f"SELECT * FROM {t}") for t in tables if t in present}
    pg = connect(url)
    try:
        for table, frame in frames.items():
            cols = list(frame.columns)
            clean = frame.astype(object).where(frame.notna(), None)
            with pg.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in clean.itertuples(index=False):
                    copy.write_row(list(row))
    finally:
        pg.close()
