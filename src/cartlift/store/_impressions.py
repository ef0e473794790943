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

import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

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


_EPOCH: Final = datetime(1970, 1, 1)


class Shown(NamedTuple):
    """One list shown: its items best first, and where each came from.

    A plain tuple, so a request logs a list for the cost of making one. ``ts`` is naive UTC or
    seconds since the epoch (``time.time()``: cheaper on the request path). ``items`` may be a
    function that gives them (the service passes its cached list and reads the ids out of it on
    the writer's thread). ``firsts`` gives each source's first position (the items after it, up to
    the next source's first, are that source's) and ``models`` the served versions by kind
    (``{"recommender": {"name", "version"}}``): what the request already holds, turned into rows later.
    """

    ts: datetime | float
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
        columns = _Columns()
        columns.add(self)
        return list(zip(*columns.values(), strict=True))


_PREFIX: Final = uuid.uuid4().hex[:16]
_COUNTER = itertools.count()


def _new_id() -> str:
    # unique per process and list (a random prefix, then a counter): far cheaper than a uuid4 per list
    return f"{_PREFIX}{next(_COUNTER):016x}"


class _Columns:
    """The rows of many lists built column by column: a few list operations per list, none per item."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {c: [] for c in _COLUMNS}

    def add(self, shown: Shown) -> None:
        items = shown.items() if callable(shown.items) else shown.items
        n = len(items)
        if not n:
            return
        c = self.cols
        ts = shown.ts if isinstance(shown.ts, datetime) else _EPOCH + timedelta(seconds=shown.ts)
        for name, value in (
            ("impression_id", shown.impression_id or _new_id()),
            ("ts", ts),
            ("user_id", shown.user_id),
            ("session_id", shown.session_id),
            ("context", shown.context),
            ("message_id", shown.message_id),
        ):
            c[name] += [value] * n
        c["product_id"] += [str(i) for i in items]
        c["position"] += range(1, n + 1)
        # each source's run of items, from its first position to the next source's
        starts = sorted((p, s) for s, p in shown.firsts if p < n) or [(0, "unknown")]
        starts[0] = (0, starts[0][1])
        for (first, source), (stop, _) in zip(starts, [*starts[1:], (n, "")], strict=True):
            served = shown.models.get(source) or {}
            c["source"] += [source] * (stop - first)
            c["model"] += [served.get("name")] * (stop - first)
            c["model_version"] += [served.get("version")] * (stop - first)

    def values(self) -> list[list[Any]]:
        return [self.cols[c] for c in _COLUMNS]


def insert_impressions(target: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` into ``rec_impressions`` of a DuckDB `EventStore` or a psycopg connection."""
    if rows:
        _insert(target, [list(col) for col in zip(*rows, strict=True)])


def _insert(target: Any, columns: list[list[Any]]) -> None:
    """Insert the columns (`IMPRESSION_COLUMNS` order, equal lengths) at once."""
    cols = ", ".join(_COLUMNS)
    if isinstance(target, EventStore):
        target.create_tables(("rec_impressions",))
        batch = pa.table({c: pa.array(v, type=_ARROW[c]) for c, v in zip(_COLUMNS, columns, strict=True)})
        target.con.register("_impressions", batch)
        try:
            target.con.execute(f"INSERT INTO rec_impressions ({cols}) SELECT {cols} FROM _impressions")
        finally:
            target.con.unregister("_impressions")
        return
    with target.cursor() as cur, cur.copy(f"COPY rec_impressions ({cols}) FROM STDIN") as copy:
        for row in zip(*columns, strict=True):
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
    enabled : bool
        False: `add` keeps nothing (``CARTLIFT_SERVE_LOG_IMPRESSIONS=false``).
    """

    def __init__(
        self,
        submit: Callable[[Callable[[Any], Any]], Any],
        connection: Callable[[Any], Any],
        *,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
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
        if not self.enabled:
            return
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
            columns = _Columns()
            for shown in taken:
                columns.add(shown)
            values = columns.values()
            if values[0]:
                _insert(self._connection(context), values)
            self.written += len(values[0])
            return len(values[0])

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
