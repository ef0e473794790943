"""A running service's store: one typed interface (`Storage`), two backends (embedded DuckDB, PostgreSQL).

The service's routes call the keyword-only coroutines of `Storage`; the SQL lives here and in
`_postgres.py`, written once in the dialect both databases share. Every job runs on the backend's
single writer thread (`Writer`), so a DuckDB file has exactly one writer and a PostgreSQL process
one connection. The writer types a group of posted batches with the events package's shortcut
(`typed_rows`, then `accept_rows` for duplicates), or checks the group with `check_records` (the
importers' SQL, on an in-memory DuckDB connection) when the shortcut is unsure of a record. The typed rows are stored by the backend
in one transaction with their quarantined records, products and `loads` row, in as few calls to
the database as it allows (each call gives up the GIL and waits to win it back from the event
loop), and every caller is answered only after that commit. The same typed rows go to the live sessions
(`Storage.on_stored`), so nothing is parsed twice or read back. Package
functions that take an `EventStore` (decide, experiments) run on the DuckDB store itself
(`DuckDBStorage.with_store`) and, on PostgreSQL, on an in-memory slice of it
(`PostgresStorage.with_slice`, ``_slice.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import operator
import os
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartlift.config import get_settings
from cartlift.errors import StoreError
from cartlift.events import (
    STORED_COLUMNS,
    CheckedRecords,
    accept_rows,
    check_records,
    quarantine_id,
    typed_rows,
)
from cartlift.store._eventstore import EventStore
from cartlift.store._impressions import insert_impression_table
from cartlift.store._tables import TABLES
from cartlift.store._url import StoreURL, parse_store_url
from cartlift.store._writer import Records, Writer

log = logging.getLogger("cartlift.store")

T = TypeVar("T")

__all__ = [
    "LIVE_COLUMNS",
    "DuckDBStorage",
    "IngestOutcome",
    "KeyRecord",
    "Storage",
    "audit_subject",
    "check_group",
    "now_utc",
    "split_outcomes",
    "utc",
]

LIVE_COLUMNS: Final = (
    "event_id",
    "ts",
    "user_id",
    "session_id",
    "event_type",
    "product_id",
    "quantity",
    "price",
    "device",
    "channel",
)
"""The columns of an accepted event that live session state needs."""

_LIVE_OF: Final = operator.itemgetter(*(STORED_COLUMNS.index(c) for c in LIVE_COLUMNS))
"""A typed row's values (`STORED_COLUMNS` order) of `LIVE_COLUMNS`, in their order."""


def _live_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """A typed row's `LIVE_COLUMNS` as a record; a dict display costs a fifth of ``dict(zip(...))``,
    and this runs for every posted event on the writer thread (its keys are tested against `LIVE_COLUMNS`)."""
    event_id, ts, user_id, session_id, event_type, product_id, quantity, price, device, channel = _LIVE_OF(
        row
    )
    return {
        "event_id": event_id,
        "ts": ts,
        "user_id": user_id,
        "session_id": session_id,
        "event_type": event_type,
        "product_id": product_id,
        "quantity": quantity,
        "price": price,
        "device": device,
        "channel": channel,
    }


SERVICE_TABLES: Final = ("api_keys", "audit_log", "decisions", "identities", "webhook_receipts")
"""The tables a DuckDB store gains when a service opens it (PostgreSQL stores have every table)."""


@dataclass
class GroupLoad:
    """The `loads` row of a group, once its counts are known."""

    load_id: str
    source: str
    started: datetime
    rows_read: int

    def row(self, inserted: int, quarantined: int) -> list[Any]:
        """``loads`` columns: id, source, format, started, finished, read, accepted, duplicates, quarantined."""
        duplicates = self.rows_read - quarantined - inserted
        return [
            self.load_id,
            self.source,
            "api",
            self.started,
            now_utc(),
            self.rows_read,
            inserted,
            duplicates,
            quarantined,
        ]


KeyRecord = tuple[str, str, float | None, datetime, str | None, datetime | None, tuple[str, ...]]
"""A stored API key: ``(key_id, scope, rate_limit, created_at, label, expires_at, origins)``."""


def utc(value: datetime | None) -> datetime | None:
    """A naive UTC time of the store as an aware one (JSON says ``+00:00``, as RFC 3339 requires)."""
    return None if value is None else value.replace(tzinfo=UTC)


def audit_subject(user_id: str, secret: str) -> str:
    """How the audit log names an erased user: a keyed hash (HMAC-SHA256) under ``secret``.

    A plain hash of a guessable id (an e-mail, a customer number) is reversed by hashing the
    guesses; with a secret only its holder can check whether a given id was erased.
    """
    return "hmac-sha256:" + hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def now_utc() -> datetime:
    """Naive UTC now (the store's convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class _Checked:
    """A group checked elsewhere, as an event batch in the writer's inbox (`Storage.ingest_checked`)."""

    checked: CheckedRecords


@dataclass
class IngestOutcome:
    """What happened to one posted batch: counts, the rejected events' reasons, the duplicates' ids."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)

    def to_public(self) -> dict[str, Any]:
        """The response body of ``POST /v1/events``."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
            "duplicate_ids": self.duplicate_ids,
        }


