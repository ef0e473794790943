"""The recommendation impression log: what lists the service showed, written off the request path.

A request only appends one tuple to a buffer (under a lock: well under a microsecond); a
flusher thread takes the buffer about once a second (`FLUSH_SECONDS`), or sooner when it holds
`FLUSH_ROWS` lists, expands each list into its rows (`Shown.rows`) and writes them at once
(`Storage.write_impressions`): on DuckDB one Arrow batch through the store's single writer
(posted events wait for that insert only), on PostgreSQL one ``COPY`` on a connection of the
log's own (posted events never wait for it). So the recommendation endpoint never waits for the
store, and the store commits one insert per second instead of one per answer. Lists shown in the
last second before a crash are lost: the log measures, it does not bill.

The rows are ``rec_impressions`` (`cartlift.store.IMPRESSION_COLUMNS`): one per item shown, with the
list's id, time, person or session, context, position, source and model version; the act package's
attribution links purchases of those items to them.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from cartlift.store._eventstore import EventStore
from cartlift.store._tables import IMPRESSION_COLUMNS

__all__ = [
    "FLUSH_ROWS",
    "FLUSH_SECONDS",
    "ImpressionLog",
    "Shown",
    "insert_impression_table",
    "insert_impressions",
]

FLUSH_SECONDS: Final = 1.0
"""Longest time a shown list waits in memory before it is written."""
FLUSH_ROWS: Final = 500
"""Lists in the buffer that wake the flusher at once.

Building a flush's rows holds the GIL the event loop needs, so a big flush is a stall of every
request in flight: at 2,000 lists (a flush every 0.2 s at 11,000 answers a second) the
recommendation load's p99 was 21-26 ms with the log against 7-8 without; at 500, 13-16 ms at the
same throughput (`benchmarks/service.py`, alternating runs; 250 gave the same as 500)."""

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
    """The rows of many lists, kept per list and expanded per item only at the end (numpy, Arrow):
    a few appends per list on the writer's thread, nothing per item in Python."""

    _PER_LIST: Final = ("impression_id", "ts", "user_id", "session_id", "context", "message_id")

    def __init__(self) -> None:
        self.lists: dict[str, list[Any]] = {c: [] for c in self._PER_LIST}
        self.items: list[str] = []
        self.counts: list[int] = []
        self.runs: list[tuple[int, str, Any, Any]] = []  # (items, source, model, version) per source run

    def add(self, shown: Shown) -> None:
        items = shown.items() if callable(shown.items) else shown.items
        n = len(items)
        if not n:
            return
        per = self.lists
        per["impression_id"].append(shown.impression_id or _new_id())
        per["ts"].append(shown.ts)
        per["user_id"].append(shown.user_id)
        per["session_id"].append(shown.session_id)
        per["context"].append(shown.context)
        per["message_id"].append(shown.message_id)
        self.items.extend(items)
        self.counts.append(n)
        # each source's run of items, from its first position to the next source's
        starts = sorted((p, s) for s, p in shown.firsts if p < n) or [(0, "unknown")]
        for i, (first, source) in enumerate(starts):
            stop = starts[i + 1][0] if i + 1 < len(starts) else n
            served = shown.models.get(source) or {}
            self.runs.append(
                (stop - (0 if i == 0 else first), source, served.get("name"), served.get("version"))
            )

    def __len__(self) -> int:
        return len(self.items)

    def arrow(self) -> pa.Table:
        """Every row as one Arrow table (`IMPRESSION_COLUMNS` order)."""
        counts = np.asarray(self.counts, dtype=np.int64)
        of_list = pa.array(np.repeat(np.arange(len(counts)), counts))
        ts = [t if isinstance(t, datetime) else _EPOCH + timedelta(seconds=t) for t in self.lists["ts"]]
        cols = {
            c: pa.array(ts if c == "ts" else v, type=_ARROW[c]).take(of_list) for c, v in self.lists.items()
        }
        cols["product_id"] = pa.array([str(i) for i in self.items], type=pa.string())
        firsts = np.repeat(np.cumsum(counts) - counts, counts)
        cols["position"] = pa.array((np.arange(len(self.items)) - firsts + 1).astype(np.int32))
        of_run = pa.array(np.repeat(np.arange(len(self.runs)), [r[0] for r in self.runs]))
        for i, c in enumerate(("source", "model", "model_version"), 1):
            cols[c] = pa.array([r[i] for r in self.runs], type=pa.string()).take(of_run)
        return pa.table({c: cols[c] for c in _COLUMNS})

    def values(self) -> list[list[Any]]:
        """Every row's values, column by column (`IMPRESSION_COLUMNS` order)."""
        table = self.arrow()
        return [table.column(c).to_pylist() for c in _COLUMNS]


