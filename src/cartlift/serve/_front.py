"""The intake front process: ``POST /v1/events`` answered beside the process that owns a DuckDB store.

In one process, the event loop that reads posts and the writer that commits them take turns
holding one GIL, and a DuckDB file has one writing process: on two cores, event posts stopped
near a third of the bare endpoint's rate (README, the service's speed). So on a DuckDB store
`cartlift serve` runs this process beside the service (`_split`). The service accepts every client
connection and gives those that begin with ``POST /v1/events`` to this process, which

- checks each request's key as the service does (`KeyGate`: cached, scope, expiry, rate limit),
  asking the service for keys it has not seen;
- reads and decodes the body with the route's own code (`post_events_directly`), so answers and
  errors are the same bytes;
- checks the batches waiting as one group (`check_group`: the events package's rules) and sends
  the group to the service, which commits it with its single writer (stored-id filter, quarantine,
  the ``loads`` row, live sessions) before it answers; each client is answered after that;
- sends any other request on such a connection on to the service over its Unix socket.

A key revoked in the service stops working here at once: each group carries the service's key
generation as last heard, and a group sent before a revocation is sent back with the keys still
active, checked again here. Counts of requests and events go to the service's ``/metrics`` every
second. When the service goes away this process stops; when this process dies, the service
answers everything itself until it has started a new one.

Run by the service as ``python -m cartlift.serve._front FOLDER`` (the settings from the environment).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import pickle
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from cartlift.serve._app import GC_THRESHOLDS
from cartlift.serve._channel import (
    CONNECTIONS,
    INTAKE,
    SERVICE,
    Handover,
    read_message,
    receive_connection,
    write_message,
)
from cartlift.serve._errors import ApiError, error_body, install_error_handlers
from cartlift.serve._event_body import prepare_records, read_events
from cartlift.serve._key_gate import KeyGate
from cartlift.serve._keys import ApiKey
from cartlift.serve._limits import BodyLimit
from cartlift.serve._metrics import Metrics
from cartlift.serve._settings import UVICORN_OPTIONS, ServeSettings
from cartlift.serve.routes.events import post_events_directly
from cartlift.store import IngestOutcome, KeyRecord, check_group, split_outcomes

__all__ = ["FrontService", "create_front_app", "main"]

_IN_FLIGHT: Final = 2
"""Groups sent and not yet answered. With one, the service committed while this process waited, and
this process read while the service waited (events on DuckDB: about 2,100 requests/s); with two,
the clients fall into two cohorts that take turns (about 4,100)."""
_METRICS_SECONDS = 1.0
"""How often the counts go to the service."""
_GONE: Final = "The service is restarting; retry in a moment."
"""What a client reads while this process has no service to store its posts."""
_HOP_BY_HOP: Final = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"})

_request_key: contextvars.ContextVar[ApiKey] = contextvars.ContextVar("cartlift_front_key")
"""The key `FrontService.authenticate` accepted for the request being answered (each request is a task of its own)."""


@dataclass
class _Post:
    records: list[dict[str, Any]]
    key_id: str
    future: asyncio.Future[IngestOutcome] = field(repr=False)


class ServiceLink:
    """The front's end of the intake socket: key look-ups, and posted batches sent as checked
    groups (`_send_groups` says when), each answered once the service has committed it."""

    def __init__(self, path: Path, metrics: Metrics, max_events: int) -> None:
        self._path = path
        self._metrics = metrics
        self._max_events = max_events
        self._writer: asyncio.StreamWriter | None = None
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._pending: list[_Post] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._checker: Any = None
        self.generation = 0
        """The service's key generation as last heard (`KeyGate.generation` there)."""
        self.on_keys_changed: list[Callable[[], None]] = []
        self.closed = asyncio.Event()
        """Set when the service has gone away."""

    async def open(self) -> None:
        """Connect to the service and start sending."""
        reader, self._writer = await asyncio.open_unix_connection(str(self._path))
        self._tasks = [
            asyncio.ensure_future(self._read_replies(reader)),
            asyncio.ensure_future(self._send_groups()),
            asyncio.ensure_future(self._send_metrics()),
        ]

    async def close(self) -> None:
        """Send the last counts and disconnect."""
        for task in self._tasks:
            task.cancel()
        if self._writer is not None and not self.closed.is_set():
            write_message(self._writer, ("metrics", self._metrics.take()))
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                await self._writer.drain()
            self._writer.close()

    # -- asking ---------------------------------------------------------------------------------
    async def _ask(self, kind: str, *args: Any) -> Any:
        if self.closed.is_set() or self._writer is None:
            raise ApiError(503, _GONE)
        self._next_id += 1
        rid = self._next_id
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[rid] = reply
        write_message(self._writer, (kind, rid, *args))
        try:
            outcome, value = await reply
        finally:
            self._replies.pop(rid, None)
        if outcome == "error":
            raise value
        return value

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        while (message := await read_message(reader)) is not None:
            if message[0] == "metrics?":  # the service answers /metrics: these counts first
                if self._writer is not None:
                    write_message(self._writer, ("metrics", self._metrics.take(), message[1]))
                continue
            rid, payload = message
            reply = self._replies.get(rid)
            if reply is not None and not reply.done():
                reply.set_result(payload)
        self.closed.set()
        gone = ApiError(503, _GONE)
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(gone)
        for post in self._pending:
            if not post.future.done():
                post.future.set_exception(gone)
        self._pending = []

    def _heard(self, generation: int) -> None:
        """The service's key generation, from a reply: a newer one means keys may have been revoked."""
        if generation != self.generation:
            self.generation = generation
            for changed in self.on_keys_changed:
                changed()

    async def find_key(self, digest: str) -> KeyRecord | None:
        """The stored key with this hash unless revoked, as the service has it."""
        generation, record = await self._ask("key", digest)
        self._heard(generation)
        found: KeyRecord | None = record
        return found

    # -- storing --------------------------------------------------------------------------------
    async def store(self, records: list[dict[str, Any]], key_id: str) -> IngestOutcome:
        """The outcome of a batch once the service has committed the group it went in."""
        if self.closed.is_set():
            raise ApiError(503, _GONE)
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Post(records, key_id, future))
        self._wake.set()
        return await future

    def _take_group(self) -> list[_Post]:
        group: list[_Post] = []
        total = 0
        for post in self._pending:
            if group and total + len(post.records) > self._max_events:
                break
            group.append(post)
            total += len(post.records)
        self._pending = self._pending[len(group) :]
        return group

    async def _send_groups(self) -> None:
        """Send the posts waiting as a group when none is in flight, or when one is and as many wait
        as made the last group (that group's clients are all back): the 64 clients of a load then
        settle into two cohorts of 32, one read and checked here while the other is committed."""
        in_flight: set[asyncio.Task[None]] = set()
        last_size = 1
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and (
                not in_flight or (len(in_flight) < _IN_FLIGHT and len(self._pending) >= last_size)
            ):
                group = self._take_group()
                last_size = len(group)
                task = asyncio.ensure_future(self._commit(group))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                task.add_done_callback(lambda _: self._wake.set())

    async def _commit(self, group: list[_Post]) -> None:
        batches = [p.records for p in group]
        try:
            checked, self._checker = check_group(batches, self._checker)
            key_ids = sorted({p.key_id for p in group})
            kind, *rest = await self._ask("group", self.generation, checked, key_ids)
        except Exception as e:  # the check, the service's commit, or the service gone
            kind, rest = "error", [e]
        if kind == "stored":
            ids, generation = rest
            self._heard(generation)
            outcomes = split_outcomes(batches, checked, ids)
            for post, outcome in zip(group, outcomes, strict=True):
                self._metrics.count_events(
                    accepted=outcome.accepted, duplicates=outcome.duplicates, rejected=outcome.rejected
                )
                if not post.future.done():
                    post.future.set_result(outcome)
        elif kind == "keys":  # keys were revoked since this process last heard: the group's checked again
            active, generation = rest
            self._heard(generation)
            revoked = ApiError(
                401, "The API key is unknown or revoked.", headers={"WWW-Authenticate": "Bearer"}
            )
            for post in group:
                if post.key_id not in active and not post.future.done():
                    post.future.set_exception(revoked)
            self._pending[:0] = [p for p in group if p.key_id in active]
        elif (
            len(group) > 1
        ):  # one bad batch must not fail the others: each alone (as the service's writer does)
            for post in group:
                await self._commit([post])
        elif not group[0].future.done():
            group[0].future.set_exception(rest[0])

    async def _send_metrics(self) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(_METRICS_SECONDS)
            if self._writer is not None:
                write_message(self._writer, ("metrics", self._metrics.take()))


