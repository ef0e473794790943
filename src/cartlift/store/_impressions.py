"""The recommendation impression log: what lists the service showed, written off the request path.

A request only appends one tuple to a buffer (under a lock: well under a microsecond); a
flusher thread hands the buffer to the store's single writer about once a second
(`FLUSH_SECONDS`), or sooner when it holds `FLUSH_ROWS` lists, as one job that expands each list
into its rows (`Shown.rows`) and inserts them at once (DuckDB: one Arrow batch; PostgreSQL: one
``COPY``). So the recommendation endpoint never waits for the store, and the writer commits one
insert per second instead of one per answer. Lists shown in the last second before a crash are
lost: the log measures, it does not bill.

The rows are ``rec_impressions`` (`cartlift.store.IMPRESSION_COLUMNS`): one per item shown, with the
list's id, time, person or session, context, position, source and model version; the act package's
attribution links purchases of those items to them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pyarrow as pa

from cartlift.store._eventstore import EventStore
from cartlift.store._tables import IMPRESSION_COLUMNS

__all__ = ["FLUSH_ROWS", "FLUSH_SECONDS", "ImpressionLog", "Shown", "insert_impressions"]

FLUSH_SECONDS: Final = 1.0
"""Longest time a shown list waits in memory before it is handed to the writer."""
FLUSH_ROWS: Final = 2_000
"""Lists in the buffer that wake the flusher at once."""

_COLUMNS: Final = tuple(IMPRESSION_COLUMNS)
_log = logging.getLogger("cartlift.store")


@dataclass(slots=True)
class Shown:
    """One list shown: its items best first, and where each came from.

    ``items`` may be a function that gives them (the service passes its cached list and reads
    the ids out of it on the writer's thread, not on the request's). ``firsts`` gives each
    source's first position (the items after it, up to the next source's first, are that
    source's) and ``models`` the served versions by kind (``{"recommender": {"name", "version"}}``):
    what the request already holds, turned into rows later.
    """

    ts: datetime
    user_id: str | None
    session_id: str | None
    context: str
    items: Sequence[str] | Callable[[], Sequence[str]]
    firsts: Sequence[tuple[str, int]]
    models: dict[str, dict[str, Any]]
    message_id: str | None = None
    impression_id: str | None = None

    def rows(self) -> list[tuple[Any, ...]]:
        """The ``rec_impressions`` rows of this list (`cartlift.store.IMPRESSION_COLUMNS` order)."""
        lid = self.impression_id or uuid.uuid4().hex
        starts = sorted(((p, s) for s, p in self.firsts), reverse=True)
        items = self.items() if callable(self.items) else self.items
        out = []
        for position, item in enumerate(items):
            source = next((s for p, s in starts if p <= position), "unknown")
            served = self.models.get(source) or {}
            model, version = served.get("name"), served.get("version")
            out.append(
                (lid, self.ts, self.user_id, self.session_id, self.context, str(item), position + 1,
                 source, model, version, self.message_id)
            )  # fmt: skip
        return out


def insert_impressions(target: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` into ``rec_impressions`` of a DuckDB `EventStore` or a psycopg connection."""
    if not rows:
        return
    cols = ", ".join(_COLUMNS)
    if isinstance(target, EventStore):
        target.create_tables(("rec_impressions",))
        batch = pa.table({c: pa.array([r[i] for r in rows], type=_ARROW[c]) for i, c in enumerate(_COLUMNS)})
        target.con.register("_impressions", batch)
        try:
            target.con.execute(f"INSERT INTO rec_impressions ({cols}) SELECT {cols} FROM _impressions")
        finally:
            target.con.unregister("_impressions")
        return
    with target.cursor() as cur, cur.copy(f"COPY rec_impressions ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


_ARROW: Final = {
    c: pa.timestamp("us")
    if t.startswith("TIMESTAMP")
    else pa.int32()
    if t.startswith("INTEGER")
    else pa.string()
    for c, t in IMPRESSION_COLUMNS.items()
}


def _report(future: Any) -> None:
    # nobody awaits a flush: a failed one is logged (the lists are lost, the requests were answered)
    if not future.cancelled() and future.exception() is not None:
        _log.error("writing recommendation impressions failed: %s", future.exception())


class ImpressionLog:
    """Buffers shown lists and writes them through ``submit`` (the store writer's) in the background.

    Parameters
    ----------
    submit : callable
        ``submit(fn)`` runs ``fn(context)`` on the writer thread (`cartlift.store.Writer.submit`).
    connection : callable
        ``connection(context)``: what `insert_impressions` takes (the `EventStore` of a DuckDB
        writer, the psycopg connection of a PostgreSQL one).
    """

    def __init__(
        self, submit: Callable[[Callable[[Any], Any]], Any], connection: Callable[[Any], Any]
    ) -> None:
        self._submit = submit
        self._connection = connection
        self._buffer: list[Shown] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cartlift-impressions", daemon=True)
        self.written = 0
        """Rows written so far (what the flusher handed to the writer and it committed)."""

    def start(self) -> None:
        """Start the flusher thread."""
        self._thread.start()

    def add(self, shown: Shown) -> None:
        """Log one list (cheap: the request path calls it)."""
        with self._lock:
            self._buffer.append(shown)
            full = len(self._buffer) >= FLUSH_ROWS
        if full:
            self._wake.set()

    def forget(self, user_id: str) -> None:
        """Drop the buffered lists of ``user_id`` (an erasure: they must not be written after it)."""
        with self._lock:
            self._buffer = [s for s in self._buffer if s.user_id != user_id]

    def flush(self) -> Any:
        """Hand what is buffered to the writer now; returns the writer's future (None: nothing to write)."""
        with self._lock:
            taken, self._buffer = self._buffer, []
        if not taken:
            return None

        def job(context: Any) -> int:
            rows = [row for shown in taken for row in shown.rows()]
            insert_impressions(self._connection(context), rows)
            self.written += len(rows)
            return len(rows)

        future = self._submit(job)
        future.add_done_callback(_report)
        return future

    def close(self) -> None:
        """Stop the flusher and hand the rest to the writer (before the writer stops)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:  # a writer that stopped: the service is going down
                _log.exception("handing impressions to the writer failed")
