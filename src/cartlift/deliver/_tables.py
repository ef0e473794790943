"""The delivery tables, declared once for DuckDB and PostgreSQL, and the small connection adapter.

Every table of the deliver package is declared here as ``{column: type}`` in portable SQL types
(VARCHAR, BOOLEAN, TIMESTAMP, INTEGER, DOUBLE); `ddl` writes the ``CREATE TABLE`` for either
backend. Times are naive UTC ``TIMESTAMP`` on both. `Db` is all the rest of the package knows
about a connection: run SQL with ``?`` placeholders, get rows or a row count, and group
statements in a transaction. All SQL lives in this module and `cartlift.deliver._repo`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import duckdb
import pyarrow as pa

from cartlift.errors import StoreError

__all__ = [
    "DELIVER_TABLES",
    "INDEXES",
    "PERSONAL_TABLES",
    "Db",
    "connect_postgres",
    "create_tables",
    "ddl",
    "is_postgres_url",
]

CUSTOMERS: Final[dict[str, str]] = {
    "user_id": "VARCHAR PRIMARY KEY",  # the same id as events.user_id
    "email": "VARCHAR",  # normalised by email-validator
    "phone": "VARCHAR",  # E.164
    "time_zone": "VARCHAR",  # IANA name, checked with zoneinfo
    "locale": "VARCHAR",
    "email_consent": "BOOLEAN NOT NULL",
    "email_consent_source": "VARCHAR",
    "email_consent_at": "TIMESTAMP",
    "sms_consent": "BOOLEAN NOT NULL",
    "sms_consent_source": "VARCHAR",
    "sms_consent_at": "TIMESTAMP",
    "unsubscribed_at": "TIMESTAMP",
    "updated_at": "TIMESTAMP NOT NULL",
    "load_id": "VARCHAR",
}
CONTACT_QUARANTINE: Final[dict[str, str]] = {
    "load_id": "VARCHAR NOT NULL",
    "source": "VARCHAR NOT NULL",
    "row_number": "INTEGER",  # 1-based record, header excluded
    "user_id": "VARCHAR",
    "raw": "VARCHAR NOT NULL",  # the record as a JSON object
    "reason": "VARCHAR NOT NULL",
    "quarantined_at": "TIMESTAMP NOT NULL",
}
MESSAGES: Final[dict[str, str]] = {
    "message_id": "VARCHAR PRIMARY KEY",  # also the e-mail's Message-ID local part: stable across retries
    "decision_id": "VARCHAR NOT NULL UNIQUE",  # one message per decision: scheduling twice is harmless
    "cart_id": "VARCHAR NOT NULL",
    "user_id": "VARCHAR NOT NULL",
    "action": "VARCHAR NOT NULL",
    "channel": "VARCHAR NOT NULL",  # email, sms
    "coupon_code": "VARCHAR",
    "decided_at": "TIMESTAMP NOT NULL",
    "created_at": "TIMESTAMP NOT NULL",
    "due_at": "TIMESTAMP NOT NULL",
    "status": "VARCHAR NOT NULL",  # scheduled, sending, sent, cancelled, dead
    "attempts": "INTEGER NOT NULL",
    "last_error": "VARCHAR",
    "deferrals": "INTEGER NOT NULL",
    "deferred_reason": "VARCHAR",
    "lease_until": "TIMESTAMP",
    "worker": "VARCHAR",
    "provider_id": "VARCHAR",
    "sent_at": "TIMESTAMP",
    "recipient": "VARCHAR",
}
COUPONS: Final[dict[str, str]] = {
    "code": "VARCHAR PRIMARY KEY",
    "user_id": "VARCHAR NOT NULL",
    "cart_id": "VARCHAR",
    "decision_id": "VARCHAR",
    "discount_share": "DOUBLE NOT NULL",
    "discount_amount": "DOUBLE NOT NULL",
    "created_at": "TIMESTAMP NOT NULL",
    "expires_at": "TIMESTAMP NOT NULL",
    "redeemed_at": "TIMESTAMP",
    "order_id": "VARCHAR",
}
MESSAGE_EVENTS: Final[dict[str, str]] = {
    "message_id": "VARCHAR NOT NULL",
    "user_id": "VARCHAR NOT NULL",
    "kind": "VARCHAR NOT NULL",  # click, unsubscribe
    "ts": "TIMESTAMP NOT NULL",
}
DELIVER_KEYS: Final[dict[str, str]] = {"name": "VARCHAR PRIMARY KEY", "secret": "VARCHAR NOT NULL"}

DELIVER_TABLES: Final[dict[str, dict[str, str]]] = {
    "customers": CUSTOMERS,
    "contact_quarantine": CONTACT_QUARANTINE,
    "messages": MESSAGES,
    "coupons": COUPONS,
    "message_events": MESSAGE_EVENTS,
    "deliver_keys": DELIVER_KEYS,
}
"""Every table of the deliver package."""

INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS messages_due ON messages (status, due_at)",
    "CREATE INDEX IF NOT EXISTS messages_user ON messages (user_id)",
)

PERSONAL_TABLES: Final = (
    ("customers", "user_id"),
    ("contact_quarantine", "user_id"),
    ("messages", "user_id"),
    ("coupons", "user_id"),
    ("message_events", "user_id"),
)
"""The deliver tables that hold a person's rows, with the column naming them (what erasure deletes)."""

