"""Service speed: wrk against `cartlift serve` next to a bare FastAPI endpoint, same stack, one machine.

Builds a synthetic shop (default 20k sessions, 2k products), trains the served models, then runs
three bounded loads from wrk (a separate process) against 127.0.0.1, one after the other:

* bare: a FastAPI app whose one ``async def`` route returns a constant, run by ``uvicorn.run`` with
  the settings ``cartlift serve`` uses (`cartlift.serve._settings.UVICORN_OPTIONS`: uvloop + httptools,
  one worker, no access log): the ceiling of the stack on this machine;
* ``GET /v1/users/{id}/recommendations?k=10`` for users drawn from the shop (and 10 % unknown);
* ``POST /v1/events`` with 10 new events per request (so throughput x 10 events/s are stored),
  once the service has written the impression lists the recommendation load left behind (each
  load measured on its own; the wait is printed);
* the same posts to the bare app, whose route only reads and decodes the body and counts its
  events: what the stack costs a request of that size before anything is checked or stored;

then the recommendation load again on a service without the impression log
(``CARTLIFT_SERVE_LOG_IMPRESSIONS=false``) and with it, ``--log-rounds`` times each in the order
off-on-on-off..., and prints the ratio of their mean throughputs (the log's cost on the endpoint).

Prints requests/s and p50/p95/p99 latency of each, and the ratios to the bare endpoint (goals:
recommendations and event posts >= 0.5 of bare throughput with p99 <= 50 ms at 64 connections).
After the event load it counts the posted events in the store: every acknowledged one must be there.
Usage: ``python benchmarks/service.py [--seconds 10] [--connections 64] [--sessions 20000]``;
``--postgres postgresql://127.0.0.1/test --workers 2`` serves a PostgreSQL store (a schema of its
own, dropped afterwards) with two worker processes. On DuckDB the service runs as users run it, with
its intake front process (the event load waits until it is connected); ``--no-intake-process``
measures the service in one process instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

BARE_APP = """
import msgspec
from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/constant")
async def constant() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/events")
async def decode(request: Request) -> dict[str, int]:
    return {"events": len(msgspec.json.decode(await request.body())["events"])}
