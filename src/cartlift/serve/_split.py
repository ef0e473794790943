"""`cartlift serve` on a DuckDB store: the service process, and an intake front process beside it.

The service process owns the store, as a DuckDB file allows one writing process. It accepts every
client connection itself, reads the first bytes of each without taking them (``MSG_PEEK``), and
gives a connection whose first request is ``POST /v1/events`` to the front process (`_front`);
every other connection it serves itself, with uvicorn's own protocol, as if uvicorn had accepted
it. The front reads, decodes and checks the posts and sends checked groups here; this process
commits them with its single writer and answers (`_answer_front`). So the two halves of an event
post, reading and committing, run on two cores instead of taking turns on one GIL.

The front is a child process this one starts and watches: while it is starting, or after it
died, this process answers event posts itself (the service is whole without it), and starts a
new one. When this process stops, it stops the front first (which finishes the posts in flight),
then itself. Measured in the README (the service's speed) with ``benchmarks/service.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import uvicorn

from cartlift.serve._app import app_from_env
from cartlift.serve._channel import (
    CONNECTIONS,
    INTAKE,
    SERVICE,
    Handover,
    read_message,
    send_connection,
    write_message,
)
from cartlift.serve._service import Service
from cartlift.serve._settings import UVICORN_OPTIONS

__all__ = ["event_post", "run_with_front"]

log = logging.getLogger("uvicorn.error")

_EVENTS: Final = b"POST /v1/events"
_PEEK_SECONDS = 5.0
"""How long a new connection may take to send its request line before the service serves it anyway."""
_FRONT_START_SECONDS = 120.0
"""How long a starting front process may take to connect."""


def event_post(head: bytes) -> bool | None:
    """Whether a connection whose first bytes are ``head`` begins with ``POST /v1/events`` (None: too few bytes to tell)."""
    n = len(_EVENTS)
    if head[:n] != _EVENTS[: len(head)]:
        return False
    if len(head) <= n:
        return None
    return head[n : n + 1] in (b" ", b"?")


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _picklable(error: BaseException) -> BaseException:
    """``error`` if it crosses to the front whole, else a `RuntimeError` with its text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


