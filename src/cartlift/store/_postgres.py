"""PostgreSQL as the production store: several service processes write at once.

Validation is the importers' own: each merged batch is loaded into a scratch in-memory DuckDB
`EventStore` (same SQL rules, same quarantine reasons), then its accepted rows and quarantined
records are copied to PostgreSQL in one transaction. ``ON CONFLICT (event_id) DO NOTHING`` makes the
insert idempotent across processes: when two processes receive the same event, PostgreSQL's
unique index lets exactly one of them store it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import psycopg

from cartlift.errors import StoreError
from cartlift.events import CARTLIFT_COLUMNS, EVENT_COLUMNS
from cartlift.store._eventstore import EventStore
from cartlift.store._slice import clear, new_slice
from cartlift.store._storage import (
    LIVE_COLUMNS,
    IngestOutcome,
    Storage,
    now_utc,
    split_outcomes,
    with_event_ids,
)
from cartlift.store._tables import table_ddl
from cartlift.store._url import StoreURL, parse_store_url
from cartlift.store._writer import Records

__all__ = ["PostgresStorage", "connect"]

T = TypeVar("T")

_EVENT_COLUMNS: Final = CARTLIFT_COLUMNS
# the PostgreSQL types of the same columns, from the one data model
_PG_TYPES: Final = {"VARCHAR": "text", "TIMESTAMP": "timestamp", "INTEGER": "int", "DOUBLE": "float8"}
_EVENT_TYPES: Final = tuple(_PG_TYPES[EVENT_COLUMNS[c].split()[0]] for c in _EVENT_COLUMNS)


def connect(url: str | StoreURL) -> psycopg.Connection[Any]:
    """Connect to the PostgreSQL store at ``url`` and create its tables (in ``?schema=NAME`` if given)."""
    store = parse_store_url(url)
    if not store.is_postgres or store.conninfo is None:
        raise StoreError(f"A PostgreSQL store is given as postgresql://user@host/db. Got {store.url!r}.")
    try:
        con = psycopg.connect(store.conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        raise StoreError(
            f"Cannot connect to PostgreSQL at {store.host!r}: {str(e).strip().splitlines()[0]}"
        ) from e
    if store.schema is not None:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"')
        con.execute(f'SET search_path TO "{store.schema}"')
    # creating tables concurrently from several processes can race on the catalog; one lock orders them
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(4242)")
        for ddl in table_ddl(dialect="postgres"):
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

    def __init__(self, url: str | StoreURL, *, max_batch_events: int = 5_000) -> None:
        self.url = parse_store_url(url).url
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

        ``fn`` fills the in-memory DuckDB slice from PostgreSQL with what it needs (`cartlift.store.fill`),
        runs a package function on it, and writes back what that function logged.
        """

        def job(ctx: _Context) -> T:
            if ctx.slice is None:
                ctx.slice = new_slice()
            try:
                return fn(ctx.con, ctx.slice)
            finally:
                clear(ctx.slice)

        return await self.writer.call(job)

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
        scratch = ctx.scratch
        rows = with_event_ids(scratch.con, [r for b in batches for r in b])
        try:
            result = scratch.ingest_records(rows, source=f"api:{uuid.uuid4().hex}")
            valid = scratch.con.execute(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events").fetchall()
            bad = scratch.con.execute(
                """SELECT quarantine_id, load_id, source, row_number, line, raw, reason, quarantined_at,
                          CASE WHEN json_valid(raw) THEN replace(json_extract_string(raw, '$.user_id'), chr(0), '') END
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
