"""Ingest speed and memory: `cartlift ingest` vs DuckDB's bare `read_csv` into a table, same file, one run.

Generates a REES46-format CSV of N events (default 10M), then runs, each in its own process so
peak memory is measured per run:

* reference: ``CREATE TABLE raw AS SELECT * FROM read_csv(file)`` in a fresh DuckDB file;
* cartlift: ``cartlift ingest file --format rees46 --json`` into a fresh store (validation,
  content-hashed event ids, deduplication, quarantine, products, one transaction).

Prints events/s of both, the ratio (goal: cartlift >= 0.5 of bare DuckDB) and cartlift's peak
memory (goal: < 2 GB). Usage: ``python benchmarks/ingest.py [--events N] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from cartlift.events import FORMATS

HERE = Path(__file__).resolve().parent
CARTLIFT = Path(sys.executable).with_name("cartlift")


def generate(path: Path, n: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """Write ``n`` REES46-format events in chunks (bounded memory), with a few bad rows mixed in."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-01-01T00:00:00")
    types = np.array(["view", "cart", "remove_from_cart", "purchase"])
    brands = np.array(["acme", "globex", "initech", "umbrella", "hooli", ""])
    cats = np.array(["electronics.smartphone", "appliances.kitchen.mixer", "apparel.shoes", ""])
    with pacsv.CSVWriter(
        str(path),
        pa.schema([(c, pa.string()) for c in FORMATS["rees46"].columns]),
        write_options=pacsv.WriteOptions(quoting_style="none"),
    ) as writer:
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            secs = np.sort(rng.integers(0, 30 * 86400, m))
            ts = np.datetime_as_string(start + secs.astype("timedelta64[s]"), unit="s")
            user = rng.integers(0, n // 20 + 1, m)
            product = rng.integers(1_000_000, 1_020_000, m)
            times = np.char.add(np.char.replace(ts, "T", " "), " UTC")
            price = np.round(rng.lognormal(3.5, 1.0, m), 2).astype(str)
            etype = types[rng.choice(4, m, p=[0.9, 0.06, 0.01, 0.03])]
            bad = rng.random(m) < 1e-4  # a few unknown event types, to exercise the quarantine
            etype = np.where(bad, "wishlist", etype)
            batch = pa.table(
                {
                    "event_time": times,
                    "event_type": etype,
                    "product_id": product.astype(str),
                    "category_id": (product % 997).astype(str),
                    "category_code": cats[product % 4],
                    "brand": brands[product % 6],
                    "price": price,
                    "user_id": user.astype(str),
                    "user_session": np.char.add("s", (user * 31 + secs // 3600).astype(str)),
                }
            )
            writer.write_table(batch)


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Seconds, peak RSS (bytes) of this one child process, and its stdout."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
        stdout.seek(0)
        return seconds, usage.ru_maxrss * 1024, stdout.read()


REFERENCE = """
import sys, duckdb
con = duckdb.connect(sys.argv[2])
con.execute("SET memory_limit = '1GB'")
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv('{sys.argv[1]}', header=true)")
print(con.execute("SELECT count(*) FROM raw").fetchall()[0][0])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--csv", type=Path, help="use this REES46-format CSV instead of generating one")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cartlift-bench-ingest-"))
    try:
        csv = args.csv or work / "events.csv"
        if args.csv is None:
            t0 = time.perf_counter()
            generate(csv, args.events)
            print(
                f"generated {args.events:,} events ({csv.stat().st_size / 1e9:.2f} GB) "
                f"in {time.perf_counter() - t0:.1f} s"
            )
        ref_s, ref_mem, ref_out = timed([sys.executable, "-c", REFERENCE, str(csv), str(work / "ref.duckdb")])
        cl_s, cl_mem, cl_out = timed(
            [
                str(CARTLIFT),
                "ingest",
                str(csv),
                "--format",
                "rees46",
                "--db",
                str(work / "store.duckdb"),
                "--json",
            ]
        )
        result = json.loads(cl_out[cl_out.find("{") :])
        rows = int(ref_out)
        print(f"bare DuckDB read_csv : {rows / ref_s:>12,.0f} events/s  ({ref_s:.1f} s, {int(ref_out)} rows)")
        print(
            f"cartlift ingest      : {rows / cl_s:>12,.0f} events/s  ({cl_s:.1f} s, "
            f"accepted {result['accepted']:,}, duplicates {result['duplicates']:,}, "
            f"quarantined {result['quarantined']:,})"
        )
        print(f"ratio cartlift / DuckDB: {ref_s / cl_s:.2f}  (goal >= 0.5)")
        print(
            f"cartlift peak memory  : {cl_mem / 2**30:.2f} GiB  (goal < 2 GiB; the reference peaked at "
            f"{ref_mem / 2**30:.2f} GiB)"
        )
    finally:
        if args.keep:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
