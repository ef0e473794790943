"""PostgreSQL as the production store: several service processes write at once.

Validation is the importers' own: each merged batch is loaded into a scratch in-memory DuckDB
`EventStore` (same SQL rules, same quarantine reasons), then its accepted rows and quarantined
records are copied to PostgreSQL in one transaction. ``ON CONFLICT (event_id) DO NOTHING`` makes the
insert idempotent across processes: when two processes receive the same event, PostgreSQL's
unique index lets exactly one of them store it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from cartlift.errors import StoreError
from cartlift.events import CARTLIFT_COLUMNS, EVENT_COLUMNS, EventStore
from cartlift.predict import FeatureContext
from cartlift.serve._storage import LIVE_COLUMNS, IngestOutcome, Storage, now_utc, split_outcomes
from cartlift.serve._writer import Records

__all__ = ["PG_TABLES", "PostgresStorage", "connect", "pg_tables"]

PG_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        event_id TEXT PRIMARY KEY, ts TIMESTAMP NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
        event_type TEXT NOT NULL, product_id TEXT, quantity INTEGER NOT NULL, price DOUBLE PRECISION,
        order_id TEXT, channel TEXT, device TEXT, properties TEXT, load_id TEXT)""",
    "CREATE INDEX IF NOT EXISTS events_session ON events (session_id)",
    "CREATE INDEX IF NOT EXISTS events_user ON events (user_id)",
    """CREATE TABLE IF NOT EXISTS products (
        product_id TEXT PRIMARY KEY, title TEXT, description TEXT, category TEXT, brand TEXT,
        price DOUBLE PRECISION, cost DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        quarantine_id TEXT PRIMARY KEY, load_id TEXT, source TEXT NOT NULL, row_number BIGINT, line BIGINT,
        raw TEXT NOT NULL, reason TEXT NOT NULL, quarantined_at TIMESTAMP NOT NULL, user_id TEXT)""",
    """CREATE TABLE IF NOT EXISTS loads (
        load_id TEXT PRIMARY KEY, source TEXT NOT NULL, format TEXT NOT NULL, started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL, rows_read BIGINT NOT NULL, accepted BIGINT NOT NULL,
        duplicates BIGINT NOT NULL, quarantined BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS api_keys (
        key_hash TEXT PRIMARY KEY, key_id TEXT NOT NULL, scope TEXT NOT NULL, rate_limit DOUBLE PRECISION,
        label TEXT, created_at TIMESTAMP NOT NULL, revoked_at TIMESTAMP)""",
    "ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS origins TEXT",
    """CREATE TABLE IF NOT EXISTS audit_log (
        audit_id TEXT PRIMARY KEY, ts TIMESTAMP NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
        actor TEXT, details TEXT NOT NULL)""",
)
"""The service's own tables; `pg_tables` adds the packages' (decisions, policies, experiments)."""

_PACKAGE_INDEXES: Final = (
    # one decision per cart, whichever process decides it (the service relies on it)
    "CREATE UNIQUE INDEX IF NOT EXISTS decisions_one_per_cart ON decisions (cart_id)",
    "CREATE INDEX IF NOT EXISTS decisions_user ON decisions (user_id)",
    "CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts)",
    "CREATE INDEX IF NOT EXISTS exposures_unit ON exposures (unit_id)",
    "CREATE INDEX IF NOT EXISTS consents_user ON consents (user_id)",
)


def pg_tables() -> list[str]:
    """Every table of a PostgreSQL store: the service's, then the packages' from their own DuckDB DDL.

    The packages' tables keep DuckDB's column names and types; only ``DOUBLE`` is spelled
    ``DOUBLE PRECISION`` (PostgreSQL's ``VARCHAR`` without a length is text).
    """
    from cartlift.serve._slice import package_tables

    translated = [re.sub(r"\bDOUBLE\b", "DOUBLE PRECISION", ddl) for ddl in package_tables()]
    return [*PG_TABLES, *translated, *_PACKAGE_INDEXES]


T = TypeVar("T")

_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_EVENT_COLUMNS: Final = CARTLIFT_COLUMNS
# the PostgreSQL types of the same columns, from the one data model
_PG_TYPES: Final = {"VARCHAR": "text", "TIMESTAMP": "timestamp", "INTEGER": "int", "DOUBLE": "float8"}
_EVENT_TYPES: Final = tuple(_PG_TYPES[EVENT_COLUMNS[c].split()[0]] for c in _EVENT_COLUMNS)


