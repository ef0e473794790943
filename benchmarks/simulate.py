"""Speed of the simulator: ~10M events in one run, against writing the same events to Parquet.

Usage: ``.venv/bin/python benchmarks/simulate.py [--events N] [--seed S] [--load]``

The reference is pyarrow writing the simulated events to a Parquet file (what any pipeline does
with 10M events at least once), printed as a ratio. ``--load`` also times loading the store
through the validated ingest path (`SimulatedStore.write_to`). The taste ranking, computed on
demand, is timed on its own.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from cartlift.simulate import simulate
from cartlift.store import EventStore

PILOT_USERS = 20_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events to simulate (approximately)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--load", action="store_true", help="also load the events into a temporary store")
    args = parser.parse_args(argv)

    # a small pilot run says how many events a customer makes with the default settings
    pilot = simulate(n_users=PILOT_USERS, random_state=args.seed + 1)
    users = max(1, math.ceil(args.events / (pilot.stats.events / PILOT_USERS)))

    began, cpu = time.perf_counter(), _cpu()
    sim = simulate(n_users=users, random_state=args.seed)
    seconds, cpu_seconds = time.perf_counter() - began, _cpu() - cpu
    n = sim.stats.events
    print(f"simulate: {n:,} events, {users:,} users, {sim.stats.sessions:,} sessions")
    print(f"simulate: {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU, {n / seconds:,.0f} events/s")
    print(
        f"simulate: cart abandonment {sim.stats.cart_abandonment_rate:.4f}, "
        f"conversion {sim.stats.conversion_rate:.4f}"
    )

    with tempfile.TemporaryDirectory(prefix="cartlift-bench-") as tmp:
        began = time.perf_counter()
        pq.write_table(sim.events, Path(tmp) / "events.parquet")
        reference = time.perf_counter() - began
        print(
            f"reference: pyarrow writes the same events to Parquet in {reference:.1f} s ({n / reference:,.0f} events/s)"
        )
        print(f"ratio: simulate / Parquet write = {seconds / reference:.2f}")

        began = time.perf_counter()
        taste = sim.taste_ranking()
        print(
            f"taste ranking: {taste.num_rows:,} rows (top {sim.config.taste_top_k} of {users:,} users) in {time.perf_counter() - began:.1f} s"
        )

        if args.load:
            with EventStore(Path(tmp) / "bench.duckdb") as store:
                began = time.perf_counter()
                loaded = sim.write_to(store)
                load_seconds = time.perf_counter() - began
            ev = loaded["events"]
            print(
                f"load: {ev['accepted']:,} accepted, {ev['quarantined']:,} quarantined in {load_seconds:.1f} s "
                f"({n / load_seconds:,.0f} events/s, products and truth tables included)"
            )
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
