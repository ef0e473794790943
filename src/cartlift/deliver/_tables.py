"""The delivery tables and the small connection adapter.

The tables are declared with every other in `cartlift.store` (``store/_tables.py``), which
writes their DDL for either backend. Times are naive UTC ``TIMESTAMP`` on both. `Db` is all the rest of the package knows
about a connection: run SQL with ``?`` placeholders, get rows or a row count, and group
statements in a transaction. All SQL lives in this module and `cartlift.deliver._repo`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final, Literal

import duckdb
import pyarrow as pa

from cartlift.store import CUSTOMER_COLUMNS, MESSAGE_COLUMNS, TABLES, parse_store_url
from cartlift.store._postgres import connect

__all__ = [
    "CUSTOMERS",
    "DELIVER_TABLES",
    "MESSAGES",
    "Db",
    "connect_postgres",
    "create_tables",
    "is_postgres_url",
]

CUSTOMERS: Final = CUSTOMER_COLUMNS
MESSAGES: Final = MESSAGE_COLUMNS

DELIVER_TABLES: Final = (
    "customers",
    "contact_quarantine",
    "messages",
    "coupons",
    "message_events",
    "deliver_keys",
)
"""Every table of the deliver package (declared with every other in `cartlift.store`)."""


class Db:
    """One connection, DuckDB or PostgreSQL (psycopg 3, autocommit), behind one small interface.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection or psycopg.Connection
        Autocommit outside `transaction` (DuckDB's default; psycopg with ``autocommit=True``).
    lock : threading.RLock, optional
        Held for each statement and through each `transaction`: a service's `Storage.write_lock`
        when ``con`` is a cursor of its DuckDB database, so this connection's writes and the
        service's writer take turns instead of conflicting.
    """

    def __init__(self, con: Any, *, lock: threading.RLock | None = None) -> None:
        self.con = con
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.dialect: Literal["duckdb", "postgres"] = (
            "duckdb" if isinstance(con, duckdb.DuckDBPyConnection) else "postgres"
        )
        self.created: set[str] = (
            set()
        )  # tables made through this adapter (a worker's pass needs not ask again)

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL (row locks with SKIP LOCKED; several workers may share the outbox)."""
        return self.dialect == "postgres"

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``?`` placeholders) and return its rows (empty for a statement)."""
        if self.dialect == "duckdb":
            with self._lock:
                cur = self.con.execute(sql, list(params))
                return cur.fetchall() if cur.description else []
        with self.con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            return cur.fetchall() if cur.description else []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement and return the rows it changed."""
        if self.dialect == "duckdb":
            with self._lock:
                cur = self.con.execute(sql, list(params))
                got = cur.fetchall() if cur.description else []
            return int(got[0][0]) if got and got[0] and isinstance(got[0][0], int) else 0
        with self.con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            return int(cur.rowcount)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row of parameters."""
        if not rows:
            return
        if self.dialect == "duckdb":
            with self._lock:
                self.con.executemany(sql, [list(r) for r in rows])
            return
        with self.con.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), [list(r) for r in rows])

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, on_conflict: str = ""
    ) -> None:
        """Insert many rows at once (DuckDB: one Arrow batch, ~1,000x faster than row by row).

        ``on_conflict`` is appended as is (``ON CONFLICT DO NOTHING`` ...).
        """
        if not rows:
            return
        cols = ", ".join(columns)
        if self.dialect == "postgres":
            self.many(
                f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' for _ in columns)}) {on_conflict}", rows
            )
            return
        batch = pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(columns)})
        self.con.register("_deliver_rows", batch)
        try:
            with self._lock:
                self.con.execute(
                    f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _deliver_rows {on_conflict}"
                )
        finally:
            self.con.unregister("_deliver_rows")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        if self.dialect == "postgres":
            with self.con.transaction():
                yield
            return
        with self._lock:
            self.con.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")

    def tables(self) -> set[str]:
        """The tables the store has (in the current schema)."""
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        return {str(r[0]) for r in self.rows(sql)}


def create_tables(db: Db, *, names: Sequence[str] = DELIVER_TABLES) -> None:
    """Create the tables ``names`` (default: the deliver tables) that are missing, with their indexes."""
    if db.created.issuperset(names):
        return
    statements = [sql for name in names for sql in TABLES[name].ddl(db.dialect)]
    if db.postgres:
        # creating tables concurrently from several processes can race on the catalog; one lock orders them
        with db.transaction():
            db.rows("SELECT pg_advisory_xact_lock(4243)")
            for sql in statements:
                db.execute(sql)
    else:
        for sql in statements:
            db.execute(sql)
    db.created.update(names)


def is_postgres_url(db: str | None) -> bool:
    """True when ``db`` names a PostgreSQL store (`cartlift.store.parse_store_url` decides)."""
    return bool(db) and parse_store_url(db).is_postgres


def connect_postgres(url: str) -> Db:
    """Connect to the PostgreSQL store at ``url`` (autocommit; its tables created, ``?schema=`` honoured)."""
    return Db(connect(url))