def split_outcomes(
    batches: Sequence[Records], checked: CheckedRecords, stored: Collection[str]
) -> list[IngestOutcome]:
    """Share one group's result among the batches merged into it.

    Parameters
    ----------
    batches : sequence of lists of records
        The batches, in the order they were concatenated for the check.
    checked : CheckedRecords
        What `check_records` found (record numbers count through the concatenation).
    stored : collection of str
        The ids of the accepted rows the store did not have yet (the others are duplicates).
    """
    left = set(stored)
    rejected = {row: (reason, event_id) for row, _, reason, event_id in checked.rejected}
    valid = dict(
        zip(
            checked.accepted.column("_row").to_pylist(),
            checked.accepted.column("event_id").to_pylist(),
            strict=True,
        )
    )
    valid.update(checked.repeated)
    outcomes = []
    n = 0
    for batch in batches:
        out = IngestOutcome()
        for i, record in enumerate(batch):
            n += 1
            if n in rejected:
                reason, derived = rejected[n]
                given = record.get("event_id")
                out.rejected += 1
                out.errors.append(
                    {"index": i, "event_id": derived if given is None else given, "reason": reason}
                )
                continue
            event_id = str(valid[n])
            if event_id in left:
                left.discard(event_id)  # a later copy of it is a duplicate
                out.accepted += 1
            else:
                out.duplicates += 1
                out.duplicate_ids.append(event_id)
        outcomes.append(out)
    return outcomes


def check_group(
    batches: Sequence[Records], checker: duckdb.DuckDBPyConnection | None = None
) -> tuple[CheckedRecords, duckdb.DuckDBPyConnection | None]:
    """A group of posted batches checked as one: the shortcut's typed rows when it is sure of every
    record (`typed_rows`, `accept_rows`), else the importers' SQL (`check_records`) on ``checker``,
    an in-memory DuckDB connection made here when none is given. Returns the check and the checker
    (kept by the caller for the next group)."""
    records = [r for batch in batches for r in batch]
    typed = typed_rows(records)
    if typed is not None:
        checked = accept_rows(typed)
        if checked is not None:
            return checked, checker
    if checker is None:
        checker = duckdb.connect(config={"threads": 1})
    return check_records(checker, records), checker


def _live_rows(checked: CheckedRecords, inserted: set[str]) -> dict[str, dict[str, Any]]:
    """Event id -> `LIVE_COLUMNS` of the accepted rows the store inserted (from the typed tuples
    when the shortcut made them: reading the Arrow table back costs more than the rest)."""
    if checked.rows is not None:
        return {r[0]: _live_row(r) for r in checked.rows if r[0] in inserted}
    rows = checked.accepted.select(list(LIVE_COLUMNS)).to_pylist()
    return {r["event_id"]: r for r in rows if r["event_id"] in inserted}


_PERSONAL: Final = tuple((t.name, t.personal) for t in TABLES.values() if t.personal)
"""Every table that holds a person's rows, with the column naming them: what erasure deletes."""


_KEY_COLUMNS: Final = "key_id, scope, rate_limit, created_at, label, expires_at, origins"


def key_of(row: Sequence[Any]) -> KeyRecord:
    """A `KeyRecord` from a row of `_KEY_COLUMNS` (origins are stored comma separated)."""
    key_id, scope, rate, created, label, expires, origins = row[:7]
    allowed = tuple(o for o in str(origins or "").split(",") if o)
    return str(key_id), str(scope), None if rate is None else float(rate), created, label, expires, allowed


def key_row(row: Sequence[Any]) -> dict[str, Any]:
    """A key as `keys list` and ``GET /v1/admin/keys`` show it (a row of `_KEY_COLUMNS`, revoked_at)."""
    key_id, scope, rate, created, label, expires, origins = key_of(row)
    revoked = row[7]
    return {
        "key_id": key_id,
        "scope": scope,
        "label": label,
        "rate_limit": rate,
        "created_at": utc(created),
        "expires_at": utc(expires),
        "revoked_at": utc(revoked),
        "origins": list(origins),
        "active": revoked is None and (expires is None or now_utc() < expires),
    }


