"""The service's data layer: one interface, two backends (embedded DuckDB, PostgreSQL).

Routes call the keyword-only coroutines of `Storage`; the SQL lives here and in `_postgres.py`,
written once in the dialect both databases share. Every job runs on the backend's single writer
thread (`Writer`), so a DuckDB file has exactly one writer and a PostgreSQL process one connection.
Events are validated by the events package with the importers' rules (`EventStore.ingest_records`)
and acknowledged only after their transaction committed. Package functions that take an
`EventStore` (decide, experiments) run on the DuckDB store itself (`DuckDBStorage.with_store`) and,
on PostgreSQL, on an in-memory slice of it (`PostgresStorage.with_slice`, ``_slice.py``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final

from cartlift.analytics import DEFAULT_STEPS, funnel, store_metrics
from cartlift.events import EventStore
from cartlift.predict import FeatureContext
from cartlift.serve._keys import ApiKey, new_key
from cartlift.serve._writer import Records, Writer

__all__ = [
    "LIVE_COLUMNS",
    "DuckDBStorage",
    "IngestOutcome",
    "Storage",
    "create_key_in_store",
    "open_storage",
    "split_outcomes",
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

SERVICE_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS api_keys (
        key_hash VARCHAR PRIMARY KEY, key_id VARCHAR NOT NULL, scope VARCHAR NOT NULL,
        rate_limit DOUBLE, label VARCHAR, created_at TIMESTAMP NOT NULL, revoked_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        audit_id VARCHAR PRIMARY KEY, ts TIMESTAMP NOT NULL, action VARCHAR NOT NULL,
        subject VARCHAR NOT NULL, actor VARCHAR, details VARCHAR NOT NULL)""",
    # the act package's decision log (its ``DECISION_COLUMNS``): the same table whoever writes it
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_id VARCHAR PRIMARY KEY, ts TIMESTAMP NOT NULL, user_id VARCHAR NOT NULL, cart_id VARCHAR NOT NULL,
        policy VARCHAR NOT NULL, action VARCHAR NOT NULL, channel VARCHAR, propensity DOUBLE NOT NULL,
        expected_profit DOUBLE, cart_value DOUBLE, margin DOUBLE, discount_value DOUBLE, cost DOUBLE,
        coupon_code VARCHAR, coupon_expires_at TIMESTAMP, window_hours DOUBLE NOT NULL, reason VARCHAR,
        context VARCHAR, run_id VARCHAR)""",
)


def now_utc() -> datetime:
    """Naive UTC now (the store's convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class IngestOutcome:
    """What happened to one posted batch: counts, the rejected events' reasons, the accepted rows."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

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
    batches: Sequence[Records], rejected: Mapping[int, str], accepted: Sequence[Mapping[str, Any]]
) -> list[IngestOutcome]:
    """Share one load's result among the batches merged into it.

    Parameters
    ----------
    batches : sequence of lists of records
        The batches, in the order they were concatenated for the load.
    rejected : mapping
        1-based record number in the concatenation -> quarantine reason.
    accepted : sequence of mappings
        The rows the load stored (with their ``event_id``).

    Notes
    -----
    The importers keep the first valid occurrence of an event id within a load; every later
    valid record with that id, and every record whose id was already stored, is a duplicate.
    """
    rows = {str(r["event_id"]): dict(r) for r in accepted}
    outcomes = []
    n = 0
    for batch in batches:
        out = IngestOutcome()
        for i, record in enumerate(batch):
            n += 1
            event_id = record.get("event_id")
            if n in rejected:
                out.rejected += 1
                out.errors.append({"index": i, "event_id": event_id, "reason": rejected[n]})
            elif event_id is not None and str(event_id) in rows:
                out.accepted += 1
                out.events.append(rows.pop(str(event_id)))
            else:
                out.duplicates += 1
                out.duplicate_ids.append(str(event_id))
        outcomes.append(out)
    return outcomes


_PERSONAL: Final = (
    ("events", "user_id"),
    ("decisions", "user_id"),
    ("exposures", "unit_id"),
    ("consents", "user_id"),
)
"""Every table that holds a person's rows, with the column naming them: what erasure deletes."""


def _subject(user_id: str) -> str:
    """How the audit log names an erased user: a hash, so the log does not keep the id it erased."""
    return "sha256:" + hashlib.sha256(user_id.encode()).hexdigest()


class Storage(ABC):
    """The data layer of the service; every coroutine runs its SQL on the single writer thread."""

    kind: ClassVar[str]
    supports_store_jobs: ClassVar[bool] = False
    """True when package functions that take an `EventStore` run on the whole store (`with_store`)."""

    def __init__(self, *, max_batch_events: int = 5_000) -> None:
        self.writer: Writer[Any] = Writer(
            f"cartlift-{self.kind}-writer",
            self._open,
            self._ingest_batches,
            self._close,
            max_events=max_batch_events,
        )

    # -- what each backend provides -------------------------------------------------------------
    @abstractmethod
    def _open(self) -> Any:
        """Open the context jobs receive (on the writer thread)."""

    @abstractmethod
    def _close(self, ctx: Any) -> None:
        """Close it."""

    @abstractmethod
    def _ingest_batches(self, ctx: Any, batches: list[Records]) -> list[IngestOutcome]:
        """Validate and store ``batches`` in one transaction; one outcome per batch."""

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

    def close(self) -> None:
        """Commit what is queued and close the store."""
        self.writer.stop()

    async def ping(self) -> bool:
        """True when the store answers."""
        rows = await self.writer.call(lambda ctx: self._rows(ctx, "SELECT 1"))
        return bool(rows and rows[0][0] == 1)

    # -- events ---------------------------------------------------------------------------------
    async def ingest(self, *, records: Records) -> IngestOutcome:
        """Validate and store a batch of events; returns once it is durably committed."""
        outcome: IngestOutcome = await self.writer.ingest(records)
        return outcome

    async def event_count(self) -> int:
        """Events stored."""
        rows = await self.writer.call(lambda ctx: self._rows(ctx, "SELECT count(*) FROM events"))
        return int(rows[0][0])

    async def session_events(self, *, session_id: str) -> list[dict[str, Any]]:
        """A session's stored events in time order (to rebuild live state)."""
        sql = f"SELECT {', '.join(LIVE_COLUMNS)} FROM events WHERE session_id = ? ORDER BY ts, event_id"
        rows = await self.writer.call(lambda ctx: self._rows(ctx, sql, [session_id]))
        return [dict(zip(LIVE_COLUMNS, r, strict=True)) for r in rows]

    async def popular_items(self, *, limit: int = 200) -> list[str]:
        """Products touched by the most distinct users (the fallback before any model is trained)."""
        sql = (
            "SELECT product_id FROM events WHERE product_id IS NOT NULL GROUP BY product_id"
            " ORDER BY count(DISTINCT user_id) DESC, product_id LIMIT ?"
        )
        rows = await self.writer.call(lambda ctx: self._rows(ctx, sql, [int(limit)]))
        return [str(r[0]) for r in rows]

    # -- keys -----------------------------------------------------------------------------------
    def _insert_key(
        self, ctx: Any, scope: str, rate_limit: float | None, label: str | None
    ) -> tuple[str, ApiKey]:
        key, key_id, key_hash = new_key()
        created = now_utc()
        self._rows(
            ctx,
            "INSERT INTO api_keys (key_hash, key_id, scope, rate_limit, label, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [key_hash, key_id, scope, rate_limit, label, created],
        )
        return key, ApiKey(key_id, scope, rate_limit, created, label)

    def create_key_now(self, ctx: Any, *, scope: str, rate_limit: float | None, label: str | None) -> str:
        """Create a key on an open context (used by the CLI with the service stopped)."""
        return self._insert_key(ctx, scope, rate_limit, label)[0]

    async def create_key(
        self, *, scope: str, rate_limit: float | None = None, label: str | None = None
    ) -> tuple[str, ApiKey]:
        """A new key of ``scope``; the secret is returned once and only its hash is stored."""
        return await self.writer.call(lambda ctx: self._insert_key(ctx, scope, rate_limit, label))

    async def find_key(self, *, key_hash: str) -> ApiKey | None:
        """The live (not revoked) key with this hash, or None."""
        sql = "SELECT key_id, scope, rate_limit, created_at, label FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL"
        rows = await self.writer.call(lambda ctx: self._rows(ctx, sql, [key_hash]))
        if not rows:
            return None
        key_id, scope, rate, created, label = rows[0]
        return ApiKey(str(key_id), str(scope), None if rate is None else float(rate), created, label)

    # -- erasure --------------------------------------------------------------------------------
    def _erase(self, ctx: Any, user_id: str, actor: str | None) -> dict[str, int] | None:
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
                [uuid.uuid4().hex, now_utc(), "erase_user", _subject(user_id), actor, json.dumps(counts)],
            )
        return counts

    @abstractmethod
    def _quarantine_count(self, ctx: Any, user_id: str) -> int:
        """Quarantined records of the user."""

    @abstractmethod
    def _delete_quarantine(self, ctx: Any, user_id: str) -> None:
        """Delete the user's quarantined records."""

    async def erase_user(self, *, user_id: str, actor: str | None) -> dict[str, int] | None:
        """Delete every event, decision, exposure and quarantined record of a user, with an audit record.

        Returns the counts deleted, or None when the store holds nothing of the user.
        """
        return await self.writer.call(lambda ctx: self._erase(ctx, user_id, actor))

    async def audit_log(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The latest audit records, newest first."""
        sql = "SELECT audit_id, ts, action, subject, actor, details FROM audit_log ORDER BY ts DESC LIMIT ?"
        rows = await self.writer.call(lambda ctx: self._rows(ctx, sql, [int(limit)]))
        return [
            {"audit_id": a, "ts": t, "action": ac, "subject": s, "actor": actor, "details": json.loads(d)}
            for a, t, ac, s, actor, d in rows
        ]

    # -- the dashboard's numbers ----------------------------------------------------------------
    def _funnel(self, ctx: Any) -> list[dict[str, Any]]:
        """Sessions reaching each step in any order (the CLI's ordered funnel needs the DuckDB store)."""
        row = self._rows(
            ctx,
            "SELECT "
            + ", ".join(
                f"count(DISTINCT session_id) FILTER (WHERE event_type = '{t}')" for t in DEFAULT_STEPS
            )
            + " FROM events",
        )[0]
        return [
            {"step": t, "sessions": int(n), "ordered": False} for t, n in zip(DEFAULT_STEPS, row, strict=True)
        ]

    def _overview(self, ctx: Any) -> dict[str, Any]:
        # carts, abandonment and money by the analytics package's one definition (as `cartlift summary`)
        metrics = store_metrics(lambda sql: self._rows(ctx, sql))
        events, sessions = self._rows(ctx, "SELECT count(*), count(DISTINCT session_id) FROM events")[0]
        decisions = self._rows(
            ctx,
            """SELECT action, count(*), avg(propensity),
                      count(*) FILTER (WHERE EXISTS (SELECT 1 FROM events e WHERE e.session_id = d.cart_id
                                                     AND e.event_type = 'purchase' AND e.ts >= d.ts))
               FROM decisions d GROUP BY action ORDER BY action""",
        )
        return {
            "events": int(events),
            "funnel": self._funnel(ctx),
            "sessions": int(sessions),
            "abandonment": {
                "carts": metrics.carts,
                "abandoned": metrics.abandoned_carts,
                "rate": metrics.abandonment_rate,
                "abandoned_value": metrics.abandoned_value,
            },
            "store": metrics.to_dict(),
            "currency": metrics.currency,
            "messages": self._messages(ctx),
            "decisions": [
                {"action": str(a), "count": int(n), "mean_propensity": float(p), "converted": int(c)}
                for a, n, p, c in decisions
            ],
        }

    def _messages(self, ctx: Any) -> dict[str, int] | None:
        """The outbox's counts (due, sent, failed, deferred), or None when the store has no outbox yet."""
        exists = self._rows(
            ctx, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'messages'"
        )
        if not exists[0][0]:
            return None
        due, sent, failed, deferred = self._rows(
            ctx,
            """SELECT count(*) FILTER (WHERE status = 'scheduled' AND due_at <= CURRENT_TIMESTAMP),
                      count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'dead'),
                      count(*) FILTER (WHERE status = 'scheduled' AND deferrals > 0)
               FROM messages""",
        )[0]
        return {"due": int(due), "sent": int(sent), "failed": int(failed), "deferred": int(deferred)}

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
        rows = await self.writer.call(lambda ctx: self._rows(ctx, sql, ids))
        return {str(c): str(a) for c, a in rows}

    async def overview(self) -> dict[str, Any]:
        """Funnel (sessions reaching each step), carts, abandonment, orders and revenue, decisions and outcomes.

        Carts and money follow `cartlift.analytics.store_metrics` (the numbers of ``cartlift
        summary``); on the DuckDB store the funnel is the CLI's default funnel; a decision converted when its cart's session has a purchase at or after it (the act
        package's ``decision_outcomes`` view has the full definition, with windows and coupons).
        """
        return await self.writer.call(self._overview)

    # -- package functions that take an EventStore ----------------------------------------------
    async def with_store(self, fn: Any) -> Any:
        """Run ``fn(store)`` with the `EventStore` (experiments); only where ``supports_store_jobs``."""
        raise NotImplementedError

    async def feature_context(self) -> FeatureContext:
        """What the live cart features look up in this store (catalog medians, product and customer history)."""
        return FeatureContext()


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

    def __init__(self, path: str | Path, *, max_batch_events: int = 5_000) -> None:
        self.path = Path(path)
        super().__init__(max_batch_events=max_batch_events)

    def _open(self) -> EventStore:
        store = EventStore(self.path)
        create_decisions: Callable[[Any], None] | None
        try:  # the act package owns the decision log (and its outcomes view) where it is installed
            from cartlift.act import create_decision_tables as create_decisions
        except ImportError:
            create_decisions = None
        for ddl in SERVICE_TABLES:
            if create_decisions is None or "decisions" not in ddl:
                store.con.execute(ddl)
        if create_decisions is not None:
            create_decisions(store)
        return store

    def _close(self, ctx: EventStore) -> None:
        # a checkpoint folds the write-ahead log into the file, so the next start is quick
        ctx.con.execute("CHECKPOINT")
        ctx.close()

    def _rows(self, ctx: EventStore, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = ctx.con.execute(sql, list(params))
        return cur.fetchall() if cur.description else []

    def _funnel(self, ctx: EventStore) -> list[dict[str, Any]]:
        # the CLI's default funnel, counted the CLI's way (ordered steps within the session)
        if not int(ctx.con.execute("SELECT count(*) FROM events").fetchall()[0][0]):
            return []
        result = funnel(ctx)
        return [{"step": s.name, "sessions": int(s.count), "ordered": True} for s in result.steps]

    @contextmanager
    def _transaction(self, ctx: EventStore) -> Iterator[None]:
        ctx.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            ctx.con.execute("ROLLBACK")
            raise
        ctx.con.execute("COMMIT")

    def _tables(self, ctx: EventStore) -> set[str]:
        return set(ctx.tables())

    def _ingest_batches(self, ctx: EventStore, batches: list[Records]) -> list[IngestOutcome]:
        rows = [r for b in batches for r in b]
        result = ctx.ingest_records(rows, source=f"api:{uuid.uuid4().hex}")
        rejected = {
            int(n): str(reason)
            for n, reason in self._rows(
                ctx, "SELECT row_number, reason FROM quarantine WHERE load_id = ?", [result.load_id]
            )
        }
        stored = self._rows(
            ctx, f"SELECT {', '.join(LIVE_COLUMNS)} FROM events WHERE load_id = ?", [result.load_id]
        )
        return split_outcomes(batches, rejected, [dict(zip(LIVE_COLUMNS, r, strict=True)) for r in stored])

    def _quarantine_count(self, ctx: EventStore, user_id: str) -> int:
        return int(
            self._rows(ctx, f"SELECT count(*) FROM quarantine WHERE {_QUARANTINE_USER}", [user_id])[0][0]
        )

    def _delete_quarantine(self, ctx: EventStore, user_id: str) -> None:
        self._rows(ctx, f"DELETE FROM quarantine WHERE {_QUARANTINE_USER}", [user_id])

    async def with_store(self, fn: Any) -> Any:
        """Run ``fn(store)`` on the writer thread with the open `EventStore`."""
        return await self.writer.call(fn)

    async def feature_context(self) -> FeatureContext:
        """Look-ups on a cursor: a second connection to the same database, used by the live state's thread."""
        cursor = await self.with_store(lambda store: store.con.cursor())
        return FeatureContext(cursor)


# quarantined API records are JSON objects; file lines may not be, and are matched as text
_QUARANTINE_USER: Final = (
    "CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.user_id') = ? ELSE false END"
)


def open_storage(db: str, *, max_batch_events: int = 5_000) -> Storage:
    """The backend for ``db``: a ``postgresql://`` URL or a DuckDB file path (not started yet)."""
    if db.startswith(("postgresql://", "postgres://")):
        from cartlift.serve._postgres import PostgresStorage

        return PostgresStorage(db, max_batch_events=max_batch_events)
    return DuckDBStorage(db, max_batch_events=max_batch_events)


def create_key_in_store(
    db: str, *, scope: str, rate_limit: float | None = None, label: str | None = None
) -> tuple[str, str]:
    """Create an API key directly in the store (no service running): ``(key, key_id)``.

    A DuckDB file in use by a running service is locked; create keys there with
    ``POST /v1/admin/keys`` instead.
    """
    storage = open_storage(db)
    ctx = storage._open()
    try:
        key, record = storage._insert_key(ctx, scope, rate_limit, label)
    finally:
        storage._close(ctx)
    return key, record.key_id