def insert_impressions(target: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` into ``rec_impressions`` of a DuckDB `EventStore` or a psycopg connection."""
    if rows:
        _insert(target, [list(col) for col in zip(*rows, strict=True)])


def insert_impression_table(target: Any, table: pa.Table) -> None:
    """Insert an Arrow table of `IMPRESSION_COLUMNS` at once (targets as `insert_impressions`)."""
    _insert(target, table)


def _insert(target: Any, columns: list[list[Any]] | pa.Table) -> None:
    """Insert the columns (`IMPRESSION_COLUMNS` order, equal lengths; or an Arrow table) at once."""
    cols = ", ".join(_COLUMNS)
    if isinstance(target, EventStore):
        target.create_tables(("rec_impressions",))
        batch = (
            columns
            if isinstance(columns, pa.Table)
            else pa.table({c: pa.array(v, type=_ARROW[c]) for c, v in zip(_COLUMNS, columns, strict=True)})
        )
        target.con.register("_impressions", batch)
        try:
            target.con.execute(f"INSERT INTO rec_impressions ({cols}) SELECT {cols} FROM _impressions")
        finally:
            target.con.unregister("_impressions")
        return
    # one CSV text written by Arrow's C++ writer (quoted strings; a null is an unquoted empty
    # field, as PostgreSQL's CSV reads it), instead of psycopg adapting every row in Python: at
    # thousands of lists a second the row-by-row COPY held the writer thread for seconds, and
    # posted events queued behind it (benchmarks/service.py on PostgreSQL: events p99 4.2 s)
    table = (
        columns
        if isinstance(columns, pa.Table)
        else pa.table({c: pa.array(v, type=_ARROW[c]) for c, v in zip(_COLUMNS, columns, strict=True)})
    )
    text = io.BytesIO()
    pa_csv.write_csv(table.select(list(_COLUMNS)), text, pa_csv.WriteOptions(include_header=False))
    with (
        target.cursor() as cur,
        cur.copy(f"COPY rec_impressions ({cols}) FROM STDIN WITH (FORMAT csv)") as copy,
    ):
        copy.write(text.getbuffer())


_ARROW: Final = {
    c: pa.timestamp("us")
    if t.startswith("TIMESTAMP")
    else pa.int32()
    if t.startswith("INTEGER")
    else pa.string()
    for c, t in IMPRESSION_COLUMNS.items()
}


class ImpressionLog:
    """Buffers shown lists and writes them through ``write`` in the background.

    Parameters
    ----------
    write : callable
        ``write(table)`` stores an Arrow table of `IMPRESSION_COLUMNS` and returns once it is
        committed (`cartlift.store.Storage.write_impressions`: through the DuckDB writer, or on
        a PostgreSQL connection of the log's own).
    enabled : bool
        False: `add` keeps nothing (``CARTLIFT_SERVE_LOG_IMPRESSIONS=false``).
    """

    def __init__(self, write: Callable[[pa.Table], Any], *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._write = write
        self._buffer: list[Shown] = []
        self._lock = threading.Lock()
        # held from taking the buffer until its rows are committed: `forget` waits on it, so an
        # erasure never runs while lists it should have dropped are still on their way to the store
        self._writing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cartlift-impressions", daemon=True)
        self.written = 0
        """Rows written so far (what the flusher wrote and the store committed)."""
        self._flushing = 0  # lists taken by the flush under way, until committed

    @property
    def pending(self) -> int:
        """Lists answered and not yet committed to the store (buffered, or in the flush under way):
        what stays to write, which a load of recommendation requests makes grow faster than it drains."""
        with self._lock:
            return len(self._buffer) + self._flushing

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
        """Drop the buffered lists of ``user_id`` once a flush in progress is committed (blocks until
        then): an erasure that follows deletes every row of the user, and none is written after it."""
        with self._writing, self._lock:
            self._buffer = [s for s in self._buffer if s.user_id != user_id]

    def flush(self) -> int:
        """Write what is buffered now; returns the rows written (blocks until they are committed)."""
        with self._writing:
            with self._lock:
                taken, self._buffer = self._buffer, []
                self._flushing = len(taken)
            try:
                columns = _Columns()
                for shown in taken:
                    columns.add(shown)
                if not len(columns):
                    return 0
                self._write(columns.arrow())
                self.written += len(columns)
                return len(columns)
            finally:
                with self._lock:
                    self._flushing = 0

    def close(self) -> None:
        """Stop the flusher and write the rest (before the store closes)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self._flush_or_log()

    def _flush_or_log(self) -> None:
        try:
            self.flush()
        except Exception as e:  # the lists are lost; their requests were answered long ago
            _log.error("writing recommendation impressions failed: %s", e)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            # one flush at a time: what arrives meanwhile waits in the buffer and goes in the next
            self._flush_or_log()