_PG_TYPES: Final = {"DOUBLE": "DOUBLE PRECISION"}


def ddl(name: str, dialect: Literal["duckdb", "postgres"]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one deliver table on ``dialect``."""
    cols = []
    for col, kind in DELIVER_TABLES[name].items():
        if dialect == "postgres":
            head, _, rest = kind.partition(" ")
            kind = f"{_PG_TYPES.get(head, head)} {rest}".strip()
        cols.append(f"{col} {kind}")
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})"


class Db:
    """One connection, DuckDB or PostgreSQL (psycopg 3, autocommit), behind one small interface.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection or psycopg.Connection
        Autocommit outside `transaction` (DuckDB's default; psycopg with ``autocommit=True``).
    """

    def __init__(self, con: Any) -> None:
        self.con = con
        self.dialect: Literal["duckdb", "postgres"] = (
            "duckdb" if isinstance(con, duckdb.DuckDBPyConnection) else "postgres"
        )

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL (row locks with SKIP LOCKED; several workers may share the outbox)."""
        return self.dialect == "postgres"

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``?`` placeholders) and return its rows (empty for a statement)."""
        if self.dialect == "duckdb":
            cur = self.con.execute(sql, list(params))
            return cur.fetchall() if cur.description else []
        with self.con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            return cur.fetchall() if cur.description else []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement and return the rows it changed."""
        if self.dialect == "duckdb":
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
            self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _deliver_rows {on_conflict}")
        finally:
            self.con.unregister("_deliver_rows")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        if self.dialect == "postgres":
            with self.con.transaction():
                yield
            return
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


def create_tables(db: Db, *, extra: Sequence[str] = ()) -> None:
    """Create the deliver tables and indexes that are missing (and the ``extra`` statements)."""
    # DuckDB scans a column store quickly and pays for every index on each UPDATE of an indexed
    # column (a status change is a delete and an insert in its index): indexes on PostgreSQL only
    statements = [
        *(ddl(name, db.dialect) for name in DELIVER_TABLES),
        *(INDEXES if db.postgres else ()),
        *extra,
    ]
    if db.postgres:
        # creating tables concurrently from several processes can race on the catalog; one lock orders them
        with db.transaction():
            db.rows("SELECT pg_advisory_xact_lock(4243)")
            for sql in statements:
                db.execute(sql)
        return
    for sql in statements:
        db.execute(sql)


def is_postgres_url(db: str | None) -> bool:
    """True for a ``postgresql://`` or ``postgres://`` URL (a Path may have folded its ``//``)."""
    return bool(db) and re.match(r"^postgres(?:ql)?:/", str(db)) is not None


def connect_postgres(url: str) -> Db:
    """Connect to PostgreSQL (autocommit) at ``url``; ``?schema=NAME`` selects (and creates) a schema."""
    import psycopg

    url = re.sub(r"^(postgres(?:ql)?):/+", r"\1://", url)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    conninfo = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        con = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        raise StoreError(
            f"Cannot connect to PostgreSQL at {parts.hostname!r}: {str(e).strip().splitlines()[0]}"
        ) from e
    if schema is not None:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.execute(f'SET search_path TO "{schema}"')
    return Db(con)
