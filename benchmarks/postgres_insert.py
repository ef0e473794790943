"""The PostgreSQL store's event insert: CPU on the writer thread and time per group, against psycopg's own ways.

On PostgreSQL the service's writer thread inserts each group of posted events in one statement
(`cartlift.store._postgres`, ``_INSERT``); its Python work holds the GIL that the process's event
loop needs to read the next requests. This benchmark inserts the same groups (``--rows`` events
each, values of every column type: microsecond times, text with quotes, backslashes and accents,
JSON properties, missing values) three ways into tables of the store's own schema:

* cartlift: the store's insert (the rows as one ``jsonb`` parameter);
* psycopg arrays: one array parameter per column, ``unnest`` in the statement (what the store did
  before; psycopg adapts a list element by element in Python);
* psycopg COPY: ``COPY ... FROM STDIN`` of the rows (``write_row``) into a temporary table, then
  ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, in one transaction.

It prints, per group, the median CPU time of the calling thread (``time.thread_time``: what the
event loop loses) and the median wall time, and the ratios of cartlift's to each reference; then
checks that the three tables hold the same rows.
Usage: ``python benchmarks/postgres_insert.py [--url postgresql://127.0.0.1/test] [--groups 60] [--rows 640]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyarrow as pa

from cartlift.store import PostgresStorage
from cartlift.store._postgres import _EVENT_COLUMNS, _EVENT_TYPES, _Context, connect


def make_group(g: int, n: int) -> pa.Table:
    """``n`` checked rows as the store receives them, with every kind of value a column holds."""
    start = datetime(2026, 10, 1, 10)
    return pa.table(
        {
            "event_id": [f"g{g}-{i}" for i in range(n)],
            "ts": pa.array(
                [start + timedelta(seconds=i, microseconds=37 * i) for i in range(n)], pa.timestamp("us")
            ),
            "user_id": [f"u{i % 500}" for i in range(n)],
            "session_id": [f"s{g}-{i // 10}" for i in range(n)],
            "event_type": ["view", "cart_add", "purchase", "search"] * (n // 4) + ["view"] * (n % 4),
            "product_id": [None if i % 9 == 0 else f"p{i % 2000}" for i in range(n)],
            "quantity": pa.array([1 + i % 3 for i in range(n)], pa.int32()),
            "price": [None if i % 7 == 0 else 9.5 + i / 7 for i in range(n)],
            "order_id": [f"o{i}" if i % 4 == 2 else None for i in range(n)],
            "channel": ["web", "app", 'e-mail "promo"', None] * (n // 4) + [None] * (n % 4),
            "device": [None] * n,
            "properties": ['{"q": "caf\\u00e9 \\"x\\" \\\\ y", "n": 3}' if i % 2 else None for i in range(n)],
        }
    )


def insert_arrays(con: psycopg.Connection[Any], rows: pa.Table, load_id: str) -> None:
    rows = rows.sort_by("event_id")
    statement = f"""INSERT INTO events ({", ".join(_EVENT_COLUMNS)}, load_id)
        SELECT *, %s::text FROM unnest({", ".join(f"%s::{t}[]" for t in _EVENT_TYPES)})
        ON CONFLICT (event_id) DO NOTHING RETURNING event_id"""
    con.execute(statement, [load_id, *(rows.column(c).to_pylist() for c in _EVENT_COLUMNS)]).fetchall()


def insert_copy(con: psycopg.Connection[Any], rows: pa.Table, load_id: str) -> None:
    rows = rows.sort_by("event_id")
    columns = ", ".join(_EVENT_COLUMNS)
    with con.transaction():
        con.execute("CREATE TEMP TABLE IF NOT EXISTS _copied (LIKE events) ON COMMIT DELETE ROWS")
        with con.cursor().copy(f"COPY _copied ({columns}) FROM STDIN") as copy:
            for row in zip(*(rows.column(c).to_pylist() for c in _EVENT_COLUMNS), strict=True):
                copy.write_row(row)
        con.execute(
            f"INSERT INTO events ({columns}, load_id) SELECT {columns}, %s FROM _copied "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [load_id],
        ).fetchall()


def timed(insert: Callable[[pa.Table, str], None], groups: list[pa.Table]) -> tuple[float, float]:
    """Median CPU and wall milliseconds per group, after three groups of warm-up."""
    cpu, wall = [], []
    for g, rows in enumerate(groups):
        c, w = time.thread_time(), time.perf_counter()
        insert(rows, f"load-{g}")
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu[3:]) * 1e3, statistics.median(wall[3:]) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://127.0.0.1/test")
    parser.add_argument("--groups", type=int, default=60)
    parser.add_argument("--rows", type=int, default=640, help="Events per group (64 posts of 10).")
    args = parser.parse_args()

    groups = [make_group(g, args.rows) for g in range(args.groups)]
    schemas = {name: f"bench_insert_{name}_{os.getpid()}" for name in ("cartlift", "arrays", "copy")}
    cons = {name: connect(f"{args.url}?schema={schema}") for name, schema in schemas.items()}
    storage = PostgresStorage(f"{args.url}?schema={schemas['cartlift']}")
    try:
        ways: dict[str, Callable[[pa.Table, str], None]] = {
            "cartlift (one jsonb parameter)": lambda rows, load: storage._insert_events(
                _Context(cons["cartlift"]), rows, load
            ),
            "psycopg arrays (one per column)": lambda rows, load: insert_arrays(cons["arrays"], rows, load),
            "psycopg COPY, then INSERT": lambda rows, load: insert_copy(cons["copy"], rows, load),
        }
        results = {name: timed(insert, groups) for name, insert in ways.items()}
        stored = {
            name: con.execute(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events ORDER BY event_id").fetchall()
            for name, con in cons.items()
        }
    finally:
        for name, con in cons.items():
            con.execute(f'DROP SCHEMA "{schemas[name]}" CASCADE')
            con.close()

    print(f"{args.groups} groups of {args.rows} events into PostgreSQL (medians after 3 warm-up groups)")
    print(f"{'way':34} {'CPU ms/group':>13} {'wall ms/group':>14}")
    for name, (cpu, wall) in results.items():
        print(f"{name:34} {cpu:13.2f} {wall:14.2f}")
    mine = results["cartlift (one jsonb parameter)"]
    for name, (cpu, wall) in list(results.items())[1:]:
        print(f"cartlift / {name}: CPU {mine[0] / cpu:.2f}, wall {mine[1] / wall:.2f}")
    same = stored["cartlift"] == stored["arrays"] == stored["copy"]
    print(f"the three tables hold the same {len(stored['cartlift']):,} rows: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit("the ways stored different rows")


if __name__ == "__main__":
    main()
