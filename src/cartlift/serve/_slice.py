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

`postgres_store` is the same idea for a whole command: a working copy of the store in a temporary
DuckDB file; when the command succeeds, the rows it added or changed in the tables the act and
experiments packages own (and in the catalog) are written back. That is how a PostgreSQL store gets
its saved policy (``cartlift act train --db postgresql://...``), its experiments (``cartlift
experiment create``) and its catalog (``cartlift ingest catalog.csv --format products``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from cartlift.errors import StoreError
from cartlift.events import EventStore
from cartlift.events._schema import create_table_sql

__all__ = [
    "CONSENT_COLUMNS",
    "PACKAGE_TABLES",
    "clear",
    "fill",
    "fill_cart",
    "fill_experiments",
    "fill_outcomes",
    "new_slice",
    "package_tables",
    "postgres_store",
    "write_back",
]

CONSENT_COLUMNS: Final[dict[str, str]] = {"user_id": "VARCHAR NOT NULL", "email": "BOOLEAN", "sms": "BOOLEAN"}
"""The ``consents`` table the act package reads (exported from the e-mail tool; absent rows: no consent)."""

PACKAGE_TABLES: Final = (
    "consents",
    "decisions",
    "act_models",
    "experiments",
    "experiment_phases",
    "exposures",
)
"""Tables beyond the core ones that the act and experiments packages read (all of them exist on PostgreSQL)."""

_BUDGET_LOOKBACK: Final = timedelta(days=2)
"""The rules' coupon budget counts a local day; with UTC offsets within +-14 h it starts within 2 days
before the cart's last event, so decisions from then on are a superset of what the ledger reads."""

_EXPOSURE_MERGE: Final = (
    "(experiment, salt, unit_id) DO UPDATE SET "
    "first_exposed_at = least(exposures.first_exposed_at, EXCLUDED.first_exposed_at), "
    "last_exposed_at = greatest(exposures.last_exposed_at, EXCLUDED.last_exposed_at)"
)
_ON_CONFLICT: Final[dict[str, str]] = {
    # the primary key and the unique index on cart_id: a cart keeps its first decision
    "decisions": "DO NOTHING",
    # the same merge as log_exposures: earliest first exposure, latest last exposure
    "exposures": _EXPOSURE_MERGE,
    "experiment_phases": "DO NOTHING",
    # definitions, the saved policy and catalog rows: the command's version replaces the stored one
    "act_models": "(name) DO UPDATE SET {all}",
    "experiments": "(name) DO UPDATE SET {all}",
    "products": "(product_id) DO UPDATE SET {all}",
    "loads": "DO NOTHING",
    "quarantine": "DO NOTHING",
}
"""How each package table's rows merge into PostgreSQL."""


def package_tables() -> list[str]:
    """The DuckDB DDL of every table in `PACKAGE_TABLES`, as the packages define them."""
    from cartlift.act import DECISION_COLUMNS, MODEL_COLUMNS, MODEL_TABLE
    from cartlift.experiments import EXPERIMENT_TABLES

    return [
        create_table_sql("consents", CONSENT_COLUMNS),
        create_table_sql("decisions", DECISION_COLUMNS),
        create_table_sql(MODEL_TABLE, MODEL_COLUMNS),
        *EXPERIMENT_TABLES,
    ]


def new_slice(path: str | Path = ":memory:") -> EventStore:
    """An empty `EventStore` with the core tables and every package table (opened once, reused)."""
    store = EventStore(path, threads=1)
    for ddl in package_tables():
        store.con.execute(ddl)
    return store


def clear(store: EventStore) -> None:
    """Empty every table of a slice (cheaper than a new in-memory database, which takes ~40 ms)."""
    # duckdb_tables() answers in about half the time of information_schema
    rows = store.con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
    for (table,) in rows:
        store.con.execute(f"DELETE FROM {table}")


def _columns(store: EventStore, table: str) -> list[str]:
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
    columns = _columns(store, table)
    n = 0
    with pg.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", list(params))
        while rows := cur.fetchmany(chunk):
            _insert(store, table, columns, rows)
            n += len(rows)
    return n


def fill_cart(pg: Any, store: EventStore, cart_id: str, policy: str) -> None:
    """Everything `cartlift.act.decide_cart` reads for one cart (see the module docstring)."""
    from cartlift.act import MODEL_TABLE

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

    Conflicts resolve as `_ON_CONFLICT` says for the table. Returns the rows PostgreSQL inserted or
    updated (0 for a decision whose cart was decided by another process first).
    """
    columns = _columns(store, table)
    rows = store.con.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", list(params)
    ).fetchall()
    if not rows:
        return 0
    keys = {"act_models": ("name",), "experiments": ("name",), "products": ("product_id",)}.get(table, ())
    every = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
    conflict = _ON_CONFLICT[table].format(all=every)
    marks = ", ".join(["%s"] * len(columns))
    with pg.transaction(), pg.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT {conflict}",
            [list(r) for r in rows],
        )
        return max(int(cur.rowcount), 0)


_PG_PREFIXES: Final = ("postgresql:", "postgres:")


@contextmanager
def postgres_store(url: str, *, read_only: bool = False) -> Iterator[EventStore]:
    """A working copy of a PostgreSQL store for one command; what the command writes is merged back.

    Events, the catalog and the package tables are copied into a temporary DuckDB file. When the
    block ends without an error (and not ``read_only``), the rows the command added or changed in
    the package tables (saved policies, experiments, their phases and exposures, decisions) and in
    the catalog, with its ``loads`` and ``quarantine`` records, are merged into PostgreSQL in one
    transaction (so ``cartlift ingest catalog.csv --format products`` loads a catalog). Events reach
    PostgreSQL through the service (``POST /v1/events``): a command that added events here raises
    `StoreError` and writes nothing back. Consents are kept as exported into PostgreSQL.
    """
    from cartlift.serve._postgres import connect
    from cartlift.serve._train import snapshot_postgres

    if not url.startswith(_PG_PREFIXES):
        raise StoreError(f"A PostgreSQL store is given as postgresql://user@host/db. Got {url!r}.")
    compared = (*(t for t in PACKAGE_TABLES if t != "consents"), "products")
    with tempfile.TemporaryDirectory(prefix="cartlift-pg-") as tmp:
        path = Path(tmp) / "copy.duckdb"
        snapshot_postgres(url, path)  # events and products, streamed in chunks
        store = new_slice(path)
        pg = connect(url)
        try:
            for table in PACKAGE_TABLES:
                fill(pg, store, table)
            # the tables as copied, to merge back only what the command changed; loads and quarantine
            # start empty here, so all their rows are the command's
            store.con.execute("CREATE SCHEMA _copied")
            for table in compared:
                store.con.execute(f"CREATE TABLE _copied.{table} AS SELECT * FROM main.{table}")
            events = store.count("events")
            yield store
            if read_only:
                return
            if store.count("events") != events:
                raise StoreError(
                    "This command added events, which a PostgreSQL store takes through the service "
                    "(POST /v1/events); nothing was written back."
                )
            with pg.transaction():
                for table in compared:
                    cols = ", ".join(_columns(store, table))
                    store.con.execute(
                        f"CREATE TEMP TABLE _new AS SELECT {cols} FROM main.{table} EXCEPT SELECT {cols} FROM _copied.{table}"
                    )
                    try:
                        store.con.execute(f"DELETE FROM main.{table}")
                        store.con.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM _new")
                    finally:
                        store.con.execute("DROP TABLE _new")
                for table in (*compared, "loads", "quarantine"):
                    write_back(pg, store, table)
        finally:
            pg.close()
            store.close()