class FrontService:
    """What the front's app calls (the `EventIntake` of `cartlift.serve._deps`): keys, limits and
    metrics of its own, batches stored through the service (`ServiceLink`)."""

    def __init__(self, settings: ServeSettings, link: ServiceLink, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.link = link
        self.keys = KeyGate(link.find_key, settings, metrics)
        link.on_keys_changed.append(self.keys.changed)
        self._secret = settings.pseudonymise_key.get_secret_value() if settings.pseudonymise_key else None
        self.started = False

    async def authenticate(self, *, token: str | None, scope: str) -> ApiKey:
        """As `Service.authenticate`; the key is remembered for the request's `ingest_events`."""
        key = await self.keys.authenticate(token=token, scope=scope)
        _request_key.set(key)
        return key

    async def ingest_events(self, *, events: list[dict[str, Any]]) -> IngestOutcome:
        """As `Service.ingest_events`: prepared here, checked with the group, committed by the service."""
        prepare_records(events, max_events=self.settings.max_batch_events, secret=self._secret)
        return await self.link.store(events, _request_key.get().key_id)


class _FrontApp(FastAPI):
    """``POST /v1/events`` answered here (`post_events_directly`); anything else sent on to the service."""

    limit: BodyLimit
    proxy: httpx.AsyncClient

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/events":
            await post_events_directly(self, self.limit, scope, receive, send)
        elif scope["type"] == "http":
            await self._pass_on(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)  # lifespan

    async def _pass_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The service's answer to a request this process does not answer (same status, headers, body)."""
        body = await Request(scope, receive).body()
        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        request = self.proxy.build_request(
            scope["method"], httpx.URL("http://cartlift", raw_path=target), headers=headers, content=body
        )
        try:
            response = await self.proxy.send(request, stream=True)
        except httpx.TransportError:
            await JSONResponse(error_body(503, _GONE), status_code=503)(scope, receive, send)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


def create_front_app(settings: ServeSettings, folder: Path) -> FastAPI:
    """The front's ASGI app, linked to the service through the sockets in ``folder``."""
    metrics = Metrics()
    link = ServiceLink(folder / INTAKE, metrics, settings.writer_batch_events)
    front = FrontService(settings, link, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await link.open()
        front.started = True
        try:
            yield
        finally:
            front.started = False
            await link.close()
            await app.proxy.aclose()  # type: ignore[attr-defined]
            front.keys.close()

    app = _FrontApp(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = front
    app.limit = BodyLimit(settings.max_body_bytes)
    app.proxy = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(folder / SERVICE)), timeout=httpx.Timeout(60.0)
    )
    install_error_handlers(app)
    return app


class _FrontServer(uvicorn.Server):
    """uvicorn serving the connections the service hands over (no listening socket of its own);
    it stops when the service goes away."""

    def __init__(self, config: uvicorn.Config, folder: Path, link: ServiceLink) -> None:
        super().__init__(config)
        self._folder = folder
        self._link = link
        self._channel: socket.socket | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        handover = Handover(self)
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        channel.connect(str(self._folder / CONNECTIONS))
        channel.setblocking(False)
        self._channel = channel

        def handed_over() -> None:
            while True:
                try:
                    connection = receive_connection(channel)
                except BlockingIOError:
                    return
                except OSError:
                    connection = None
                if connection is None:  # the service is gone
                    loop.remove_reader(channel.fileno())
                    self.should_exit = True
                    return
                handover.serve(connection)

        loop.add_reader(channel.fileno(), handed_over)
        self._watch = loop.create_task(self._stop_when_the_service_goes())

    async def _stop_when_the_service_goes(self) -> None:
        await self._link.closed.wait()
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._channel is not None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(self._channel.fileno())
            self._channel.close()
        await super().shutdown(sockets=sockets)


def _warm_up() -> None:
    """Decode, check and pickle one made-up post, before the collector freezes what exists: the
    first call of each imports and fills caches (the first group after a start waited 25 ms more)."""
    body = b'{"events": [{"event_id": "warm-up", "ts": "2026-01-01T00:00:00Z", "user_id": "u", "event_type": "view"}]}'
    records = read_events(body, "application/json")
    prepare_records(records, max_events=1, secret=None)
    checked, _ = check_group([records])
    pickle.dumps(checked, protocol=pickle.HIGHEST_PROTOCOL)


def main() -> None:
    """The front process: ``python -m cartlift.serve._front FOLDER [LOG_LEVEL]``."""
    folder = Path(sys.argv[1])
    log_level = sys.argv[2] if len(sys.argv) > 2 else "warning"
    gc.set_threshold(*GC_THRESHOLDS)
    settings = ServeSettings()
    app = create_front_app(settings, folder)
    config = uvicorn.Config(app, log_level=log_level, **UVICORN_OPTIONS)
    server = _FrontServer(config, folder, app.state.service.link)
    _warm_up()
    gc.freeze()  # everything imported so far is long-lived: full collections skip it
    server.run(sockets=[])


if __name__ == "__main__":
    main()
