"""PostgreSQL as the production store: several service processes write at once.

Validation is the importers' own (`check_records`, shared with the DuckDB backend through
`Storage._ingest_batches`, which also writes the quarantine and `loads` rows); this backend inserts
the checked rows. ``ON CONFLICT (event_id) DO NOTHING`` makes the
insert idempotent across processes: when two processes receive the same event, PostgreSQL's
unique index lets exactly one of them store it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, TypeVar

import msgspec
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from cartlift.errors import StoreError
from cartlift.events import CARTLIFT_COLUMNS, EVENT_COLUMNS, CheckedRecords
from cartlift.events._check import ACCEPTED_SCHEMA
from cartlift.store._eventstore import EventStore
from cartlift.store._impressions import insert_impression_table
from cartlift.store._slice import clear, new_slice
from cartlift.store._storage import GroupLoad, Storage
from cartlift.store._tables import table_ddl
from cartlift.store._url import StoreURL, parse_store_url

__all__ = ["PostgresStorage", "connect"]

T = TypeVar("T")
logger = logging.getLogger("cartlift.store")

_EVENT_COLUMNS: Final = CARTLIFT_COLUMNS
# the NOTIFY channel of key revocations: one per database (services of another schema on it only
# re-read their keys, which is harmless)
_KEYS_CHANNEL: Final = "cartlift_keys"
# the PostgreSQL types of the same columns, from the one data model
_PG_TYPES: Final = {"VARCHAR": "text", "TIMESTAMP": "timestamp", "INTEGER": "int", "DOUBLE": "float8"}
_EVENT_TYPES: Final = tuple(_PG_TYPES[EVENT_COLUMNS[c].split()[0]] for c in _EVENT_COLUMNS)


# the check's typed rows (`CheckedRecords.rows`) hold these columns in this order: `_event_json` sends them as they are
assert ACCEPTED_SCHEMA.names[: len(_EVENT_COLUMNS)] == list(_EVENT_COLUMNS)

_INSERT: Final = f"""WITH inserted AS (
        INSERT INTO events ({", ".join(_EVENT_COLUMNS)}, load_id)
        SELECT {", ".join(f"(r->>{i})::{t}" for i, t in enumerate(_EVENT_TYPES))}, %s::text
        FROM jsonb_array_elements(%s::jsonb) AS r
        ON CONFLICT (event_id) DO NOTHING RETURNING event_id)"""
"""The events insert as a WITH query named ``inserted`` (parameters: the load id, then `_event_json`).

