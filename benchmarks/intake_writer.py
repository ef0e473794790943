"""The event writer's own cost: CPU per event and time per group on the writer thread, against a bare DuckDB insert.

`benchmarks/service.py` measures ``POST /v1/events`` through HTTP; there every one of 64 clients
waits on the same group commit, so the writer's time per group is on every request's latency, and
its Python work holds the GIL the event loop needs. This benchmark takes HTTP away: it builds a
shop store as `benchmarks/service.py` does (its ``make_events``), starts a real `Service` on it
(live sessions, customer history) and posts groups of ``--batches`` batches of ``--per-batch``
events (the service benchmark's shape: views with event_id, ts, user_id, session_id, product_id,
price, decoded from JSON bodies by the route's own reader) to the service's writer, all at once,
so each group is committed in one transaction as under load. It reports, per event, the writer
thread's CPU time (``time.thread_time``) in each stage of the ingest path, and the wall time per group.

Reference, in the same run: a bare DuckDB insert of the same records into a copy of the same store
(the records as an Arrow table, ``INSERT INTO events SELECT ... ; COMMIT``, times cast by DuckDB:
no validation, no duplicate check, no live state). Prints cartlift's events/s as a ratio of it.

``--ts fixed`` gives every event the service benchmark's one time; ``--ts varied`` gives each its
own millisecond time (no two alike). ``--busy`` keeps a Python thread busy beside both writers
while they are timed, as the event loop is when it serves other clients during a commit: a DuckDB
call takes the GIL back many times while it runs, each time waiting up to the switch interval
(``--switch-interval``, Python's default 5 ms). Usage:
``python benchmarks/intake_writer.py [--groups 40] [--sessions 20000] [--ts fixed|varied] [--busy]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

import cartlift
from cartlift.serve._event_body import read_events
from cartlift.serve._service import Service
from cartlift.serve._settings import ServeSettings
from cartlift.store import EventStore
from service import make_events  # the service benchmark's shop (benchmarks/ is on the path)

WARM_GROUPS = 3
"""Groups run before timing (first-call costs: imports, caches)."""


class Stages:
    """Thread CPU and wall time spent inside wrapped callables, by label (nested labels count in both)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.on = False
        self.order: dict[str, None] = {}

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return fn(*args, **kwargs)
            c, w = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[label] += time.thread_time() - c
                self.wall[label] += time.perf_counter() - w

        return timed

    def patch(self, label: str, owner: Any, name: str) -> bool:
        """Time ``owner.name`` (a module function or an instance's method); False when it is absent."""
        fn = getattr(owner, name, None)
        if fn is None:
            return False
        self.order[label] = None
        setattr(owner, name, self.wrap(label, fn))
        return True


def bodies(groups: int, batches: int, per_batch: int, ts: str) -> list[list[bytes]]:
    """Request bodies as the service benchmark's wrk script writes them (one session per request)."""
    base = datetime(2026, 10, 1, 10)
    out = []
    n = 0
    for g in range(groups):
        group = []
        for _ in range(batches):
            n += 1
            events = []
            for i in range(1, per_batch + 1):
                t = "2026-10-01T10:00:00Z"
                if ts == "varied":
                    t = (base + timedelta(milliseconds=7 * (n * per_batch + i))).isoformat(
                        timespec="milliseconds"
                    ) + "Z"
                events.append(
                    {
                        "event_id": f"bench-g{g}-{n}-{i}",
                        "ts": t,
                        "user_id": f"u{n % 5000}",
                        "session_id": f"bench-{n}",
                        "event_type": "view",
                        "product_id": f"p{i}",
                        "price": 9.5,
                    }
                )
            group.append(json.dumps({"events": events}).encode())
        out.append(group)
    return out


async def run_cartlift(
    db: Path, groups: list[list[list[dict[str, Any]]]], profile: Path | None = None
) -> tuple[Stages, list[float]]:
    """Post each group to a started service's writer at once; the stages' times and each group's wall time."""
    service = Service(ServeSettings(db=str(db), model_dir=db.parent / "models", log_impressions=False))
    await service.start()
    stages = Stages()
    storage: Any = service.storage
    writer: Any = storage.writer
    live: Any = service.live
    # what the writer runs per group, outermost first; a stage absent from a version is skipped
    module = __import__(type(storage).__module__, fromlist=["_"])
    for label, owner, name in [
        ("group (all)", writer, "_ingest"),
        ("typed_rows", module, "typed_rows"),
        ("accept_rows", module, "accept_rows"),
        ("write_group", storage, "_write_group"),
        ("  unstored_filter", storage, "_unstored_filter"),
        ("  catalog_changes", storage, "_catalog_changes"),
        ("  duckdb calls", storage, "_execute_with"),
        ("  insert_events", storage, "_insert_events"),
        ("  merge_products", storage, "_merge_products"),
        ("_live_rows", module, "_live_rows"),
        ("context.take", live.context, "take"),
        ("live.record", live, "record"),
        ("split_outcomes", module, "split_outcomes"),
    ]:
        stages.patch(label, owner, name)
    if profile is not None:  # the writer's calls, profiled on its thread
        profiler = cProfile.Profile()
        ingest = writer._ingest

        def profiled(*args: Any) -> Any:
            if not stages.on:
                return ingest(*args)
            return profiler.runcall(ingest, *args)

        writer._ingest = profiled
    walls = []
    try:
        for g, group in enumerate(groups):
            stages.on = g >= WARM_GROUPS
            t = time.perf_counter()
            outcomes = await asyncio.gather(*(writer.ingest(batch) for batch in group))
            if g >= WARM_GROUPS:
                walls.append(time.perf_counter() - t)
            assert all(o.accepted == len(b) for o, b in zip(outcomes, group, strict=True)), outcomes[0]
        # a group posted again: every event a duplicate, nothing stored twice
        again = await asyncio.gather(*(writer.ingest([dict(r) for r in b]) for b in groups[-1]))
        assert all(o.duplicates == len(b) for o, b in zip(again, groups[-1], strict=True))
    finally:
        await service.stop()
    if profile is not None:
        profiler.dump_stats(profile)
    return stages, walls


