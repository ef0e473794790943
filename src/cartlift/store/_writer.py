"""The single writer: one thread owns the store's connection and runs every job in order.

DuckDB allows one writing process per file, and its connection is not shared between threads;
PostgreSQL is happier with one connection per process than one per request. So each backend
runs its jobs on one thread. Event batches that arrive while the writer is busy are merged into
one transaction (group commit): a single INSERT of many rows costs little more than one of a few,
and each caller is answered only after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Writer"]

log = logging.getLogger("cartlift.store")

C = TypeVar("C")
T = TypeVar("T")

Records = list[dict[str, Any]]


@dataclass
class _Job:
    future: Future[Any]
    records: Records | None = None
    fn: Callable[[Any], Any] | None = None
    size: int = field(default=0)


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
        one transaction.
    close_context : callable
        Called on the thread when the writer stops.
    max_events : int
        Most events merged into one transaction.
    """

    def __init__(
        self,
        name: str,
        open_context: Callable[[], C],
        ingest: Callable[[C, list[Records]], list[Any]],
        close_context: Callable[[C], None],
        *,
        max_events: int = 5_000,
    ) -> None:
        self._open = open_context
        self._ingest = ingest
        self._close = close_context
        self._max = max_events
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
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
    def backlog(self) -> int:
        """Jobs waiting."""
        return self._queue.qsize()

    # -- submitting -----------------------------------------------------------------------------
    def submit(self, fn: Callable[[C], T]) -> Future[T]:
        """Run ``fn(context)`` on the writer thread."""
        future: Future[T] = Future()
        self._queue.put(_Job(future, fn=fn))
        return future

    def submit_ingest(self, records: Records) -> Future[Any]:
        """Queue a batch of events; the future gives its outcome once committed."""
        future: Future[Any] = Future()
        self._queue.put(_Job(future, records=records, size=len(records)))
        return future

    async def call(self, fn: Callable[[C], T]) -> T:
        """Await ``fn(context)`` run on the writer thread."""
        return await asyncio.wrap_future(self.submit(fn))

    async def ingest(self, records: Records) -> Any:
        """Await the committed outcome of a batch of events."""
        return await asyncio.wrap_future(self.submit_ingest(records))

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            context = self._open()
        except BaseException as e:  # reported to start(), which re-raises it in the caller
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        pending: _Job | None = None
        try:
            while True:
                job = pending if pending is not None else self._queue.get()
                pending = None
                if job is None:
                    break
                if job.fn is not None:
                    self._run_call(context, job)
                    continue
                group = [job]
                total = job.size
                # group commit: take the batches already waiting, up to the size limit
                while total < self._max:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None or nxt.records is None or total + nxt.size > self._max:
                        pending = nxt
                        break
                    group.append(nxt)
                    total += nxt.size
                self._run_group(context, group)
            # a None job ends the loop; jobs queued after it are refused
        finally:
            while True:
                try:
                    left = self._queue.get_nowait()
                except queue.Empty:
                    break
                if left is not None and not left.future.done():
                    left.future.set_exception(RuntimeError("the service is shutting down"))
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
        assert job.fn is not None
        try:
            value = job.fn(context)
        except BaseException as e:
            self._settle(job.future, error=e)
        else:
            self._settle(job.future, value)

    def _run_group(self, context: C, group: list[_Job]) -> None:
        batches = [j.records or [] for j in group]
        try:
            outcomes = self._ingest(context, batches)
        except BaseException as e:
            if len(group) == 1:
                self._settle(group[0].future, error=e)
                return
            # one bad batch must not fail the others merged with it: commit each on its own
            for job in group:
                self._run_group(context, [job])
            return
        for job, outcome in zip(group, outcomes, strict=True):
            self._settle(job.future, outcome)
