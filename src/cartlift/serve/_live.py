"""Live session state: every stored event joins its session; features are kept up to date from then on.

Two homes for the state, one interface:

- `MemorySessions` keeps each open session's `SessionState` (the predict package's incremental
  features) and its events in this process, least recently used first out;
- `RedisSessions` keeps each session's events in Redis (a sorted set per session, scored by
  time), so every worker of a multi-process service sees the same sessions; the state is rebuilt
  from them when asked (a session holds tens of events, replayed in microseconds each).

Both give exactly the features the batch SQL gives, because both feed `SessionState` the
session's events in (ts, event_id) order.

The look-ups outside the session (catalog medians, product history, the customer's earlier
events) go through the predict package's `FeatureContext`: on a DuckDB store a cursor of the
store, on PostgreSQL `PostgresFeatureContext`, which runs the same SQL on PostgreSQL and
computes the category medians (DuckDB's ``median``) in DuckDB from the catalog rows, so a
returning customer's cart scores the same on both stores.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb
import psycopg
import pyarrow as pa

from cartlift.errors import DataError, StoreError
from cartlift.predict import FeatureContext, SessionState
from cartlift.predict._context import medians_sql
from cartlift.store import DuckDBStorage, PostgresStorage, Storage, connect

__all__ = [
    "LiveSessions",
    "MemorySessions",
    "PostgresFeatureContext",
    "RedisSessions",
    "feature_context",
    "open_sessions",
]

T = TypeVar("T")
Event = dict[str, Any]


def _order(event: Mapping[str, Any]) -> tuple[datetime, str]:
    """Where an event sorts in its session: (time as naive UTC, event id), as the store orders them.

    Stored events carry naive UTC datetimes, compared as they are: spelling each time as ISO text
    to compare (the same order for naive times) made `MemorySessions.record` cost the writer about
    four times as much (benchmarks/intake_writer.py). A time given as text (events replayed from
    JSON) is read as the instant it names.
    """
    ts = event["ts"]
    if not isinstance(ts, datetime):
        ts = datetime.fromisoformat(str(ts))
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts, str(event.get("event_id") or "")


def _by_session(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Event]]:
    """The events of each session, in the order given (each session's state sorts only when it
    must: events of a session mostly arrive in time order)."""
    groups: dict[str, list[Event]] = {}
    for e in events:
        groups.setdefault(str(e["session_id"]), []).append(e)  # type: ignore[arg-type]
    return groups


class LiveSessions(ABC):
    """Where open sessions' states live.

    Parameters
    ----------
    context : FeatureContext
        Catalog, product and customer history the states look up (an empty one without a store).
    """

    def __init__(self, context: FeatureContext) -> None:
        self.context = context
        # the context's connection and a scorer's row buffer serve one thread at a time
        self.lock = threading.RLock()

    def _replay(self, events: Iterable[Mapping[str, Any]]) -> SessionState:
        state = SessionState(self.context)
        for e in events:
            state.update(e)
        return state

    @abstractmethod
    def record(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Take newly stored events into their sessions."""

    @abstractmethod
    def _state(self, session_id: str) -> SessionState | None:
        """The session's state now, or None when the session is unknown (call with the lock held)."""

    @abstractmethod
    def recent(self, limit: int) -> list[str]:
        """Session ids, most recently active first."""

    @abstractmethod
    def forget_user(self, user_id: str) -> int:
        """Drop every session of a user (erasure); returns how many."""

    @abstractmethod
    def __len__(self) -> int:
        """Sessions held."""

    def evaluate(self, session_id: str, fn: Callable[[SessionState], T]) -> T | None:
        """``fn(state)`` for the session, with the lock held; None when the session is unknown."""
        with self.lock:
            state = self._state(session_id)
            return None if state is None else fn(state)

    def open_carts(self, fn: Callable[[SessionState], T], *, limit: int = 20, scan: int = 500) -> list[T]:
        """``fn(state)`` of the most recently active sessions whose cart holds items."""
        out: list[T] = []
        for sid in self.recent(scan):
            with self.lock:
                state = self._state(sid)
                if state is not None and state.cart_open:
                    out.append(fn(state))
            if len(out) >= limit:
                break
        return out

    def close(self) -> None:
        """Release connections (the context's, when it holds one)."""
        if isinstance(self.context, PostgresFeatureContext):
            self.context.close()


