"""The wire between `cartlift serve`'s two processes on a DuckDB store (`_split`, `_front`).

Two Unix sockets in a private folder (mode 0700) join the service process, which owns the store,
and its intake front process:

- the *connection* socket carries accepted client connections from the service to the front
  (``SCM_RIGHTS``), one byte of payload each;
- the *intake* socket carries messages, each a pickled tuple behind its 4-byte length: the front
  asks for keys, sends checked groups of posted events and its metrics; the service answers.

Pickle is safe here: both ends are the same program, and only the user running it can reach the
folder. It is also the cheapest: a group of 640 checked events pickles in about 0.5 ms each way.
"""

from __future__ import annotations

import asyncio
import functools
import pickle
import socket
import struct
from typing import Any, Final

import uvicorn

__all__ = [
    "CONNECTIONS",
    "INTAKE",
    "SERVICE",
    "Handover",
    "read_message",
    "receive_connection",
    "send_connection",
    "write_message",
]

CONNECTIONS: Final = "connections.sock"
"""The connection socket's name in the folder."""
INTAKE: Final = "intake.sock"
"""The intake socket's name in the folder."""
SERVICE: Final = "service.sock"
"""Where the service also answers HTTP: requests other than event posts that reach the front are sent on there."""

_LENGTH = struct.Struct("<I")


def write_message(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    """Queue one message on ``writer`` (the caller drains when it must wait for the peer)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_LENGTH.pack(len(data)) + data)


async def read_message(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None when the peer has closed the socket."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        message: tuple[Any, ...] = pickle.loads(await reader.readexactly(_LENGTH.unpack(header)[0]))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return message


def send_connection(channel: socket.socket, connection: socket.socket) -> None:
    """Give an accepted client connection to the peer (it now has its own descriptor of it)."""
    socket.send_fds(channel, [b"c"], [connection.fileno()])


def receive_connection(channel: socket.socket) -> socket.socket | None:
    """An accepted client connection from the peer (``channel`` is readable), or None when the peer is gone."""
    _, fds, _, _ = socket.recv_fds(channel, 1, 1)
    if not fds:
        return None
    return socket.socket(fileno=fds[0])


class Handover:
    """Serves accepted client connections with a started uvicorn server's own HTTP protocol, as if
    its listening socket had accepted them (its graceful shutdown waits for them too)."""

    def __init__(self, server: uvicorn.Server) -> None:
        config = server.config
        self._protocol = functools.partial(
            config.http_protocol_class,  # type: ignore[call-arg]  # uvicorn's own call (`Server.startup`)
            config=config,
            server_state=server.server_state,
            app_state=server.lifespan.state,
        )
        self._starting: set[asyncio.Task[Any]] = set()

    def serve(self, connection: socket.socket) -> None:
        """Serve ``connection`` on the running loop (the call returns at once)."""
        connection.setblocking(False)
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(self._protocol, connection))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)