def run_reference(db: Path, groups: list[list[list[dict[str, Any]]]]) -> tuple[float, list[float]]:
    """The bare insert of each group's records; its thread CPU and each group's wall time."""
    con = duckdb.connect(str(db))
    fields = ["event_id", "ts", "user_id", "session_id", "event_type", "product_id", "price"]
    cpu = 0.0
    walls = []
    try:
        for g, group in enumerate(groups):
            c, t = time.thread_time(), time.perf_counter()
            records = [r for batch in group for r in batch]
            table = pa.table(
                {
                    f: pa.array([r[f] for r in records], pa.float64() if f == "price" else pa.string())
                    for f in fields
                }
            )
            con.register("_posted", table)
            con.execute(
                "BEGIN TRANSACTION; INSERT INTO events (event_id, ts, user_id, session_id, event_type, product_id,"
                " quantity, price) SELECT event_id, CAST(CAST(ts AS TIMESTAMPTZ) AS TIMESTAMP), user_id, session_id,"
                " event_type, product_id, 1, price FROM _posted; COMMIT"
            )
            con.unregister("_posted")
            if g >= WARM_GROUPS:
                cpu += time.thread_time() - c
                walls.append(time.perf_counter() - t)
    finally:
        con.close()
    return cpu, walls


@contextlib.contextmanager
def busy_python(on: bool) -> Iterator[None]:
    """A thread running Python without pause (it gives the GIL up only when another thread asks)."""
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    thread = threading.Thread(target=spin, daemon=True)
    if on:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if on:
            thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=40, help=f"Groups timed (after {WARM_GROUPS} warm-up).")
    parser.add_argument("--batches", type=int, default=64, help="Batches per group (the connections).")
    parser.add_argument("--per-batch", type=int, default=10, help="Events per batch.")
    parser.add_argument("--sessions", type=int, default=20_000, help="Sessions in the shop store.")
    parser.add_argument("--ts", choices=("fixed", "varied"), default="fixed")
    parser.add_argument("--profile", type=Path, help="Write a cProfile of the writer's groups here.")
    parser.add_argument("--busy", action="store_true", help="A busy Python thread beside the writers.")
    parser.add_argument("--switch-interval", type=float, help="Python's switch interval (s) while timed.")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)

    tmp = Path(tempfile.mkdtemp(prefix="cartlift-bench-writer-"))
    try:
        db, ref = tmp / "store.duckdb", tmp / "reference.duckdb"
        shop = make_events(args.sessions, users=args.sessions // 4, products=2_000)
        with EventStore(db) as store:
            store.ingest_records(shop, source="bench")
        shutil.copy(db, ref)
        total = args.groups + WARM_GROUPS
        raw = bodies(total, args.batches, args.per_batch, args.ts)
        # the records as the route hands them to the writer (its own JSON reader)
        groups = [[read_events(b, "application/json") for b in group] for group in raw]
        ref_groups = [[read_events(b, "application/json") for b in group] for group in raw]
        with busy_python(args.busy):
            stages, walls = asyncio.run(run_cartlift(db, groups, args.profile))
            ref_cpu, ref_walls = run_reference(ref, ref_groups)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    events = args.groups * args.batches * args.per_batch
    per = 1e6 / events
    print(
        f"cartlift {cartlift.__file__}\nshop: {len(shop):,} events; {args.groups} groups of {args.batches} x "
        f"{args.per_batch} events timed (ts {args.ts}), after {WARM_GROUPS} warm-up groups"
        + (
            f"; a busy Python thread beside, switch interval {sys.getswitchinterval() * 1e3:g} ms"
            if args.busy
            else ""
        )
    )
    print(f"\n{'writer stage':<20} {'CPU us/event':>13} {'wall us/event':>14}")
    for label in sorted(stages.cpu, key=list(stages.order).index):
        print(f"{label:<20} {stages.cpu[label] * per:>13.2f} {stages.wall[label] * per:>14.2f}")
    known = sum(v for k, v in stages.cpu.items() if not k.startswith(" ") and k != "group (all)")
    print(f"{'(rest of group)':<20} {(stages.cpu['group (all)'] - known) * per:>13.2f}")
    med, ref_med = statistics.median(walls), statistics.median(ref_walls)
    size = args.batches * args.per_batch
    print(
        f"\nwall per group (post to outcomes, median / p90): cartlift {med * 1e3:.2f} / "
        f"{sorted(walls)[int(len(walls) * 0.9)] * 1e3:.2f} ms; bare DuckDB insert {ref_med * 1e3:.2f} / "
        f"{sorted(ref_walls)[int(len(ref_walls) * 0.9)] * 1e3:.2f} ms"
    )
    print(
        f"writer CPU per event: cartlift {stages.cpu['group (all)'] * per:.2f} us, bare insert {ref_cpu * per:.2f} us"
    )
    print(
        f"events/s per group: cartlift {size / med:,.0f}, bare DuckDB insert {size / ref_med:,.0f}; "
        f"ratio {ref_med / med:.2f} of bare"
    )


if __name__ == "__main__":
    main()
