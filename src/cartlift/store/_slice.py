"""PostgreSQL through the packages that speak DuckDB SQL: per-request slices and a working copy.

The act and experiments packages compute in DuckDB SQL on an `EventStore`. On a PostgreSQL store
the service does not translate that SQL: it copies the rows one request reads into an in-memory
DuckDB `EventStore` (a *slice*, reused and emptied between requests on the storage's writer
thread), runs the package function on it unchanged, and writes the rows the function logged back
to PostgreSQL. The same data therefore gives the same answers on both backends.

What each request copies (`fill_cart`, `fill_experiments`, `fill_outcomes`):

- deciding for a cart: the cart's session, every session of its customer, the catalog rows of the
  products they touched and of every product in those categories (the policy's price index uses
  category medians), the customer's consents, the decisions the rules consult (this cart, this
  customer, and everyone's last two days for the daily coupon budget) and the saved policy;
- an experiment's assignment: the experiment definitions; its results: also the current phase's
  exposures and the exposed units' events from their first exposure on (the only events the
  store metrics count).

Writes go back with ``INSERT ... ON CONFLICT`` (`write_back`): a decision with ``DO NOTHING``
against PostgreSQL's unique index on ``decisions (cart_id)``, so when two processes decide one
cart at once exactly one decision is stored (the other process sees it and answers with it, as a
cart decided before); an exposure merges its first and last exposure times as `log_exposures` does.

`cartlift.store.postgres_store` (``_workcopy.py``) is the same idea for a whole command.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from cartlift.store._eventstore import EventStore
from cartlift.store._tables import MODEL_TABLE, PACKAGE_TABLES, TABLES, table_ddl

__all__ = [
    "clear",
    "columns_of",
    "fill",
    "fill_cart",
    "fill_experiments",
    "fill_outcomes",
    "new_slice",
    "write_back",
]

_BUDGET_LOOKBACK: Final = timedelta(days=2)
"""The rules' coupon budget counts a local day; with UTC offsets within +-14 h it starts within 2 days
before the cart's last event, so decisions from then on are a superset of what the ledger reads."""


def new_slice(path: str | Path = ":memory:") -> EventStore:
    """An empty `EventStore` with the core tables and every package table (opened once, reused)."""
    store = EventStore(path, threads=1)
    for ddl in table_ddl(PACKAGE_TABLES):
        store.con.execute(ddl)
    return store


def clear(store: EventStore) -> None:
    """Empty every table of a slice (cheaper than a new in-memory database, which takes ~40 ms)."""
    # duckdb_tables() answers in about half the time of information_schema
    rows = store.con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
    for (table,) in rows:
        store.con.execute(f"DELETE FROM {table}")


def columns_of(store: EventStore, table: str) -> list[str]:
    # an empty result's description: well under a millisecond, where information_schema takes ~9 ms
    cursor = store.con.execute(f"SELECT * FROM main.{table} LIMIT 0")
    cursor.fetchall()
    return [str(d[0]) for d in cursor.description or []]


def _insert(store: EventStore, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        return
    data = pa.table({c: pa.array(list(v)) for c, v in zip(columns, zip(*rows, strict=True), strict=True)})
    cols = ", ".join(columns)
    store.con.register("_slice_rows", data)
    try:
        store.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _slice_rows")
    finally:
        store.con.unregister("_slice_rows")


def fill(
    pg: Any,
    store: EventStore,
    table: str,
    where: str = "true",
    params: Sequence[Any] = (),
    *,
    chunk: int = 100_000,
) -> int:
    """Copy the rows of PostgreSQL's ``table`` matching ``where`` (``%s`` placeholders) into the slice.

    The slice's table decides the columns (PostgreSQL's tables have the same ones). Returns rows copied.
    """
    columns = columns_of(store, table)
    n = 0
    with pg.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", list(params))
        while rows := cur.fetchmany(chunk):
            _insert(store, table, columns, rows)
            n += len(rows)
    return n


def fill_cart(pg: Any, store: EventStore, cart_id: str, policy: str) -> None:
    """Everything `cartlift.act.decide_cart` reads for one cart (see the module docstring)."""
    fill(pg, store, MODEL_TABLE, "name = %s", [policy])
    with pg.cursor() as cur:
        cur.execute("SELECT DISTINCT user_id FROM events WHERE session_id = %s", [cart_id])
        users = [str(r[0]) for r in cur.fetchall()]
    # whole sessions: the customer's earlier carts are judged by all their events
    fill(
        pg,
        store,
        "events",
        "session_id IN (SELECT %s::text UNION SELECT session_id FROM events WHERE user_id = ANY(%s))",
        [cart_id, users],
    )
    touched = [
        str(r[0])
        for r in store.con.execute(
            "SELECT DISTINCT product_id FROM events WHERE product_id IS NOT NULL"
        ).fetchall()
    ]
    fill(
        pg,
        store,
        "products",
        "product_id = ANY(%s) OR category IN (SELECT category FROM products WHERE product_id = ANY(%s))",
        [touched, touched],
    )
    fill(pg, store, "consents", "user_id = ANY(%s)", [users])
    last = store.con.execute("SELECT max(ts) FROM events WHERE session_id = ?", [cart_id]).fetchall()[0][0]
    if last is None:
        fill(pg, store, "decisions", "cart_id = %s", [cart_id])
    else:
        fill(
            pg,
            store,
            "decisions",
            "cart_id = %s OR user_id = ANY(%s) OR ts >= %s",
            [cart_id, users, last - _BUDGET_LOOKBACK],
        )


def fill_experiments(pg: Any, store: EventStore) -> None:
    """Every experiment definition (a handful of rows)."""
    fill(pg, store, "experiments")


def fill_outcomes(pg: Any, store: EventStore, name: str) -> None:
    """The exposures of experiment ``name``'s current phase and its exposed units' events since exposure.

    Call after `fill_experiments`; an unknown experiment copies nothing (the package then says so).
    """
    rows = store.con.execute("SELECT salt FROM experiments WHERE name = ?", [name]).fetchall()
    if not rows:
        return
    salt = str(rows[0][0])
    fill(pg, store, "exposures", "experiment = %s AND salt = %s", [name, salt])
    fill(
        pg,
        store,
        "events",
        """EXISTS (SELECT 1 FROM exposures x WHERE x.unit_id = events.user_id AND x.experiment = %s
                   AND x.salt = %s AND x.status = 'assigned' AND events.ts >= x.first_exposed_at)""",
        [name, salt],
    )


def write_back(
    pg: Any, store: EventStore, table: str, where: str = "true", params: Sequence[Any] = ()
) -> int:
    """Insert the slice's rows of ``table`` matching ``where`` (``?`` placeholders) into PostgreSQL.

    Conflicts resolve as the table's declaration says (`Table.merge`). Returns the rows PostgreSQL inserted or
    updated (0 for a decision whose cart was decided by another process first).
    """
    columns = columns_of(store, table)
    rows = store.con.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", list(params)
    ).fetchall()
    if not rows:
        return 0
    declared = TABLES[table]
    if declared.merge is None:
        raise ValueError(f"The table {table!r} is not merged back into PostgreSQL (no merge declared).")
    every = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in declared.key_columns)
    conflict = declared.merge.format(all=every)
    marks = ", ".join(["%s"] * len(columns))
    with pg.transaction(), pg.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT {conflict}",
            [list(r) for r in rows],
        )
        return max(int(cur.rowcount), 0)
