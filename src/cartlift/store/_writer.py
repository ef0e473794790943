"""The single writer: one thread owns the store's connection and runs every job in order.

DuckDB allows one writing process per file, and its connection is not shared between threads;
PostgreSQL is happier with one connection per process than one per request. So each backend
runs its jobs on one thread. Event batches that arrive while the writer is busy are merged into
one transaction (group commit): a single INSERT of many rows costs little more than one of a few,
and each caller is answered only after that commit.

Crossing threads costs more than the work of a small batch, so it happens per group, not per
request: a coroutine adds its batch to an inbox (a list under a lock) and only the first batch of
an empty inbox wakes the writer; after the commit, one callback on the event loop resolves every
caller's future of the group (not a thread-safe future per request, each waking the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Writer", "group_ready"]

_LINGER_SECONDS = 0.010
"""Longest wait for more batches before a group is committed."""
_LINGER_STEP = 0.002
"""The group is committed once no batch arrived for this long."""

log = logging.getLogger("cartlift.store")

C = TypeVar("C")
T = TypeVar("T")

Records = list[dict[str, Any]]


@dataclass
class _Job:
    future: Future[Any] | None = None
    fn: Callable[[Any], Any] | None = None
    """None: take the inbox of event batches."""


@dataclass
class _Batch:
    records: Any
    """What the ``ingest`` callable receives for this batch (records, or records with more)."""
    future: asyncio.Future[Any] | Future[Any]
    loop: asyncio.AbstractEventLoop | None = None
    size: int = field(default=0)


def _resolve(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Settle a group's futures on their loop (one callback for the whole group)."""
    for future, value, error in results:
        if future.done():  # the caller gave up (a client hung up)
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def group_ready(waiting: int, seen: int, last_group: int, full: bool) -> bool:
    """Whether the writer stops gathering and commits the ``waiting`` batches.

    ``seen`` is how many waited one linger step before (-1 at the first look), ``last_group`` how
    many the writer took last time, ``full`` whether they reach ``max_events``. Ready when the
    group is full; when as many batches wait as made the last group (under a steady load its
    clients are all back, and waiting one more step for nothing cost every group 2 ms:
    `benchmarks/service.py`, events on DuckDB, 3,400-3,700 requests/s against 2,800-3,100);
    or when none arrived during a step (clients left, or the load is light).
    """
    return full or 0 < last_group <= waiting or waiting == seen