class _Session:
    __slots__ = ("events", "last", "seen", "state", "user_id")

    def __init__(self, user_id: str) -> None:
        self.events: list[Event] = []
        self.last: tuple[datetime, str] | None = None
        """`_order` of the latest event: a new event compares with it, not with a recomputed key."""
        self.state: SessionState | None = None
        self.user_id = user_id
        self.seen = time.monotonic()


class MemorySessions(LiveSessions):
    """Session states in this process (one worker).

    Parameters
    ----------
    context : FeatureContext
        As in `LiveSessions`.
    capacity : int
        Most sessions kept; the least recently active go first.
    ttl_seconds : float
        Sessions idle for longer are dropped.
    """

    def __init__(
        self, context: FeatureContext, *, capacity: int = 100_000, ttl_seconds: float = 7_200
    ) -> None:
        super().__init__(context)
        self.capacity = capacity
        self.ttl = ttl_seconds
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def record(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Add events to their sessions; a session whose state was read is updated incrementally.

        The writer calls this with every committed group, so it stays cheap: events are appended
        (taken over, not copied); a new session's state (whose first event looks up the customer's
        history) is built when it is first read, and updated event by event after that; an event
        older than the session's latest sorts the session once and rebuilds its state when read.
        """
        with self.lock:
            now = time.monotonic()
            for sid, evs in _by_session(events).items():
                session = self._sessions.get(sid)
                if session is None:
                    session = self._sessions[sid] = _Session(str(evs[0]["user_id"]))
                self._sessions.move_to_end(sid)
                session.seen = now
                unsorted = False
                for e in evs:
                    key = _order(e)
                    session.events.append(e)
                    if session.last is not None and key < session.last:
                        unsorted = True
                    else:
                        session.last = key
                        if session.state is not None and not unsorted:
                            session.state.update(e)
                if unsorted:
                    session.events.sort(key=_order)
                    session.state = None  # rebuilt in order when next asked
            self._evict(now)

    def _evict(self, now: float) -> None:
        while len(self._sessions) > self.capacity:
            self._sessions.popitem(last=False)
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.seen <= self.ttl:
                break
            self._sessions.popitem(last=False)

    def _state(self, session_id: str) -> SessionState | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.state is None:
            session.state = self._replay(session.events)
        return session.state

    def recent(self, limit: int) -> list[str]:
        with self.lock:
            out = []
            for sid in reversed(self._sessions):
                out.append(sid)
                if len(out) >= limit:
                    break
            return out

    def forget_user(self, user_id: str) -> int:
        with self.lock:
            gone = [sid for sid, s in self._sessions.items() if s.user_id == user_id]
            for sid in gone:
                del self._sessions[sid]
            return len(gone)


class RedisSessions(LiveSessions):
    """Session events in Redis, shared by every worker.

    Parameters
    ----------
    context : FeatureContext
        As in `LiveSessions`.
    url : str
        ``redis://host:port/db``.
    prefix : str
        Prefix of every key written (tests use a unique one).
    ttl_seconds : int
        Sessions idle for longer expire.
    """

    def __init__(
        self, context: FeatureContext, url: str, *, prefix: str = "cartlift", ttl_seconds: int = 7_200
    ) -> None:
        super().__init__(context)
        import redis

        self.ttl = int(ttl_seconds)
        self.prefix = prefix
        self.client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            self.client.ping()
        except redis.RedisError as e:
            raise DataError(f"Cannot reach Redis for live sessions: {e}. Check --redis.") from e

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def record(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Add the events to their sessions' sorted sets (one round trip for the whole batch)."""
        groups = _by_session(events)
        if not groups:
            return
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for sid, evs in groups.items():
            key = self._key("session", sid)
            members = {}
            for e in evs:
                ts = e["ts"]
                score = (
                    ts.timestamp()
                    if isinstance(ts, datetime)
                    else datetime.fromisoformat(str(ts)).timestamp()
                )
                # event_id first: equal times then sort by id, as the store orders them
                doc = {"event_id": e.get("event_id"), **{k: v for k, v in e.items() if k != "event_id"}}
                members[json.dumps(doc, default=_iso, sort_keys=False)] = score
            pipe.zadd(key, members)
            pipe.expire(key, self.ttl)
            pipe.zadd(self._key("sessions"), {sid: now})
            user_key = self._key("user", str(evs[0]["user_id"]))
            pipe.sadd(user_key, sid)
            pipe.expire(user_key, self.ttl)
        pipe.zremrangebyscore(self._key("sessions"), 0, now - self.ttl)
        pipe.execute()

    def _state(self, session_id: str) -> SessionState | None:
        raw = self.client.zrange(self._key("session", session_id), 0, -1)
        if not raw:
            return None
        return self._replay(json.loads(m) for m in raw)

    def recent(self, limit: int) -> list[str]:
        ids = self.client.zrevrange(self._key("sessions"), 0, max(0, limit - 1))
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def forget_user(self, user_id: str) -> int:
        user_key = self._key("user", user_id)
        sids = [s.decode() if isinstance(s, bytes) else str(s) for s in self.client.smembers(user_key)]
        pipe = self.client.pipeline(transaction=True)
        for sid in sids:
            pipe.delete(self._key("session", sid))
            pipe.zrem(self._key("sessions"), sid)
        pipe.delete(user_key)
        pipe.execute()
        return len(sids)

    def __len__(self) -> int:
        return int(self.client.zcard(self._key("sessions")))

    def close(self) -> None:
        """Close the Redis connection pool."""
        self.client.close()
        super().close()