class Storage(ABC):
    """The data layer of the service; every coroutine runs its SQL on the single writer thread."""

    kind: ClassVar[str]
    supports_store_jobs: ClassVar[bool] = False
    supports_key_watch: ClassVar[bool] = False
    """True when other processes can revoke keys while a service runs, heard through `watch_keys`."""
    """True when package functions that take an `EventStore` run on the whole store (`with_store`)."""

    def __init__(self, *, max_batch_events: int = 5_000) -> None:
        self.on_stored: Callable[[list[dict[str, Any]]], None] | None = None
        """Called on the writer thread with the rows of each group newly stored, before its callers
        are answered (the live sessions take them in: a client reads its own writes)."""
        self.on_users_changed: Callable[[list[str]], None] | None = None
        """Called on the writer thread after a commit that deleted or moved users' events (erasure,
        identity joins): what keeps per-customer state (the live customer history) must read them again."""
        self._checker: duckdb.DuckDBPyConnection | None = None
        self.write_lock: threading.RLock | None = self._new_write_lock()
        """Held by the writer while it runs anything, and by any other thread of this process while
        it writes to the store through a connection of its own (None: the backend needs no such lock)."""
        self.writer: Writer[Any] = Writer(
            f"cartlift-{self.kind}-writer",
            self._open,
            self._ingest_batches,
            self._close,
            max_events=max_batch_events,
            idle=self._when_idle,
            lock=self.write_lock,
        )

    # -- what each backend provides -------------------------------------------------------------
    def _new_write_lock(self) -> threading.RLock | None:
        """The `write_lock` (PostgreSQL: none; each connection's transactions take row locks there)."""
        return None

    @abstractmethod
    def _open(self) -> Any:
        """Open the context jobs receive (on the writer thread)."""

    @abstractmethod
    def _close(self, ctx: Any) -> None:
        """Close it."""

    def _when_idle(self, ctx: Any) -> None:  # noqa: B027 (a hook: most backends need none)
        """Housekeeping on the writer thread once it has been idle for a second after work."""

    @abstractmethod
    def _insert_events(self, ctx: Any, rows: pa.Table, load_id: str) -> set[str]:
        """Insert the checked rows whose ``event_id`` the store lacks; returns the ids inserted."""

    @abstractmethod
    def _insert_quarantine(self, ctx: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert rejected records ``(quarantine_id, load_id, source, row, line, raw, reason, at)``."""

    @abstractmethod
    def _merge_products(self, ctx: Any, rows: pa.Table) -> None:
        """Add the products the checked rows mention, where the backend keeps its catalog from events."""

    @abstractmethod
    def _rows(self, ctx: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``?`` placeholders) and return its rows (empty for statements)."""

    @abstractmethod
    @contextmanager
    def _transaction(self, ctx: Any) -> Iterator[None]:
        """Everything inside commits together or not at all."""

    @abstractmethod
    def _tables(self, ctx: Any) -> set[str]:
        """Names of the tables the store has."""

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Open the store on the writer thread (raises when it cannot be opened)."""
        self.writer.start()

    @abstractmethod
    def write_impressions(self, table: pa.Table) -> None:
        """Store an Arrow table of `IMPRESSION_COLUMNS` rows; returns once they are committed
        (from any thread but the writer's: the impression log's flusher calls it)."""

    def close(self) -> None:
        """Commit what is queued and close the store."""
        self.writer.stop()
        if self._checker is not None and not self.writer.alive:
            self._checker.close()
            self._checker = None

    async def ping(self) -> bool:
        """True when the store answers."""
        rows = await self.sql("SELECT 1")
        return bool(rows and rows[0][0] == 1)

    # -- SQL of other packages' tables ----------------------------------------------------------
    async def run(self, fn: Callable[[Any], T]) -> T:
        """Await ``fn(ctx)`` run on the writer thread; ``fn`` uses `rows` and `transaction` on ``ctx``."""
        return await self.writer.call(fn)

    async def sql(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement (``?`` placeholders, SQL both backends speak), run on the writer thread."""
        return await self.writer.call(lambda ctx: self._rows(ctx, sql, params))

    def rows(self, ctx: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement on an open context (inside `run` or `run_now`); empty for statements."""
        return self._rows(ctx, sql, params)

    @contextmanager
    def transaction(self, ctx: Any) -> Iterator[None]:
        """Everything inside commits together or not at all (inside `run` or `run_now`)."""
        with self._transaction(ctx):
            yield

    def users_changed(self, users: Sequence[str]) -> None:
        """Tell `on_users_changed` (from a job, after its commit) that these users' events changed."""
        if users and self.on_users_changed is not None:
            try:
                self.on_users_changed(list(users))
            except Exception:  # the change is committed; per-customer state reads the store when asked
                log.exception("telling per-customer state that users changed failed")

    def ingest_now(self, ctx: Any, records: Records) -> IngestOutcome:
        """`ingest` on an open context, without the writer thread (`run_now`: loading a store to serve)."""
        return self._ingest_batches(ctx, [records])[0]

    # -- events ---------------------------------------------------------------------------------
    async def ingest(self, *, records: Records) -> IngestOutcome:
        """Validate and store a batch of events; returns once it is durably committed.

        The writer types the records of a whole group (`typed_rows`). Typing each batch on the
        event loop instead, while the writer committed, tripled the tail on the quiet machine
        (`benchmarks/service.py`: p99 269-293 ms against 85-119 ms, 0.14 of bare against 0.16-0.18):
        the loop, not the writer, is what 64 clients wait on.
        """
        outcome: IngestOutcome = await self.writer.ingest(records)
        return outcome

    def _check(self, batches: list[Records]) -> CheckedRecords:
        checked, self._checker = check_group(batches, self._checker)
        return checked

    async def ingest_checked(self, checked: CheckedRecords) -> list[str]:
        """Store a group checked elsewhere (`check_group`, in the intake front process) once it is
        durable; the ids the store did not have yet (the others were duplicates).

        It goes to the writer as an event batch, not a job: the writer's caches of what only
        event batches change (the catalog, the stored ids) stay valid across it.
        """
        stored: list[str] = await self.writer.ingest(_Checked(checked), size=checked.rows_read)
        return stored

    def _ingest_batches(self, ctx: Any, batches: list[Records | _Checked]) -> list[Any]:
        """Check ``batches`` and store them in one transaction (on the writer thread); one outcome
        per batch. A group checked elsewhere (`ingest_checked`) is stored in a transaction of its own."""
        raw = [b for b in batches if not isinstance(b, _Checked)]
        posted: Iterator[IngestOutcome] = iter([])
        if raw:
            checked = self._check(raw)
            posted = iter(split_outcomes(raw, checked, self.commit_checked(ctx, checked)))
        return [
            list(self.commit_checked(ctx, b.checked)) if isinstance(b, _Checked) else next(posted)
            for b in batches
        ]

    def commit_checked(self, ctx: Any, checked: CheckedRecords) -> dict[str, dict[str, Any]]:
        """Store a checked group in one transaction (on the writer thread, or a `run_now` context).

        Returns event id -> live row of the rows the store did not have yet (the others were
        duplicates); those rows went to `on_stored` before this returns. A process that checked
        the group itself (`check_group`) hands it here, and shares the result with `split_outcomes`.
        """
        load_id = uuid.uuid4().hex
        source = f"api:{load_id}"
        started = now_utc()
        quarantined = []
        for row, raw, reason, _ in checked.rejected:
            safe = raw.replace("\x00", "\\0")  # as the importers keep a NUL: visible, storable
            quarantined.append(
                (quarantine_id(source, row, safe), load_id, source, row, None, safe, reason, started)
            )
        inserted = self._write_group(
            ctx, checked, quarantined, GroupLoad(load_id, source, started, checked.rows_read)
        )
        stored = _live_rows(checked, inserted) if inserted else {}
        if stored and self.on_stored is not None:
            try:
                self.on_stored(list(stored.values()))
            except Exception:  # stored is stored; live state catches up with later events
                log.exception("taking stored events into live sessions failed")
        return stored

    def _write_group(
        self, ctx: Any, checked: CheckedRecords, quarantined: list[tuple[Any, ...]], load: GroupLoad
    ) -> set[str]:
        """Store a checked group, its quarantined records, products and `loads` row in one
        transaction; returns the ids inserted (the others were stored already)."""
        with self._transaction(ctx):
            inserted = (
                self._insert_events(ctx, checked.accepted, load.load_id)
                if checked.accepted.num_rows
                else set()
            )
            if quarantined:
                self._insert_quarantine(ctx, quarantined)
            self._merge_products(ctx, checked.accepted)
            self._rows(
                ctx,
                "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                load.row(len(inserted), len(quarantined)),
            )
        return inserted

    async def event_count(self) -> int:
        """Events stored."""
        rows = await self.sql("SELECT count(*) FROM events")
        return int(rows[0][0])

    async def session_events(self, *, session_id: str) -> list[dict[str, Any]]:
        """A session's stored events in time order (to rebuild live state)."""
        sql = f"SELECT {', '.join(LIVE_COLUMNS)} FROM events WHERE session_id = ? ORDER BY ts, event_id"
        rows = await self.sql(sql, [session_id])
        return [dict(zip(LIVE_COLUMNS, r, strict=True)) for r in rows]

    async def recent_session_events(self, *, sessions: int, within_seconds: int) -> list[dict[str, Any]]:
        """The events of the ``sessions`` most recently active sessions (active within
        ``within_seconds`` of the newest event), to rebuild live state when the service starts."""
        sql = f"""SELECT {", ".join(LIVE_COLUMNS)} FROM events WHERE session_id IN (
                      SELECT session_id FROM events GROUP BY session_id
                      HAVING max(ts) >= (SELECT max(ts) FROM events) - INTERVAL '{int(within_seconds)} seconds'
                      ORDER BY max(ts) DESC LIMIT ?)
                  ORDER BY session_id, ts, event_id"""
        rows = await self.sql(sql, [int(sessions)])
        return [dict(zip(LIVE_COLUMNS, r, strict=True)) for r in rows]

    async def popular_items(self, *, limit: int = 200) -> list[tuple[str, float]]:
        """Products touched by the most distinct users, with that count as their score (the
        fallback before any model is trained, and for users erased since)."""
        sql = (
            "SELECT product_id, count(DISTINCT user_id) AS n FROM events WHERE product_id IS NOT NULL"
            " GROUP BY product_id ORDER BY n DESC, product_id LIMIT ?"
        )
        rows = await self.sql(sql, [int(limit)])
        return [(str(r[0]), float(r[1])) for r in rows]

    # -- keys ---------------------------------------------------------------------------------
    def insert_key(
        self,
        ctx: Any,
        *,
        key_hash: str,
        key_id: str,
        scope: str,
        rate_limit: float | None,
        label: str | None,
        expires_at: datetime | None = None,
        origins: Sequence[str] = (),
    ) -> datetime:
        """Store a key's hash (never the key) on an open context; returns its creation time."""
        created = now_utc()
        self._rows(
            ctx,
            "INSERT INTO api_keys (key_hash, key_id, scope, rate_limit, label, created_at, expires_at, origins)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [key_hash, key_id, scope, rate_limit, label, created, expires_at, ",".join(origins) or None],
        )
        return created

    async def create_key(
        self,
        *,
        key_hash: str,
        key_id: str,
        scope: str,
        rate_limit: float | None = None,
        label: str | None = None,
        expires_at: datetime | None = None,
        origins: Sequence[str] = (),
    ) -> datetime:
        """Store a new key's hash; returns its creation time."""
        return await self.writer.call(
            lambda ctx: self.insert_key(
                ctx,
                key_hash=key_hash,
                key_id=key_id,
                scope=scope,
                rate_limit=rate_limit,
                label=label,
                expires_at=expires_at,
                origins=origins,
            )
        )

    async def find_key(self, *, key_hash: str) -> KeyRecord | None:
        """The key with this hash unless it is revoked (expiry is the caller's check), or None."""
        sql = f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL"
        rows = await self.sql(sql, [key_hash])
        return key_of(rows[0]) if rows else None

    def list_keys_now(self, ctx: Any) -> list[dict[str, Any]]:
        """Every key without its hash (the secret is never stored), newest first."""
        rows = self._rows(ctx, f"SELECT {_KEY_COLUMNS}, revoked_at FROM api_keys ORDER BY created_at DESC")
        return [key_row(r) for r in rows]

    def revoke_key_now(self, ctx: Any, key_id: str) -> int:
        """Revoke the live keys with public id ``key_id``; returns how many.

        Running services hear of it when it commits (`watch_keys`), so the key stops working there
        at once, whichever process revoked it.
        """
        sql = "SELECT count(*) FROM api_keys WHERE key_id = ? AND revoked_at IS NULL"
        with self._transaction(ctx):
            n = int(self._rows(ctx, sql, [key_id])[0][0])
            self._rows(
                ctx,
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                [now_utc(), key_id],
            )
            if n:
                self._keys_changed(ctx)
        return n

    def _keys_changed(self, ctx: Any) -> None:
        """Tell the services on this store that a key was revoked (inside the revoking transaction).

        Nothing to tell on DuckDB: the file has one writer process, and a service that holds it
        revokes keys itself (``DELETE /v1/admin/keys/{id}``) and drops its own cache.
        """
        return None

    def watch_keys(self, changed: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``changed(trusted)`` whenever another process may have revoked a key; returns ``stop``.

        ``changed(True)``: a key may have been revoked, drop what is cached, caching stays safe.
        ``changed(False)``: revocations can no longer be heard (connection lost), so cached keys
        must not be trusted until the next ``changed(True)``. On DuckDB no other process can
        revoke while the service holds the file: nothing to watch, caching is always safe.
        """
        return lambda: None

    async def list_keys(self) -> list[dict[str, Any]]:
        """`list_keys_now` on the writer thread."""
        return await self.writer.call(self.list_keys_now)

    async def revoke_key(self, *, key_id: str) -> int:
        """`revoke_key_now` on the writer thread."""
        return await self.writer.call(lambda ctx: self.revoke_key_now(ctx, key_id))

    async def active_key_ids(self, *, key_ids: Sequence[str]) -> set[str]:
        """Those of ``key_ids`` that name a key not revoked (expiry is the caller's check)."""
        if not key_ids:
            return set()
        marks = ", ".join("?" for _ in key_ids)
        sql = f"SELECT DISTINCT key_id FROM api_keys WHERE key_id IN ({marks}) AND revoked_at IS NULL"
        return {str(r[0]) for r in await self.sql(sql, list(key_ids))}

    def run_now(self, fn: Callable[[Any], Any]) -> Any:
        """Open the store, run ``fn(ctx)`` and close it, without a writer thread (the CLI, service stopped)."""
        ctx = self._open()
        try:
            return fn(ctx)
        finally:
            self._close(ctx)

    # -- erasure --------------------------------------------------------------------------------
    def _erase(self, ctx: Any, user_id: str, actor: str | None, subject: str) -> dict[str, int] | None:
        counts = self._erase_rows(ctx, user_id, actor, subject)
        if counts:
            self.users_changed([user_id])
        return counts

    def _erase_rows(self, ctx: Any, user_id: str, actor: str | None, subject: str) -> dict[str, int] | None:
        tables = self._tables(ctx)
        present = [(t, col) for t, col in _PERSONAL if t in tables]
        with self._transaction(ctx):
            counts = {
                t: int(self._rows(ctx, f"SELECT count(*) FROM {t} WHERE {col} = ?", [user_id])[0][0])
                for t, col in present
            }
            counts["quarantine"] = self._quarantine_count(ctx, user_id)
            if not any(counts.values()):
                return None
            for t, col in present:
                self._rows(ctx, f"DELETE FROM {t} WHERE {col} = ?", [user_id])
            self._delete_quarantine(ctx, user_id)
            self._rows(
                ctx,
                "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)",
                [uuid.uuid4().hex, now_utc(), "erase_user", subject, actor, json.dumps(counts)],
            )
        return counts

    @abstractmethod
    def _quarantine_count(self, ctx: Any, user_id: str) -> int:
        """Quarantined records of the user."""

    @abstractmethod
    def _delete_quarantine(self, ctx: Any, user_id: str) -> None:
        """Delete the user's quarantined records."""

    async def erase_user(
        self, *, user_id: str, actor: str | None, subject: str | None = None
    ) -> dict[str, int] | None:
        """Delete every event, decision, exposure and quarantined record of a user, with an audit record.

        ``subject`` is how the audit record names the user (`audit_subject`, a
        keyed hash); without it the record names nobody. Returns the counts deleted, or None when
        the store holds nothing of the user.
        """
        return await self.writer.call(lambda ctx: self._erase(ctx, user_id, actor, subject or "unlinked"))

    async def erased_subjects(self) -> list[tuple[str, datetime]]:
        """``(subject, ts)`` of every erasure in the audit log."""
        sql = "SELECT subject, ts FROM audit_log WHERE action = 'erase_user'"
        return [(str(s), t) for s, t in await self.sql(sql)]

    async def audit_log(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The latest audit records, newest first."""
        sql = "SELECT audit_id, ts, action, subject, actor, details FROM audit_log ORDER BY ts DESC LIMIT ?"
        rows = await self.sql(sql, [int(limit)])
        return [
            {"audit_id": a, "ts": t, "action": ac, "subject": s, "actor": actor, "details": json.loads(d)}
            for a, t, ac, s, actor, d in rows
        ]

    # -- the dashboard's look-ups (its numbers are `cartlift.serve._overview`'s) -----------------------
    async def decided_actions(self, cart_ids: Sequence[str]) -> dict[str, str]:
        """The action decided for each of these carts (those without a decision are absent)."""
        ids = [str(c) for c in cart_ids]
        if not ids:
            return {}
        sql = (
            "SELECT cart_id, min(action) FROM decisions WHERE cart_id IN ("
            + ", ".join("?" for _ in ids)
            + ") GROUP BY cart_id"
        )
        rows = await self.sql(sql, ids)
        return {str(c): str(a) for c, a in rows}

    # -- package functions that take an EventStore ----------------------------------------------
    async def with_store(self, fn: Any) -> Any:
        """Run ``fn(store)`` with the `EventStore` (experiments); only where ``supports_store_jobs``."""
        raise NotImplementedError


_CHECKPOINT_THRESHOLD = "256MB"
"""The write-ahead log's size at which DuckDB checkpoints during a commit (`DuckDBStorage._open`)."""


class DuckDBStorage(Storage):
    """The embedded store: one DuckDB file, written by this process alone.

    Parameters
    ----------
    path : str or Path
        The DuckDB file (created when missing).
    max_batch_events : int
        Most events committed in one transaction.
    """

    kind = "duckdb"
    supports_store_jobs = True

    def __init__(self, path: str | Path | StoreURL, *, max_batch_events: int = 5_000) -> None:
        self.path = parse_store_url(path).duckdb_path()
        super().__init__(max_batch_events=max_batch_events)
        # product -> (title, category, brand, price) as stored after this writer's last merge
        # (`_merge_products`); valid while only event batches ran since
        self._catalog: dict[str, tuple[Any, ...]] = {}
        self._catalog_merged: dict[str, tuple[Any, ...]] = {}
        self._catalog_jobs = 0
        # every stored event id, as a filter (`StoredIds`) valid while the store holds `_ids_loads`
        # loads rows; checked again whenever another job ran (`_stored_ids`)
        self._ids: StoredIds | None = None
        self._ids_loads = -1
        self._ids_jobs = -1
        self._ids_off = False

    def _new_write_lock(self) -> threading.RLock:
        # a cursor is a second connection to the same database, with transactions of its own:
        # DuckDB refuses the later of two overlapping transactions that change one row ("Conflict
        # on update"), and the service would answer that request 500; so the writer and such a
        # thread (the delivery worker's) take turns (`tests/store/test_write_lock.py`)
        return threading.RLock()

    def _open(self) -> EventStore:
        # the writer's own statements run on one DuckDB thread unless the settings say otherwise:
        # they are small (a group's insert and commit), and spreading them over threads cost
        # each group 1.5-2 ms more CPU (10 to 640 events: 4-5 ms against 6-7), on the cores the
        # event loop shares; package functions get every thread (`with_store`)
        store = EventStore(self.path, threads=self._writer_threads)
        store.create_tables(SERVICE_TABLES)
        # DuckDB checkpoints inside the commit that takes its write-ahead log past the threshold
        # (16 MB by default): under a steady load of posted events that is every few seconds, and
        # every client of that group waits for it (events load, benchmarks/service.py: p99 54-58
        # ms against 72-122 ms). The writer checkpoints when it falls idle instead (`_when_idle`);
        # the threshold only bounds the log while the load never pauses.
        store.con.execute(f"SET checkpoint_threshold = '{_CHECKPOINT_THRESHOLD}'")
        return store

    def _when_idle(self, ctx: EventStore) -> None:
        # folds the write-ahead log into the file while nobody waits for a commit
        ctx.con.execute("CHECKPOINT")

    def _close(self, ctx: EventStore) -> None:
        # a checkpoint folds the write-ahead log into the file, so the next start is quick
        ctx.con.execute("CHECKPOINT")
        ctx.close()

    def _rows(self, ctx: EventStore, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = ctx.con.execute(sql, list(params))
        return cur.fetchall() if cur.description else []

    @contextmanager
    def _transaction(self, ctx: EventStore) -> Iterator[None]:
        ctx.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._rollback(ctx)
            raise
        ctx.con.execute("COMMIT")
        self._committed()

    def _rollback(self, ctx: EventStore) -> None:
        # no transaction may be open: the statement that began it failed
        with contextlib.suppress(duckdb.Error):
            ctx.con.execute("ROLLBACK")
        self._catalog.clear()
        self._catalog_merged.clear()

    def _committed(self) -> None:
        self._catalog.update(self._catalog_merged)
        self._catalog_merged.clear()

    def _write_group(
        self, ctx: EventStore, checked: CheckedRecords, quarantined: list[tuple[Any, ...]], load: GroupLoad
    ) -> set[str]:
        """The generic transaction in as few calls to DuckDB as it can: one for the usual group.

        A DuckDB call gives the GIL up and takes it back many times while it runs, and each time
        waits up to the switch interval while the event loop serves requests (`benchmarks/
        intake_writer.py --busy`); per call, not per row, those waits were most of a group's time.
        So BEGIN goes with the insert and the `loads` row with COMMIT; and
        a group whose ids the filter of stored ids knows to be new, with nothing to quarantine and
        nothing that changes the catalog (the usual one), inserts without RETURNING (it inserts
        every row) in a single call from BEGIN to COMMIT.
        """
        rows = checked.accepted
        ids = rows.column("event_id").to_pylist()
        try:
            where = self._unstored_filter(ctx, ids)
            changes = self._catalog_changes(rows)
            if not where and not quarantined and changes is None:
                inserted = set(ids)
                self._execute_with(
                    ctx,
                    rows,
                    f"BEGIN TRANSACTION; {self._insert_sql(load.load_id, where)}; "
                    f"INSERT INTO loads VALUES ({self._load_values(load, len(inserted), 0)}); COMMIT",
                )
            else:
                inserted = self._insert_events(ctx, rows, load.load_id, where=where, begin=True)
                if quarantined:
                    self._insert_quarantine(ctx, quarantined)
                if changes is not None:
                    self._merge_changes(ctx, changes)
                values = self._load_values(load, len(inserted), len(quarantined))
                ctx.con.execute(f"INSERT INTO loads VALUES ({values}); COMMIT")
        except BaseException:
            self._rollback(ctx)
            raise
        self._committed()
        self._ids_loads += 1  # the filter stays valid: it holds this load's ids
        return inserted

    @staticmethod
    def _load_values(load: GroupLoad, inserted: int, quarantined: int) -> str:
        return ", ".join(_literal(v) for v in load.row(inserted, quarantined))

    @staticmethod
    def _insert_sql(load_id: str, where: str) -> str:
        columns = ", ".join(STORED_COLUMNS)
        return f"INSERT INTO events ({columns}, load_id) SELECT {columns}, {_literal(load_id)} FROM _checked {where}"

    @staticmethod
    def _execute_with(ctx: EventStore, rows: pa.Table, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql``, which reads ``rows`` as ``_checked``; its rows (empty for statements).

        DuckDB finds ``_checked`` among the local variables of the frame that calls ``execute``
        (its replacement scan for Python objects, on by default) rather than by ``register``:
        a register and unregister pair cost the writer about 1 ms of CPU per group, whatever its
        size (`benchmarks/intake_writer.py`, "duckdb calls": 9.4-9.6 against 7.7-7.9 us per event).
        """
        _checked = rows  # read by name by the statement below
        cur = ctx.con.execute(sql)
        return cur.fetchall() if cur.description else []

    def _tables(self, ctx: EventStore) -> set[str]:
        return set(ctx.tables())

    def _unstored_filter(self, ctx: EventStore, ids: list[str]) -> str:
        """The insert's WHERE that skips stored ids; empty when the filter of stored ids is sure
        that none of ``ids`` (the rows' event ids) is stored (`StoredIds`), which adds them."""
        # a DuckDB store has no unique index on event_id (it would slow every bulk load): the
        # batch's ids are looked up in the stored ones, a scan of every stored id, unless the
        # filter is sure; added before the insert: a failed one leaves extra ids, which only cost a scan
        known = self._stored_ids(ctx)
        if known is None or known.add(ids):
            return "WHERE event_id NOT IN (SELECT event_id FROM events WHERE event_id IN (SELECT event_id FROM _checked))"
        return ""

    def _insert_events(
        self, ctx: EventStore, rows: pa.Table, load_id: str, *, where: str | None = None, begin: bool = False
    ) -> set[str]:
        """The insert; ``where`` as `_unstored_filter` gives it (computed when None); with
        ``begin``, the same call opens the transaction (`_write_group`)."""
        if where is None:
            where = self._unstored_filter(ctx, rows.column("event_id").to_pylist())
        sql = f"{'BEGIN TRANSACTION; ' if begin else ''}{self._insert_sql(load_id, where)} RETURNING event_id"
        return {str(r[0]) for r in self._execute_with(ctx, rows, sql)}

    def _stored_ids(self, ctx: EventStore) -> StoredIds | None:
        """The hashes of the stored ids, read again when the store may hold ids they lack; None for a store too big.

        Only this process writes the file, and every write runs on the writer thread: posted groups
        add their ids here, and anything else that stores events (an import, `ingest_now`) records a
        `loads` row with them in the same transaction. So after another job ran, an unchanged
        number of `loads` rows means the filter still holds every stored id.
        """
        if self._ids is not None and self._ids_jobs != self.writer.jobs_done:
            if self._loads(ctx) != self._ids_loads:
                self._ids = None
            self._ids_jobs = self.writer.jobs_done
        if self._ids_off:
            return None
        if self._ids is None:
            stored = int(self._rows(ctx, "SELECT count(*) FROM events")[0][0])
            if stored > _MAX_FILTERED_IDS:
                return None
            known = StoredIds.of(ctx.con.sql("SELECT event_id FROM events").to_arrow_reader(1 << 18))
            self._ids, self._ids_loads, self._ids_jobs = known, self._loads(ctx), self.writer.jobs_done
        return self._ids

    def write_impressions(self, table: pa.Table) -> None:
        """`Storage.write_impressions`, through the writer: a DuckDB file has one writing connection."""
        if not self.writer.alive:  # a job queued now would never run, and this would wait for ever
            raise StoreError("The store is closed: the impressions were not written.")
        self.writer.submit(lambda ctx: insert_impression_table(ctx, table)).result()

    def start(self) -> None:
        """`Storage.start`, then the stored ids are read on the writer, before the first group."""
        super().start()
        self.writer.submit(self._stored_ids)

    def _loads(self, ctx: EventStore) -> int:
        return int(self._rows(ctx, "SELECT count(*) FROM loads")[0][0])

    def run_now(self, fn: Callable[[Any], Any]) -> Any:
        """`Storage.run_now`, without the stored ids' hashes: ``fn`` may store events by other means
        between two `ingest_now` calls, and no job count tells (every group looks its ids up)."""
        self._ids, self._ids_off = None, True
        try:
            return super().run_now(fn)
        finally:
            self._ids, self._ids_off = None, False

    def _insert_quarantine(self, ctx: EventStore, rows: list[tuple[Any, ...]]) -> None:
        # the key holds the load's own id: a new load's rows never meet stored ones
        ctx.con.executemany("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _catalog_changes(self, rows: pa.Table) -> pa.Table | None:
        """The checked rows that may change the catalog, None when none may.

        Planning the merge costs DuckDB a few milliseconds per group, and most events repeat
        what the catalog holds (a view carries the product's current price). This process is
        the only writer of a DuckDB file and every write runs on its writer thread, so the
        products this writer merged keep the values it read back, until another job runs.
        """
        if self._catalog_jobs != self.writer.jobs_done or len(self._catalog) > _CATALOG_CACHE:
            self._catalog.clear()
            self._catalog_jobs = self.writer.jobs_done
        known = self._catalog
        changed = set()
        columns = ("product_id", "title", "category", "brand", "price")
        # each distinct spelling once: a group's events name a few products, mostly alike
        distinct = set(zip(*(rows.column(c).to_pylist() for c in columns), strict=True))
        for product, *values in distinct:
            if product is None or product in changed:
                continue
            held = known.get(product)
            # the merge keeps a stored value where the rows have none (or no positive price)
            if held is None or any(
                v is not None and v != h and (i < 3 or v > 0)
                for i, (v, h) in enumerate(zip(values, held, strict=True))
            ):
                changed.add(product)
        if not changed:
            return None
        return rows.filter(pc.is_in(rows.column("product_id"), pa.array(sorted(changed), pa.string())))

    def _merge_products(self, ctx: EventStore, rows: pa.Table) -> None:
        changes = self._catalog_changes(rows)
        if changes is not None:
            self._merge_changes(ctx, changes)

    def _merge_changes(self, ctx: EventStore, changes: pa.Table) -> None:
        """Merge the rows `_catalog_changes` picked into ``products``."""
        # the importers' rule: latest attributes win, gaps keep stored values
        merged = self._execute_with(
            ctx,
            changes,
            """INSERT INTO products (product_id, title, category, brand, price)
                   SELECT product_id, max_by(title, ts) FILTER (WHERE title IS NOT NULL),
                          max_by(category, ts) FILTER (WHERE category IS NOT NULL),
                          max_by(brand, ts) FILTER (WHERE brand IS NOT NULL),
                          max_by(price, ts) FILTER (WHERE price > 0)
                   FROM _checked WHERE product_id IS NOT NULL GROUP BY product_id
                   ON CONFLICT (product_id) DO UPDATE SET
                       title = coalesce(excluded.title, title),
                       category = coalesce(excluded.category, category),
                       brand = coalesce(excluded.brand, brand),
                       price = coalesce(excluded.price, price)
                   RETURNING product_id, title, category, brand, price""",
        )
        self._catalog_merged.update((str(r[0]), tuple(r[1:])) for r in merged)  # known once committed

    def _quarantine_count(self, ctx: EventStore, user_id: str) -> int:
        return int(
            self._rows(ctx, f"SELECT count(*) FROM quarantine WHERE {_QUARANTINE_USER}", [user_id])[0][0]
        )

    def _delete_quarantine(self, ctx: EventStore, user_id: str) -> None:
        self._rows(ctx, f"DELETE FROM quarantine WHERE {_QUARANTINE_USER}", [user_id])

    async def with_store(self, fn: Any) -> Any:
        """Run ``fn(store)`` on the writer thread with the open `EventStore`, on as many DuckDB
        threads as the store would have outside the service (the writer's own statements use one)."""
        return await self.writer.call(lambda store: self._on_every_thread(store, fn))

    def _on_every_thread(self, store: EventStore, fn: Callable[[EventStore], T]) -> T:
        threads = get_settings().threads or os.cpu_count() or 1
        if threads == self._writer_threads:
            return fn(store)
        store.con.execute(f"SET threads = {int(threads)}")
        try:
            return fn(store)
        finally:
            store.con.execute(f"SET threads = {self._writer_threads}")

    @property
    def _writer_threads(self) -> int:
        return get_settings().threads or 1

    async def cursor(self) -> Any:
        """A second connection to the same database, for readers on other threads (live look-ups)."""
        return await self.with_store(lambda store: store.con.cursor())


def _literal(value: Any) -> str:
    """A value the writer made (ids, counts, times) as a SQL literal: a statement that opens or
    commits a transaction alongside takes no parameters."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"no literal for {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return "'" + str(value).replace("'", "''") + "'"


_CATALOG_CACHE: Final = 200_000
"""Most products whose stored attributes the DuckDB writer remembers."""

# quarantined API records are JSON objects; file lines may not be, and are matched as text
_QUARANTINE_USER: Final = (
    "CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.user_id') = ? ELSE false END"
)


_MAX_FILTERED_IDS: Final = 25_000_000
"""Most stored events the DuckDB writer keeps the id hashes of (8 bytes each); beyond, every
posted group's ids are looked up in the stored ones."""
_RECENT_IDS: Final = 100_000
"""Ids added to `StoredIds` held in a set before they join its sorted array."""


_MERGER: Final = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cartlift-stored-ids")
"""Where `StoredIds` merges its recent hashes into its sorted array (numpy gives the GIL up for it)."""


def _merge_sorted(held: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Two sorted arrays as one."""
    return np.insert(held, np.searchsorted(held, new), new)


class StoredIds:
    """The hashes of every stored event id: ``maybe`` is False only when no id given was added.

    Python's ``hash`` of each id (stable within a process, which is where this lives), in a sorted
    array, and the latest ids in a set. Equal ids have equal hashes, so a stored id is always
    found; two ids sharing a hash only make the writer look the group's ids up in the store, as
    it did for every group before. So it never lets a stored id in twice, and spares that scan of
    every stored id (milliseconds per 100,000 stored events, growing with the store) for the
    groups whose ids are all new.

    Parameters
    ----------
    hashes : numpy.ndarray
        ``hash`` of every stored id (int64).
    """

    def __init__(self, hashes: np.ndarray) -> None:
        self._sorted = np.sort(hashes.astype(np.int64, copy=False))
        self._joining = np.zeros(0, np.int64)
        """Recent hashes, sorted, being merged into ``_sorted`` by ``_merge`` (looked up meanwhile)."""
        self._merge: Future[np.ndarray] | None = None
        self._recent: set[int] = set()

    @classmethod
    def of(cls, batches: Iterable[pa.RecordBatch]) -> StoredIds:
        """From batches of ids (their first column)."""
        parts = [np.fromiter(map(hash, b.column(0).to_pylist()), np.int64, b.num_rows) for b in batches]
        return cls(np.concatenate(parts) if parts else np.zeros(0, np.int64))

    def __len__(self) -> int:
        """Hashes held (an id added twice counts twice)."""
        self._merged()
        return len(self._sorted) + len(self._joining) + len(self._recent)

    def maybe(self, ids: Sequence[str]) -> bool:
        """False when none of ``ids`` was ever added."""
        return self._held([hash(i) for i in ids])

    def _held(self, hashes: list[int]) -> bool:
        recent = self._recent
        if any(h in recent for h in hashes):
            return True
        if not hashes:
            return False
        wanted = np.fromiter(hashes, np.int64, len(hashes))
        for held in (self._sorted, self._joining):
            if len(held):
                at = np.minimum(np.searchsorted(held, wanted), len(held) - 1)
                if (held[at] == wanted).any():
                    return True
        return False

    def add(self, ids: Iterable[str]) -> bool:
        """Add ids; returns `maybe` of them as it was before (one hash per id for both: the writer
        asks and adds for every posted group).

        The set joins the sorted array once it holds `_RECENT_IDS`, on a thread of its own: the
        merge copies the whole array (30 ms at 600,000 stored ids, more as the store grows), and
        on the writer's thread every request of the group waiting on it waited that long
        (`benchmarks/service.py`: the p99 of event posts). Until it is done, lookups search the
        joining hashes too.
        """
        self._merged()
        hashes = [hash(i) for i in ids]
        held = self._held(hashes)
        self._recent.update(hashes)
        if len(self._recent) >= _RECENT_IDS and self._merge is None:
            self._joining = np.sort(np.fromiter(self._recent, np.int64, len(self._recent)))
            self._recent = set()
            self._merge = _MERGER.submit(_merge_sorted, self._sorted, self._joining)
        return held

    def _merged(self) -> None:
        """Take the merge's result once it is done."""
        if self._merge is not None and self._merge.done():
            self._sorted = self._merge.result()
            self._joining = np.zeros(0, np.int64)
            self._merge = None