class Writer(Generic[C]):
    """A thread that opens a context (a store, a connection) and runs jobs on it one at a time.

    Parameters
    ----------
    name : str
        Thread name (shows in logs).
    open_context : callable
        Called once on the thread; returns what every job receives.
    ingest : callable
        ``ingest(context, batches) -> list of outcomes``, one outcome per batch, all batches in
        one transaction (a batch is what `ingest` or `submit_ingest` was given).
    close_context : callable
        Called on the thread when the writer stops.
    max_events : int
        Most events merged into one transaction.
    idle : callable, optional
        ``idle(context)``, run on the thread once it has had nothing to do for ``idle_seconds``
        after a job (housekeeping that would otherwise land on a request's commit).
    idle_seconds : float
        How long the writer waits before ``idle``.
    lock : threading.RLock, optional
        Held while each job, group and ``idle`` runs: a thread that writes to the same store
        through a connection of its own holds it too, so their transactions never overlap.
    """

    def __init__(
        self,
        name: str,
        open_context: Callable[[], C],
        ingest: Callable[[C, list[Any]], list[Any]],
        close_context: Callable[[C], None],
        *,
        max_events: int = 5_000,
        idle: Callable[[C], None] | None = None,
        idle_seconds: float = 1.0,
        lock: threading.RLock | None = None,
    ) -> None:
        self._open = open_context
        self._ingest = ingest
        self._close = close_context
        self._max = max_events
        self._idle = idle
        self._idle_seconds = idle_seconds
        self._lock: contextlib.AbstractContextManager[Any] = (
            lock if lock is not None else contextlib.nullcontext()
        )
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._inbox: list[_Batch] = []
        self._inbox_lock = threading.Lock()
        # signalled when the inbox holds as many batches as the last group (`_gather` waits on it)
        self._regrouped = threading.Condition(self._inbox_lock)
        self._last_group = 0  # batches taken at the last gathering (`group_ready`)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._jobs_done = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread and wait until its context is open (raises what opening raised)."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, close the context and end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    @property
    def jobs_done(self) -> int:
        """Jobs run so far, event batches not counted (a cache of what only batches change compares it)."""
        return self._jobs_done

    @property
    def backlog(self) -> int:
        """Jobs and event batches waiting."""
        return self._queue.qsize() + len(self._inbox)

    # -- submitting -----------------------------------------------------------------------------
    def submit(self, fn: Callable[[C], T]) -> Future[T]:
        """Run ``fn(context)`` on the writer thread."""
        future: Future[T] = Future()
        self._queue.put(_Job(future, fn=fn))
        return future

    def _post(self, batch: _Batch) -> None:
        with self._inbox_lock:
            self._inbox.append(batch)
            waiting = len(self._inbox)
            wake = waiting == 1
            if waiting == self._last_group:
                self._regrouped.notify()
        if wake:  # later batches join this one's group
            self._queue.put(_Job())

    def submit_ingest(self, records: Any, size: int | None = None) -> Future[Any]:
        """Queue a batch of events from any thread; the future gives its outcome once committed.

        ``size`` is its number of events (default ``len(records)``), what ``max_events`` counts.
        """
        future: Future[Any] = Future()
        self._post(_Batch(records, future, size=len(records) if size is None else size))
        return future

    async def call(self, fn: Callable[[C], T]) -> T:
        """Await ``fn(context)`` run on the writer thread."""
        return await asyncio.wrap_future(self.submit(fn))

    async def ingest(self, records: Any, size: int | None = None) -> Any:
        """Await the committed outcome of a batch of events (``size`` as in `submit_ingest`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._post(_Batch(records, future, loop, len(records) if size is None else size))
        return await future

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            context = self._open()
        except BaseException as e:  # reported to start(), which re-raises it in the caller
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        busy = False  # a job ran since the last idle call
        try:
            while True:
                try:
                    job = self._queue.get(timeout=self._idle_seconds if busy else None)
                except queue.Empty:
                    busy = False
                    assert self._idle is not None
                    try:
                        with self._lock:
                            self._idle(context)
                    except Exception:  # housekeeping; the next idle moment tries again
                        log.exception("the writer's idle work failed")
                    continue
                busy = self._idle is not None
                if job is None:
                    break
                if job.fn is not None:
                    self._run_call(context, job)
                else:
                    self._run_inbox(context)
            # a None job ends the loop; jobs queued after it are refused
        finally:
            while True:
                try:
                    left = self._queue.get_nowait()
                except queue.Empty:
                    break
                if left is not None and left.future is not None and not left.future.done():
                    left.future.set_exception(RuntimeError("the service is shutting down"))
            with self._inbox_lock:
                refused, self._inbox = self._inbox, []
            self._answer([(b, None, RuntimeError("the service is shutting down")) for b in refused])
            try:
                self._close(context)
            except Exception:
                log.exception("closing the store failed")

    @staticmethod
    def _settle(future: Future[Any], value: Any = None, error: BaseException | None = None) -> None:
        if future.set_running_or_notify_cancel():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def _run_call(self, context: C, job: _Job) -> None:
        assert job.fn is not None and job.future is not None
        self._jobs_done += 1
        try:
            with self._lock:
                value = job.fn(context)
        except BaseException as e:
            self._settle(job.future, error=e)
        else:
            self._settle(job.future, value)

    def _gather(self) -> None:
        """Wait a little while batches keep arriving (`group_ready` says when to stop).

        A group is answered all at once, so its clients come back together; the first of them
        would otherwise wake the writer to a small group (a commit's whole fixed cost) while the
        rest wait a full round: measured, groups of 53 and 11 alternated at 64 connections.
        """
        deadline = time.monotonic() + _LINGER_SECONDS
        seen = -1
        with self._regrouped:
            while True:
                waiting = len(self._inbox)
                full = sum(b.size for b in self._inbox) >= self._max
                left = deadline - time.monotonic()
                if left <= 0 or group_ready(waiting, seen, self._last_group, full):
                    return
                seen = waiting
                # woken early when the last group's clients are all back (`_post`)
                self._regrouped.wait(min(_LINGER_STEP, left))

    def _run_inbox(self, context: C) -> None:
        """Commit every batch waiting, in groups of at most ``max_events``."""
        self._gather()
        with self._inbox_lock:
            batches, self._inbox = self._inbox, []
            self._last_group = len(batches)
        while batches:
            group, total = [batches[0]], batches[0].size
            for b in batches[1:]:
                if total + b.size > self._max:
                    break
                group.append(b)
                total += b.size
            batches = batches[len(group) :]
            self._answer(self._run_group(context, group))

    def _run_group(self, context: C, group: list[_Batch]) -> list[tuple[_Batch, Any, BaseException | None]]:
        try:
            with self._lock:
                outcomes = self._ingest(context, [b.records for b in group])
        except BaseException as e:
            if len(group) == 1:
                return [(group[0], None, e)]
            # one bad batch must not fail the others merged with it: commit each on its own
            return [r for b in group for r in self._run_group(context, [b])]
        return [(b, outcome, None) for b, outcome in zip(group, outcomes, strict=True)]

    def _answer(self, results: list[tuple[_Batch, Any, BaseException | None]]) -> None:
        """Settle the futures: one loop callback per event loop, thread-safe futures directly."""
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
        ] = {}
        for batch, value, error in results:
            if batch.loop is None:
                assert isinstance(batch.future, Future)
                self._settle(batch.future, value, error)
            else:
                assert isinstance(batch.future, asyncio.Future)
                by_loop.setdefault(batch.loop, []).append((batch.future, value, error))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, settled)
            except RuntimeError:  # the loop is closed: nobody waits any more
                log.warning("%d event batch(es) committed after their event loop closed", len(settled))