def _split_schema(url: str) -> tuple[str, str | None]:
    """The URL without our ``schema=`` parameter (libpq would refuse it), and that schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    if schema is not None and not _SCHEMA.match(schema):
        raise StoreError(
            f"The schema in the store URL must be letters, digits and underscores. Got {schema!r}."
        )
    return urlunsplit(parts._replace(query=rest)), schema


def connect(url: str) -> psycopg.Connection[Any]:
    """Connect to the PostgreSQL store at ``url`` and create its tables (in ``?schema=NAME`` if given)."""
    conninfo, schema = _split_schema(url)
    try:
        con = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        host = urlsplit(conninfo).hostname
        raise StoreError(f"Cannot connect to PostgreSQL at {host!r}: {str(e).strip().splitlines()[0]}") from e
    if schema is not None:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.execute(f'SET search_path TO "{schema}"')
    # creating tables concurrently from several processes can race on the catalog; one lock orders them
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(4242)")
        for ddl in pg_tables():
            con.execute(ddl)
    return con


@dataclass
class _Context:
    con: psycopg.Connection[Any]
    scratch: EventStore
    slice: EventStore | None = None  # opened at the first request that needs one (~40 ms)


class PostgresStorage(Storage):
    """The PostgreSQL store.

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/db``, optionally with ``?schema=NAME``.
    max_batch_events : int
        Most events committed in one transaction.
    """

    kind = "postgres"

    def __init__(self, url: str, *, max_batch_events: int = 5_000) -> None:
        self.url = url
        super().__init__(max_batch_events=max_batch_events)

    def _open(self) -> _Context:
        return _Context(connect(self.url), EventStore(":memory:", threads=1))

    def _close(self, ctx: _Context) -> None:
        ctx.con.close()
        ctx.scratch.close()
        if ctx.slice is not None:
            ctx.slice.close()

    async def with_slice(self, fn: Callable[[psycopg.Connection[Any], EventStore], T]) -> T:
        """Run ``fn(connection, slice)`` on the writer thread; the slice is emptied afterwards.

        ``fn`` fills the in-memory DuckDB slice from PostgreSQL with what it needs (`cartlift.serve._slice`),
        runs a package function on it, and writes back what that function logged.
        """
        from cartlift.serve._slice import clear, new_slice

        def job(ctx: _Context) -> T:
            if ctx.slice is None:
                ctx.slice = new_slice()
            try:
                return fn(ctx.con, ctx.slice)
            finally:
                clear(ctx.slice)

        return await self.writer.call(job)

    async def feature_context(self) -> FeatureContext:
        """The live features' look-ups on this PostgreSQL store (its own connection)."""
        from cartlift.serve._live import PostgresFeatureContext

        return PostgresFeatureContext(self.url)

    def _rows(self, ctx: _Context, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with ctx.con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            return cur.fetchall() if cur.description else []

    @contextmanager
    def _transaction(self, ctx: _Context) -> Iterator[None]:
        with ctx.con.transaction():
            yield

    def _tables(self, ctx: _Context) -> set[str]:
        rows = self._rows(
            ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {str(r[0]) for r in rows}

    def _ingest_batches(self, ctx: _Context, batches: list[Records]) -> list[IngestOutcome]:
        rows = [r for b in batches for r in b]
        scratch = ctx.scratch
        try:
            result = scratch.ingest_records(rows, source=f"api:{uuid.uuid4().hex}")
            valid = scratch.con.execute(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events").fetchall()
            bad = scratch.con.execute(
                """SELECT quarantine_id, load_id, source, row_number, line, raw, reason, quarantined_at,
                          CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.user_id') END
                   FROM quarantine"""
            ).fetchall()
        finally:
            # the scratch store only validates; it must not remember ids across batches
            for table in ("events", "quarantine", "loads", "products"):
                scratch.con.execute(f"DELETE FROM {table}")
        columns: list[Sequence[Any]] = (
            list(zip(*valid, strict=True)) if valid else [[] for _ in _EVENT_COLUMNS]
        )
        unnest = ", ".join(f"%s::{t}[]" for t in _EVENT_TYPES)
        with ctx.con.transaction(), ctx.con.cursor() as cur:
            cur.execute(
                f"""INSERT INTO events ({", ".join(_EVENT_COLUMNS)}, load_id)
                    SELECT *, %s::text FROM unnest({unnest})
                    ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
                [result.load_id, *[list(c) for c in columns]],
            )
            inserted = {str(r[0]) for r in cur.fetchall()}
            if bad:
                cur.executemany(
                    "INSERT INTO quarantine VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    bad,
                )
            cur.execute(
                "INSERT INTO loads VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    result.load_id,
                    result.source,
                    "api",
                    now_utc(),
                    now_utc(),
                    result.rows_read,
                    len(inserted),
                    result.rows_read - result.quarantined - len(inserted),
                    result.quarantined,
                ],
            )
        rejected = {int(r[3]): str(r[6]) for r in bad}
        index = {c: i for i, c in enumerate(_EVENT_COLUMNS)}
        stored = [{c: row[index[c]] for c in LIVE_COLUMNS} for row in valid if str(row[0]) in inserted]
        return split_outcomes(batches, rejected, stored)

    def _quarantine_count(self, ctx: _Context, user_id: str) -> int:
        return int(self._rows(ctx, "SELECT count(*) FROM quarantine WHERE user_id = ?", [user_id])[0][0])

    def _delete_quarantine(self, ctx: _Context, user_id: str) -> None:
        self._rows(ctx, "DELETE FROM quarantine WHERE user_id = ?", [user_id])