class _SplitServer(uvicorn.Server):
    """uvicorn on the service's private Unix socket, with the public one routed by `event_post`."""

    def __init__(
        self, config: uvicorn.Config, service: Service, listener: socket.socket, folder: Path
    ) -> None:
        super().__init__(config)
        self.service = service
        self._listener = listener
        self._folder = folder
        self._channel: socket.socket | None = None
        self._front: asyncio.subprocess.Process | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._handed_over = 0
        """Client connections given to the front since the start."""
        self._front_writer: asyncio.StreamWriter | None = None
        self._counts_asked: dict[int, asyncio.Future[None]] = {}
        """`_gather_metrics` calls waiting for the front's counts, by their message's number."""

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- life cycle -----------------------------------------------------------------------------
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)  # the app's lifespan: the service starts
        if self.should_exit:
            return
        self._handover = Handover(self)
        self._intake = await asyncio.start_unix_server(self._serve_front, path=str(self._folder / INTAKE))
        self._connections = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._connections.bind(str(self._folder / CONNECTIONS))
        self._connections.listen(1)
        self._connections.setblocking(False)
        self.service.gather_metrics = self._gather_metrics
        self.service.intake_front = lambda: {
            "cartlift_intake_front_up": float(self._channel is not None),
            "cartlift_intake_front_connections": float(self._handed_over),
        }
        self._spawn(self._keep_front())
        self._accepting = self._spawn(self._accept())
        host, port = self._listener.getsockname()[:2]
        log.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, port)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stopping = True
        self._accepting.cancel()
        self._listener.close()
        front = self._front
        if front is not None and front.returncode is None:
            front.terminate()  # it answers the posts it has read (their commits still run here)
            try:
                await asyncio.wait_for(front.wait(), (self.config.timeout_graceful_shutdown or 10) + 5)
            except TimeoutError:
                front.kill()
        for task in list(self._tasks):
            task.cancel()
        self._intake.close()
        self._connections.close()
        await super().shutdown(sockets=sockets)

    # -- the front process ----------------------------------------------------------------------
    async def _keep_front(self) -> None:
        """Start the front, hand it connections while it lives, start another when it dies."""
        loop = asyncio.get_running_loop()
        pause = 1.0
        while not self._stopping:
            front = self._front = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cartlift.serve._front",
                str(self._folder),
                str(self.config.log_level or "warning"),
                start_new_session=True,  # a Ctrl-C reaches this process, which stops the front in order
            )
            ended = asyncio.ensure_future(front.wait())
            connected = asyncio.ensure_future(loop.sock_accept(self._connections))
            done, _ = await asyncio.wait(
                {ended, connected}, timeout=_FRONT_START_SECONDS, return_when="FIRST_COMPLETED"
            )
            if connected in done:
                self._channel = connected.result()[0]
                started = loop.time()
                await ended
                pause = 1.0 if loop.time() - started > 10 else min(pause * 2, 30.0)
            else:
                connected.cancel()
                if not done:
                    front.kill()
                    await ended
            channel, self._channel = self._channel, None
            if channel is not None:
                channel.close()
            if self._stopping:
                return
            log.warning(
                "the intake front process ended (exit code %s); the service answers event posts "
                "itself and starts a new one in %.0f s",
                front.returncode,
                pause,
            )
            await asyncio.sleep(pause)

    async def _serve_front(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the front's messages: keys, checked groups to commit, its counts."""
        self._front_writer = writer
        try:
            while (message := await read_message(reader)) is not None:
                if message[0] == "metrics":
                    self.service.metrics.add(message[1])
                    asked = self._counts_asked.pop(message[2], None) if len(message) > 2 else None
                    if asked is not None and not asked.done():
                        asked.set_result(None)
                else:
                    self._spawn(self._answer_front(writer, message))
        finally:
            if self._front_writer is writer:
                self._front_writer = None
            writer.close()

    async def _gather_metrics(self) -> None:
        """Ask the front for its counts and wait (at most a second) until they are in: ``/metrics``
        then shows every request the front has answered, not those of a second before."""
        writer = self._front_writer
        if writer is None:
            return
        asked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ask = id(asked)
        self._counts_asked[ask] = asked
        try:
            write_message(writer, ("metrics?", ask))
            await asyncio.wait_for(asked, 1.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass  # the front is gone or slow: its counts come with its next message
        finally:
            self._counts_asked.pop(ask, None)

    async def _answer_front(self, writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
        kind, rid, *args = message
        service = self.service
        storage = service.storage
        reply: tuple[str, Any]
        try:
            if kind == "key":
                reply = ("ok", (service.keys.generation, await storage.find_key(key_hash=args[0])))
            elif kind == "group":
                generation, checked, key_ids = args
                if generation != service.keys.generation:
                    # keys were revoked since the front last heard: it checks the group's again
                    active = await storage.active_key_ids(key_ids=key_ids)
                    reply = ("ok", ("keys", active, service.keys.generation))
                else:
                    stored = await storage.ingest_checked(checked)
                    reply = ("ok", ("stored", stored, service.keys.generation))
            else:
                raise RuntimeError(f"unknown message from the intake front: {kind!r}")
        except Exception as e:
            reply = ("error", _picklable(e))
        with contextlib.suppress(ConnectionError, RuntimeError):  # the front is gone: nobody waits
            write_message(writer, (rid, reply))

    # -- routing connections --------------------------------------------------------------------
    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(self._listener)
            self._spawn(self._route(connection))

    async def _route(self, connection: socket.socket) -> None:
        """Give a new connection to the front when it begins with an event post, else serve it here."""
        try:
            head = await self._peek(connection)
        except OSError:
            connection.close()
            return
        if head is None:  # closed before a request
            connection.close()
            return
        channel = self._channel
        if channel is not None and event_post(head):
            try:
                send_connection(channel, connection)
            except OSError:
                pass  # the front is gone: served here
            else:
                connection.close()  # the front holds its own descriptor
                self._handed_over += 1
                return
        self._handover.serve(connection)

    async def _peek(self, connection: socket.socket) -> bytes | None:
        """The first bytes sent (not taken from the socket), enough for `event_post`; None when closed first."""
        loop = asyncio.get_running_loop()
        connection.setblocking(False)
        deadline = loop.time() + _PEEK_SECONDS
        head = b""
        while event_post(head) is None and loop.time() < deadline:
            try:
                data = connection.recv(len(_EVENTS) + 1, socket.MSG_PEEK)
            except BlockingIOError:
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(connection.fileno(), _settle, readable)
                try:
                    await asyncio.wait_for(readable, deadline - loop.time())
                except TimeoutError:
                    break
                finally:
                    loop.remove_reader(connection.fileno())
                continue
            if not data:
                return None
            if data == head:  # part of a request line, and no more yet
                await asyncio.sleep(0.001)
            head = data
        return head


def run_with_front(*, host: str, port: int, log_level: str) -> None:
    """Serve the app of the environment's settings (`app_from_env`) on ``host:port`` with an intake front process."""
    folder = Path(tempfile.mkdtemp(prefix="cartlift-serve-"))  # mode 0700: only this user reaches the sockets
    listener = socket.create_server((host, port), backlog=2048)
    listener.setblocking(False)
    private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    private.bind(str(folder / SERVICE))
    try:
        app = app_from_env()
        config = uvicorn.Config(app, log_level=log_level, **UVICORN_OPTIONS)
        server = _SplitServer(config, app.state.service, listener, folder)
        server.run(sockets=[private])
    finally:
        listener.close()
        private.close()
        shutil.rmtree(folder, ignore_errors=True)