The rows travel as one JSON text that PostgreSQL parses, not as one array parameter per column:
psycopg adapts a list element by element in Python, on the writer thread and under the GIL the
event loop needs (`benchmarks/postgres_insert.py`: a group of 640 events took 21 ms of the
writer's CPU that way and under 5 ms as JSON, less than psycopg's COPY; ``jsonb``, not ``json``,
whose ``->>`` reads the text again for every column and doubled the statement's time).
"""


_JSON_ROWS: Final = 100_000
"""Most rows in one JSON parameter: PostgreSQL holds a jsonb value of at most 256 MB, and a row
takes a few hundred bytes (a posted group is at most ``max_batch_events``; `Storage.ingest_now` is not)."""


def _event_json(rows: pa.Table, typed: Sequence[tuple[Any, ...]] | None = None) -> str:
    """The checked rows as one JSON array of rows (values in `_EVENT_COLUMNS` order), in event-id order.

    ``typed`` are the same rows as Python tuples when the check made them (`CheckedRecords.rows`):
    encoded as they are, since reading the Arrow table back into Python objects cost the writer
    more than the encoding.

    Two processes inserting overlapping ids in different orders wait on each other's index
    entries and PostgreSQL kills one as a deadlock (a 500); in one order the second simply waits
    for the first and finds its rows there.
    """
    if pc.all(pc.is_finite(rows.column("price"))).as_py() is False:  # None: every price missing
        # JSON has no infinity (msgspec writes null): the check refuses these, and none is changed silently
        raise StoreError("A price that is not a finite number reached the PostgreSQL insert.")
    if typed is not None:
        return msgspec.json.encode(sorted(typed, key=itemgetter(0))).decode()
    rows = rows.sort_by("event_id")
    columns = [rows.column(c).to_pylist() for c in _EVENT_COLUMNS]
    return msgspec.json.encode(list(zip(*columns, strict=True))).decode()


def connect(url: str | StoreURL, *, create_tables: bool = True) -> psycopg.Connection[Any]:
    """Connect to the PostgreSQL store at ``url`` and create its tables (in ``?schema=NAME`` if given).

    ``create_tables=False`` for a second connection of a store whose tables exist: the DDL's
    locks (held to the end of its transaction) would otherwise queue behind any lock on any table.
    """
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
    if not create_tables:
        return con
    # creating tables concurrently from several processes can race on the catalog; one lock orders them
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(4242)")
        for ddl in table_ddl(dialect="postgres"):
            con.execute(ddl)
    return con


def _user_of(raw: str) -> str | None:
    """The user id in a quarantined record (erasure finds the person's rejected records by it)."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    user = record.get("user_id") if isinstance(record, dict) else None
    return user.replace("\x00", "") if isinstance(user, str) else None


@dataclass
class _Context:
    con: psycopg.Connection[Any]
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
    supports_key_watch = True

    def __init__(self, url: str | StoreURL, *, max_batch_events: int = 5_000) -> None:
        self.url = parse_store_url(url).url
        super().__init__(max_batch_events=max_batch_events)
        self._impressions: psycopg.Connection[Any] | None = None
        self._impressions_lock = threading.Lock()

    def write_impressions(self, table: pa.Table) -> None:
        """`Storage.write_impressions` with one ``COPY`` on a connection of its own (opened at the
        first call), not the writer's: a flush of tens of thousands of rows took the writer for
        half a second or more, and posted events waited behind it (`benchmarks/service.py`, the
        event load right after the recommendation load: p99 1.1 s)."""
        with self._impressions_lock:
            if self._impressions is None or self._impressions.closed or self._impressions.broken:
                self._impressions = connect(self.url, create_tables=False)  # the writer made them
            insert_impression_table(self._impressions, table)

    def close(self) -> None:
        """`Storage.close`, and the impression log's connection."""
        super().close()
        with self._impressions_lock:
            if self._impressions is not None:
                self._impressions.close()
                self._impressions = None

    def _open(self) -> _Context:
        return _Context(connect(self.url))

    def _close(self, ctx: _Context) -> None:
        ctx.con.close()
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

    def _keys_changed(self, ctx: _Context) -> None:
        # delivered when the revoking transaction commits, to every service listening on the database
        self._rows(ctx, "SELECT pg_notify(?, '')", [_KEYS_CHANNEL])

    def watch_keys(self, changed: Callable[[bool], None]) -> Callable[[], None]:
        """Listen for revocations (PostgreSQL ``LISTEN``/``NOTIFY``) on a connection of its own.

        A thread holds the listening connection and reconnects when it is lost (after
        ``changed(False)``; ``changed(True)`` again once listening, as revocations may have been
        missed in between). Returns the function that stops it.
        """
        stop = threading.Event()
        store = parse_store_url(self.url)
        conninfo = store.conninfo or ""
        # named in pg_stat_activity, so an operator (or a test) can tell which store it listens for
        name = f"cartlift-key-watch:{store.schema or 'public'}"[:63]

        def listen() -> None:
            pause = 0.5
            while not stop.is_set():
                try:
                    with psycopg.connect(
                        conninfo, autocommit=True, connect_timeout=10, application_name=name
                    ) as con:
                        con.execute(f"LISTEN {_KEYS_CHANNEL}")
                        changed(True)
                        pause = 0.5
                        while not stop.is_set():
                            for _ in con.notifies(timeout=1.0):
                                changed(True)
                except psycopg.Error as e:
                    changed(False)
                    logger.warning("Not hearing key revocations (%s); retrying in %.1f s.", e, pause)
                    stop.wait(pause)
                    pause = min(pause * 2, 10.0)

        thread = threading.Thread(target=listen, name="cartlift-key-watch", daemon=True)
        thread.start()

        def stop_watching() -> None:
            stop.set()
            thread.join(5)

        return stop_watching

    def _tables(self, ctx: _Context) -> set[str]:
        rows = self._rows(
            ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {str(r[0]) for r in rows}

    def _insert_events(self, ctx: _Context, rows: pa.Table, load_id: str) -> set[str]:
        rows = rows.sort_by("event_id")  # one order through the chunks too (`_event_json`)
        inserted: set[str] = set()
        with ctx.con.cursor() as cur:
            for start in range(0, rows.num_rows, _JSON_ROWS):
                cur.execute(
                    f"{_INSERT} SELECT event_id FROM inserted",
                    [load_id, _event_json(rows.slice(start, _JSON_ROWS))],
                )
                inserted.update(str(r[0]) for r in cur.fetchall())
        return inserted

    def _write_group(
        self, ctx: _Context, checked: CheckedRecords, quarantined: list[tuple[Any, ...]], load: GroupLoad
    ) -> set[str]:
        """A group without quarantined records in one statement: the insert and its `loads` row.

        The connection commits each statement on its own, so one statement is one transaction and
        one round trip (the generic path takes four: BEGIN, insert, loads row, COMMIT, each
        giving up the GIL and waiting to win it back from the event loop). The `loads` row counts
        what the insert returned, in the same statement (a data-modifying WITH).
        """
        if quarantined or not 0 < checked.accepted.num_rows <= _JSON_ROWS:
            return super()._write_group(ctx, checked, quarantined, load)
        row = load.row(0, 0)  # the counts below are the statement's own
        with ctx.con.cursor() as cur:
            cur.execute(
                f"""{_INSERT}, logged AS (
                        INSERT INTO loads
                        SELECT %s, %s, %s, %s, %s, %s::bigint, n, %s::bigint - n, 0
                        FROM (SELECT count(*) AS n FROM inserted) c)
                    SELECT event_id FROM inserted""",
                [load.load_id, _event_json(checked.accepted, checked.rows), *row[:6], load.rows_read],
            )
            return {str(r[0]) for r in cur.fetchall()}

    def _merge_products(self, ctx: _Context, rows: pa.Table) -> None:
        """Nothing: a PostgreSQL store's catalog comes from product imports, not from posted events
        (as before the shared check; several processes merging attributes would race)."""

    def _insert_quarantine(self, ctx: _Context, rows: list[tuple[Any, ...]]) -> None:
        with ctx.con.cursor() as cur:
            cur.executemany(
                "INSERT INTO quarantine VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(*r, _user_of(r[5])) for r in sorted(rows, key=lambda r: str(r[0]))],  # one order, as events
            )

    def _quarantine_count(self, ctx: _Context, user_id: str) -> int:
        return int(self._rows(ctx, "SELECT count(*) FROM quarantine WHERE user_id = ?", [user_id])[0][0])

    def _delete_quarantine(self, ctx: _Context, user_id: str) -> None:
        self._rows(ctx, "DELETE FROM quarantine WHERE user_id = ?", [user_id])