"""

# wrk prints p50/p75/p90/p99 with --latency; the done() hook gives any percentile, so p95 too
LUA_DONE = """
done = function(summary, latency, requests)
  local rps = summary.requests / (summary.duration / 1e6)
  io.write(string.format("RESULT %d %d %.1f %.3f %.3f %.3f %d\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    rps, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
"""

LUA_RECS = """
local users = {USERS}
local n = 0
request = function()
  n = n + 1
  local u = users[(n %% #users) + 1]
  return wrk.format("GET", "/v1/users/" .. u .. "/recommendations?k=10", {["Authorization"] = "Bearer KEY"})
end
"""

LUA_EVENTS = """
-- each wrk thread has its own Lua state: setup() (run once per thread, in order) numbers them,
-- so event ids never collide between threads
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", "t" .. threads)
end
local counter = 0
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 10 do
    parts[i] = string.format('{"event_id":"bench-%s-%d-%d","ts":"2026-10-01T10:00:00Z","user_id":"u%d",'
      .. '"session_id":"bench-%s-%d","event_type":"view","product_id":"p%d","price":9.5}',
      tostring(tid), counter, i, counter %% 5000, tostring(tid), counter, i)
  end
  local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/events", {["Authorization"] = "Bearer KEY", ["Content-Type"] = "application/json"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_events(sessions: int, users: int, products: int, seed: int = 0) -> list[dict[str, Any]]:
    """A synthetic shop: users with tastes over product groups; views, carts, purchases."""
    rng = random.Random(seed)
    base = datetime(2026, 6, 1)
    out: list[dict[str, Any]] = []
    groups = max(1, products // 50)
    for s in range(sessions):
        user = rng.randrange(users)
        g = user % groups
        t = base + timedelta(minutes=7 * s)
        carted = []
        for _ in range(rng.randint(1, 6)):
            p = g * 50 + rng.randrange(50)
            t += timedelta(seconds=rng.randint(5, 90))
            out.append(_ev(len(out), t, user, s, "view", p))
            if rng.random() < 0.35:
                out.append(_ev(len(out), t + timedelta(seconds=3), user, s, "cart_add", p))
                carted.append(p)
        if carted and rng.random() < 0.45:
            for p in carted:
                t += timedelta(seconds=20)
                out.append(_ev(len(out), t, user, s, "purchase", p))
    return out


def _ev(n: int, t: datetime, user: int, s: int, kind: str, p: int) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "ts": t.isoformat() + "Z",
        "user_id": f"u{user}",
        "session_id": f"s{s}",
        "event_type": kind,
        "product_id": f"p{p}",
        "price": 5.0 + p % 97,
        "quantity": 1,
    }


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wrk(url: str, script: Path, seconds: int, connections: int, threads: int) -> dict[str, float]:
    """One bounded wrk run; returns requests, errors, rps and latency percentiles (ms)."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {res.stdout}\n{res.stderr}")
    n, errors, rps, p50, p95, p99, status_errors = line.split()[1:]
    return {
        "requests": int(n),
        "errors": int(errors),
        "non_2xx": int(status_errors),
        "rps": float(rps),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
    }


def impressions_written(url: str, workers: int, timeout: float = 300) -> float:
    """Wait until the service has written the impression lists of the load before; returns seconds waited.

    Each load is measured on its own: the recommendation load answers lists faster than the
    impression log writes them, and what it left would be written during the next load.
    ``/metrics`` comes from whichever worker takes the connection, so every worker must have
    answered 0 (ten answers in a row, each on a new connection).
    """
    start = time.perf_counter()
    zeros = 0
    while zeros < 10 * workers:
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"the impression log did not catch up within {timeout:.0f} s")
        text = httpx.get(url + "/metrics", timeout=30).text
        pending = next(
            (float(x.split()[1]) for x in text.splitlines() if x.startswith("cartlift_impressions_pending ")),
            None,
        )
        if pending is None:
            raise SystemExit("the service's /metrics has no cartlift_impressions_pending")
        zeros = zeros + 1 if pending == 0 else 0
        time.sleep(0.05)
    return time.perf_counter() - start


def front_ready(url: str, timeout: float = 120) -> bool:
    """Wait until the service's intake front process is connected (DuckDB); False when it runs
    without one (no ``cartlift_intake_front_up`` in ``/metrics``)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        text = httpx.get(url + "/metrics", timeout=30).text
        if "cartlift_intake_front_up" not in text:
            return False
        if "cartlift_intake_front_up 1.0" in text:
            return True
        time.sleep(0.2)
    raise SystemExit(f"the intake front process did not connect within {timeout:.0f} s")


def warm_every_worker(url: str, key: str, users: list[str], workers: int) -> None:
    """Ask for every user's list until each worker has (likely) cached it: the steady state.

    Each worker process has a cache of its own, and one connection reaches one worker. One worker:
    one pass on one connection. Several: passes on new connections, each going to whichever worker
    accepts it; after ``4 * workers`` passes a (user, worker) pair is missed with probability
    (1 - 1/workers) ** (4 * workers), under 2 %.
    """
    passes, limits = (
        (1, httpx.Limits()) if workers < 2 else (4 * workers, httpx.Limits(max_keepalive_connections=0))
    )
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}, limits=limits) as client:
        for _ in range(passes):
            for u in users:
                client.get(f"{url}/v1/users/{u}/recommendations?k=10").raise_for_status()


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The wrk load's options: each load's duration, connections and wrk threads."""
    parser.add_argument("--seconds", type=int, default=10, help="Duration of each load (s).")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)


def require_wrk() -> None:
    """Stop at once, with the command that installs it, when wrk is missing (before any set-up)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")


def start_uvicorn(app: str, port: int, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    """``app`` (``module:attribute``) served by uvicorn on 127.0.0.1 with exactly the settings of
    `cartlift serve` (`cartlift.serve._settings.UVICORN_OPTIONS`), so ratios compare apps and nothing else."""
    run = (
        "import uvicorn; from cartlift.serve._settings import UVICORN_OPTIONS; "
        f"uvicorn.run({app!r}, host='127.0.0.1', port={port}, log_level='warning', **UVICORN_OPTIONS)"
    )
    return subprocess.Popen([sys.executable, "-c", run], env=env, stdout=log, stderr=log)


def print_loads(results: dict[str, dict[str, float]], base: float, first: str = "endpoint") -> None:
    """One row per load: requests/s, latency percentiles, errors and the ratio to ``base`` requests/s."""
    print(f"{first:<38} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} {'x bare':>7}")
    for name, r in results.items():
        print(
            f"{name:<38} {r['rps']:>9,.0f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['errors']:>7} {r['rps'] / base:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    parser.add_argument("--postgres", help="Serve this PostgreSQL database (in a schema of its own).")
    parser.add_argument("--workers", type=int, default=1, help="Service worker processes (PostgreSQL).")
    parser.add_argument(
        "--no-intake-process",
        action="store_true",
        help="Serve a DuckDB store without its intake front process (event posts in the one process).",
    )
    parser.add_argument(
        "--log-rounds",
        type=int,
        default=2,
        help="Recommendation loads with and without the impression log, each.",
    )
    args = parser.parse_args()
    require_wrk()

    from cartlift.serve import ModelRegistry, create_key_in_store, train_all
    from cartlift.store import EventStore, open_storage

    tmp = Path(tempfile.mkdtemp(prefix="cartlift-bench-service-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        db = tmp / "store.duckdb"
        events = make_events(args.sessions, users=args.sessions // 4, products=2_000)
        start = time.perf_counter()
        with EventStore(db) as store:
            store.ingest_records(events, source="bench")
            trained = train_all(store, ModelRegistry(tmp / "models"))
        versions = ", ".join(f"{k} {v.get('version', v.get('error'))}" for k, v in trained.items())
        print(
            f"shop: {len(events):,} events, {args.sessions:,} sessions; "
            f"loaded and trained in {time.perf_counter() - start:.1f} s ({versions})"
        )
        store_url = str(db)
        if args.postgres:
            schema = f"bench_{os.getpid()}"
            store_url = f"{args.postgres}?schema={schema}"
            pg = open_storage(store_url)
            pg.run_now(lambda ctx: pg.ingest_now(ctx, events))
        key = create_key_in_store(store_url, scope="admin", rate_limit=1e9)[0]

        (tmp / "bare.py").write_text(textwrap.dedent(BARE_APP))
        bare_port, serve_port = free_port(), free_port()
        # bare.py is importable from tmp; a PYTHONPATH given to the benchmark applies to both servers
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")])),
        }
        log = (tmp / "servers.log").open("ab")
        procs.append(start_uvicorn("bare:app", bare_port, env, log))
        # the service as users run it: the `cartlift serve` command
        cli = Path(sys.executable).with_name("cartlift")
        serve_cmd = [
            str(cli), "serve", "--db", store_url, "--port", str(serve_port), "--log-level", "warning",
            "--model-dir", str(tmp / "models"), "--workers", str(args.workers),
            *(["--no-intake-process"] if args.no_intake_process else []),
        ]  # fmt: skip
        procs.append(subprocess.Popen(serve_cmd, env=env, stdout=log, stderr=log))
        bare = f"http://127.0.0.1:{bare_port}"
        serve = f"http://127.0.0.1:{serve_port}"
        wait_up(bare + "/constant", procs[0])
        # two workers each build their customer history and live state: minutes on a busy machine
        wait_up(serve + "/healthz", procs[1], timeout=600)

        users = [
            f"u{i}" for i in random.Random(1).sample(range(args.sessions // 4), min(900, args.sessions // 4))
        ] + [f"new{i}" for i in range(100)]
        scripts = {
            "bare": LUA_DONE,
            "recs": LUA_RECS.replace("{USERS}", "{" + ",".join(json.dumps(u) for u in users) + "}")
            .replace("%%", "%")
            .replace("KEY", key)
            + LUA_DONE,
            "events": LUA_EVENTS.replace("%%", "%").replace("KEY", key) + LUA_DONE,
        }
        for name, text in scripts.items():
            (tmp / f"{name}.lua").write_text(text)
        # first request per user computes its list (then cached per model version): timed here, one
        # at a time, so the loads below measure the steady state
        cold = []
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
            for u in users:
                t = time.perf_counter()
                client.get(f"{serve}/v1/users/{u}/recommendations?k=10").raise_for_status()
                cold.append((time.perf_counter() - t) * 1000)
        cold.sort()
        if args.workers > 1:  # the pass above filled one worker's cache
            warm_every_worker(serve, key, users, args.workers)

        load = (args.seconds, args.connections, args.threads)
        results = {
            "bare FastAPI constant (GET)": wrk(bare + "/constant", tmp / "bare.lua", *load),
            "GET /v1/users/{id}/recommendations": wrk(serve, tmp / "recs.lua", *load),
        }
        drained = impressions_written(serve, args.workers)
        with_front = front_ready(serve)
        results["POST /v1/events (10 events each)"] = wrk(serve, tmp / "events.lua", *load)
        results["bare FastAPI POST, body decoded"] = wrk(bare, tmp / "events.lua", *load)
        # the impression log's cost: the recommendation load again on a service without the log and
        # with it, on the same store, in the order off-on-on-off-... (a load that drifts during the
        # runs then weighs on both alike)
        stop(procs.pop())
        logged: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        order = [v for r in range(args.log_rounds) for v in (("off", "on") if r % 2 == 0 else ("on", "off"))]
        for variant in order:
            port = free_port()
            flag = {"CARTLIFT_SERVE_LOG_IMPRESSIONS": "false" if variant == "off" else "true"}
            cmd = [
                *serve_cmd[: serve_cmd.index("--port") + 1],
                str(port),
                *serve_cmd[serve_cmd.index("--port") + 2 :],
            ]
            procs.append(subprocess.Popen(cmd, env={**env, **flag}, stdout=log, stderr=log))
            url = f"http://127.0.0.1:{port}"
            wait_up(url + "/healthz", procs[-1])
            warm_every_worker(url, key, users, args.workers)  # every list cached, as above
            logged[variant].append(wrk(url, tmp / "recs.lua", *load))
            stop(procs.pop())
    finally:
        for p in procs:
            stop(p)
    try:
        # counted in the store itself, after the service stopped: what was acknowledged was durable
        count = "SELECT count(*) FROM events WHERE starts_with(event_id, 'bench-')"
        storage = open_storage(store_url)
        stored = int(storage.run_now(lambda ctx: storage.rows(ctx, count))[0][0])
        if args.postgres:
            storage.run_now(lambda ctx: storage.rows(ctx, f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    base = results["bare FastAPI constant (GET)"]
    print(
        f"\nwrk, {args.connections} connections, {args.threads} threads, {args.seconds} s each, 127.0.0.1; "
        f"store {'PostgreSQL' if args.postgres else 'DuckDB'}, {args.workers} service worker(s)"
        f"{', event posts in the intake front process' if with_front else ''}, the bare app one"
    )
    print_loads(results, base["rps"])
    recs = results["GET /v1/users/{id}/recommendations"]
    posted = results["POST /v1/events (10 events each)"]
    print(
        f"\nrecommendations / bare throughput: {recs['rps'] / base['rps']:.2f} (goal >= 0.5); "
        f"p99 {recs['p99_ms']:.1f} ms (goal <= 50 ms)"
    )
    print(
        f"first request per user (list computed, sequential): p50 {cold[len(cold) // 2]:.2f} ms, "
        f"p99 {cold[int(len(cold) * 0.99)]:.2f} ms"
    )
    acked = (posted["requests"] - posted["non_2xx"]) * 10
    print(
        f"events / bare throughput: {posted['rps'] / base['rps']:.2f} (goal >= 0.5); "
        f"p99 {posted['p99_ms']:.1f} ms (goal <= 50 ms)"
    )
    print(
        f"(the event load started once the recommendations' impressions were written: {drained:.1f} s after)"
    )
    decoded = results["bare FastAPI POST, body decoded"]
    print(
        f"the same posts to the bare app (decoded, nothing stored): {decoded['rps'] / base['rps']:.2f} of bare; "
        f"events / those: {posted['rps'] / decoded['rps']:.2f}"
    )
    print(
        f"events in the store after the POST load: {stored:,}; acknowledged (2xx requests x 10): {acked:,}; "
        f"every acknowledged event stored: {'yes' if stored >= acked else 'NO'} "
        f"({stored - acked:,} more: requests in flight when wrk stopped, stored but not counted by wrk)"
    )
    if logged["off"] and logged["on"]:  # --log-rounds 0 skips the comparison
        off = sum(r["rps"] for r in logged["off"]) / len(logged["off"])
        on = sum(r["rps"] for r in logged["on"]) / len(logged["on"])
        print(
            f"recommendations with the impression log / without ({args.log_rounds} run(s) each, off-on-on-off...): "
            f"{on:,.0f} / {off:,.0f} req/s = {on / off:.2f}; p99 "
            + ", ".join(f"{r['p99_ms']:.1f}" for r in logged["on"])
            + " ms with, "
            + ", ".join(f"{r['p99_ms']:.1f}" for r in logged["off"])
            + " ms without"
        )
    if stored < acked:
        raise SystemExit("acknowledged events are missing from the store")


if __name__ == "__main__":
    main()
