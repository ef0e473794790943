"""What a process split could give ``POST /v1/events``: a front process that reads and checks, a DuckDB process that commits.

`benchmarks/service.py` shows the service's event posts far below its goal (0.5 of the bare
FastAPI endpoint's requests/s at 64 connections). In the service one process does everything:
its event loop reads each request (about the cost of the bare app's whole POST), then its
writer thread checks and commits the group, holding the same GIL, so the two take turns on one
core. This benchmark measures the ceiling of the alternative before anyone builds it: two
processes that share no GIL.

* the front: a plain ASGI app under uvicorn with `cartlift serve`'s settings (and its collector's
  thresholds, `GC_THRESHOLDS`, with the imported objects frozen, as the service does); it reads a body with
  the route's reader (`read_events`), and a group of the posts waiting is checked with the events
  package's own shortcut (`typed_rows`, `accept_rows`: every value typed, every rule), sent as an
  Arrow IPC stream over a Unix socket, and answered once the committer says it is committed;
* the committer: a process that owns a store made by `EventStore` and commits each group it
  receives (``BEGIN; INSERT INTO events ...; COMMIT``) before it answers.

What it leaves out, and the service does: API keys, rate limits, metrics, the duplicate check
against stored ids, the ``loads`` row, quarantine, live sessions. So its figure is an upper bound
of a service built that way. In the same run, the bare FastAPI app's ``GET /constant`` (the
service benchmark's reference) and the front's rate to the bare app's are printed, and after the
load the events in the committer's store are counted against those acknowledged.

``--checkpoint-threshold`` sets the committer's DuckDB ``checkpoint_threshold``, by default the
service's (256 MB: its writer checkpoints when it falls idle instead). DuckDB checkpoints inside the
commit that takes its write-ahead log past the threshold, and every post waiting on that commit
waits for the checkpoint too: at DuckDB's own default, 16 MB, that is every 2-3 s at this load.

Usage: ``python benchmarks/intake_split.py [--seconds 10] [--connections 64] [--checkpoint-threshold 256MB]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb

from cartlift.store import EventStore
from cartlift.store._storage import _CHECKPOINT_THRESHOLD
from service import (
    BARE_APP,
    LUA_DONE,
    LUA_EVENTS,
    add_load_options,
    free_port,
    print_loads,
    require_wrk,
    start_uvicorn,
    stop,
    wait_up,
    wrk,
)  # benchmarks/ is on the path

FRONT_APP = """
import asyncio
import gc
import os
import struct

import pyarrow as pa

from cartlift.events import STORED_COLUMNS
from cartlift.events._check import accept_rows, typed_rows
from cartlift.serve._app import GC_THRESHOLDS
from cartlift.serve._event_body import read_events

# as a process of `cartlift serve` (`app_from_env`, `Service.reload_models`): without these, full
# collections walking every imported object stalled the front (p99 about 150 ms)
gc.set_threshold(*GC_THRESHOLDS)
gc.freeze()
SOCKET = os.environ["SPLIT_SOCKET"]
pending = []  # (records, future) posted since the last group left


async def commit_groups(wake):
    reader, writer = await asyncio.open_unix_connection(SOCKET)
    while True:
        await wake.wait()
        wake.clear()
        group, pending[:] = list(pending), []
        records = [r for batch, _ in group for r in batch]
        rows = typed_rows(records)
        checked = accept_rows(rows) if rows is not None else None
        if checked is None:
            raise RuntimeError("the benchmark posts only events the shortcut accepts")
        sink = pa.BufferOutputStream()
        table = checked.accepted.select(list(STORED_COLUMNS))
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        data = sink.getvalue().to_pybytes()
        writer.write(struct.pack("<I", len(data)) + data)
        await reader.readexactly(1)  # committed
        for batch, future in group:
            if not future.done():
                future.set_result(len(batch))
        if pending:
            wake.set()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                app.wake = asyncio.Event()
                app.task = asyncio.ensure_future(commit_groups(app.wake))
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    events = read_events(body, "application/json")
    future = asyncio.get_running_loop().create_future()
    pending.append((events, future))
    app.wake.set()
    accepted = await future
    answer = b'{"accepted": %d, "duplicates": 0, "rejected": 0}' % accepted
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})
"""

COMMITTER = """
import os
import socket
import struct
import sys

import pyarrow as pa