class PostgresFeatureContext(FeatureContext):
    """`FeatureContext` reading a PostgreSQL store, on a connection of its own.

    The predict package's snapshot and customer queries run as they are on PostgreSQL; the
    category medians use DuckDB's ``median`` (`medians_sql`), so they are computed in an in-memory
    DuckDB from the catalog's rows (once per context, as the predict package reads them). Calls
    come one at a time (the live state's lock); a dropped connection is reopened once.

    Parameters
    ----------
    url : str
        The store's ``postgresql://`` URL (with ``?schema=`` when it has one).
    """

    def __init__(self, url: str) -> None:
        super().__init__(None)
        self.url = url
        self._pg: Any = None

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            if self._pg is None or self._pg.closed:
                self._pg = connect(self.url)
            try:
                with self._pg.cursor() as cur:
                    cur.execute(sql.replace("?", "%s"), list(params))
                    return list(cur.fetchall())
            except psycopg.OperationalError as e:
                self._pg.close()
                if attempt == 2:
                    raise StoreError(f"The PostgreSQL store stopped answering live look-ups: {e}") from e
        raise AssertionError("unreachable")

    def _median_rows(self) -> list[tuple[Any, ...]]:
        rows = self._fetch("SELECT product_id, category, price FROM products")
        products = pa.table(
            {
                "product_id": pa.array([r[0] for r in rows], pa.string()),
                "category": pa.array([r[1] for r in rows], pa.string()),
                "price": pa.array([r[2] for r in rows], pa.float64()),
            }
        )
        with duckdb.connect() as con:
            con.register("products", products)
            return list(con.execute(medians_sql()).fetchall())

    def close(self) -> None:
        """Close the connection."""
        if self._pg is not None:
            self._pg.close()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def feature_context(storage: Storage) -> FeatureContext:
    """What the live cart features look up in ``storage`` (catalog medians, product and customer history).

    DuckDB: a cursor of the store (a second connection, used by the live state's thread);
    PostgreSQL: `PostgresFeatureContext` on a connection of its own.
    """
    if isinstance(storage, DuckDBStorage):
        return FeatureContext(await storage.cursor())
    if isinstance(storage, PostgresStorage):
        return PostgresFeatureContext(storage.url)
    return FeatureContext()


def open_sessions(
    context: FeatureContext, *, redis_url: str | None, prefix: str, capacity: int, ttl_seconds: int
) -> LiveSessions:
    """Redis-backed sessions when a URL is given, else in-process ones."""
    if redis_url:
        return RedisSessions(context, redis_url, prefix=prefix, ttl_seconds=ttl_seconds)
    return MemorySessions(context, capacity=capacity, ttl_seconds=ttl_seconds)