from cartlift.events import STORED_COLUMNS
from cartlift.store import EventStore

columns = ", ".join(STORED_COLUMNS)
insert = f"BEGIN TRANSACTION; INSERT INTO events ({columns}, load_id) SELECT {columns}, 'split' FROM _group; COMMIT"
server = socket.socket(socket.AF_UNIX)
server.bind(os.environ["SPLIT_SOCKET"])
server.listen(1)
print("ready", flush=True)
with EventStore(sys.argv[1]) as store:
    store.con.execute("SET threads = 1")  # as the service's writer: small statements, one thread
    store.con.execute(f"SET checkpoint_threshold = '{os.environ['SPLIT_CHECKPOINT']}'")
    conn, _ = server.accept()
    stream = conn.makefile("rb")
    while header := stream.read(4):
        _group = pa.ipc.open_stream(stream.read(struct.unpack("<I", header)[0])).read_all()
        store.con.execute(insert)  # reads _group by name (DuckDB's scan of Python variables)
        conn.sendall(b"1")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser)
    parser.add_argument(
        "--checkpoint-threshold",
        default=_CHECKPOINT_THRESHOLD,
        help=f"The committer's DuckDB checkpoint_threshold (default the service's, {_CHECKPOINT_THRESHOLD}).",
    )
    args = parser.parse_args()
    require_wrk()

    tmp = Path(tempfile.mkdtemp(prefix="cartlift-bench-split-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        db = tmp / "store.duckdb"
        EventStore(db).close()  # the service's schema
        (tmp / "bare.py").write_text(textwrap.dedent(BARE_APP))
        (tmp / "front.py").write_text(FRONT_APP)
        (tmp / "committer.py").write_text(COMMITTER)
        (tmp / "events.lua").write_text(LUA_EVENTS.replace("%%", "%").replace("KEY", "none") + LUA_DONE)
        (tmp / "bare.lua").write_text(LUA_DONE)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")])),
            "SPLIT_SOCKET": str(tmp / "commit.sock"),
            "SPLIT_CHECKPOINT": args.checkpoint_threshold,
        }
        log = (tmp / "servers.log").open("ab")
        committer = subprocess.Popen(
            [sys.executable, str(tmp / "committer.py"), str(db)], env=env, stdout=subprocess.PIPE, stderr=log
        )
        procs.append(committer)
        assert committer.stdout is not None
        if committer.stdout.readline().strip() != b"ready":
            raise SystemExit(f"the committer did not start: see {tmp / 'servers.log'}")
        ports = {"bare": free_port(), "front": free_port()}
        for name, port in ports.items():
            procs.append(start_uvicorn(f"{name}:app", port, env, log))
        bare, front = (f"http://127.0.0.1:{ports[n]}" for n in ("bare", "front"))
        wait_up(bare + "/constant", procs[1])
        # the committer listens since it said "ready"; the front connects to it as it starts
        time.sleep(1)
        load = (args.seconds, args.connections, args.threads)
        results = {
            "bare FastAPI constant (GET)": wrk(bare + "/constant", tmp / "bare.lua", *load),
            "split: POST 10 events, committed": wrk(front, tmp / "events.lua", *load),
            "bare FastAPI POST, body decoded": wrk(bare, tmp / "events.lua", *load),
        }
    finally:
        for p in reversed(procs):
            stop(p)
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            row = con.execute("SELECT count(*) FROM events").fetchone()
        stored = int(row[0]) if row else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = results["bare FastAPI constant (GET)"]["rps"]
    print(
        f"wrk, {args.connections} connections, {args.threads} threads, {args.seconds} s each, 127.0.0.1; "
        f"the committer's checkpoint_threshold {args.checkpoint_threshold}"
    )
    print_loads(results, base, first="load")
    split = results["split: POST 10 events, committed"]
    acked = (split["requests"] - split["non_2xx"]) * 10
    print(
        f"\nsplit / bare GET: {split['rps'] / base:.2f} (the service's goal >= 0.5, p99 <= 50 ms: "
        f"p99 {split['p99_ms']:.1f} ms); events stored {stored:,}, acknowledged {acked:,}: "
        f"every acknowledged event stored: {'yes' if stored >= acked else 'NO'}"
    )
    if stored < acked:
        raise SystemExit("acknowledged events are missing from the store")


if __name__ == "__main__":
    main()
