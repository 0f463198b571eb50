"""A queue fair across keys, and the one-thread executor of the inference owner built on it.

Jobs arrive under a key (who pays: tenant and API key) with a cost (seconds of audio in the job).
Arrival order would let a key that sends ten recordings of a minute hold every other key's
3-second request behind them. Here each key's jobs are served by how little that key has been
served so far (start-time fair queuing, a virtual clock in seconds of audio):

* a job's start tag is the later of the clock and its key's previous job's finish tag; its finish
  tag is the start tag plus its cost;
* the job with the smallest start tag runs next (arrival breaks ties), and the clock moves to it.

So a key alone is served at once, keys of equal jobs take turns, a key of short jobs gets as many
seconds as a key of long ones, and a key that was idle starts level with the others (no credit
banked while away). Jobs without a key (the model's load, the warm-up) share one key of their own.
No Django here: the caller says who pays (:mod:`speakers.runtime.payer`).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")
Item = TypeVar("Item")

_NO_KEY = ("no key",)  # a value no caller's key can equal


class QueueClosed(Exception):
    """The queue was closed and every item in it taken."""


class FairQueue(Generic[Item]):
    """Items under keys, taken in fair order (see the module). Thread-safe; :meth:`take` blocks."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._heap: list[tuple[float, int, Item]] = []
        self._finish: dict[Hashable, float] = {}  # each key's last finish tag
        self._clock = 0.0
        self._arrivals = itertools.count()
        self._closed = False

    def put(self, item: Item, *, key: Hashable | None, cost: float) -> None:
        """Queue ``item`` for ``key`` (None: the keyless jobs' share), costing ``cost`` (>= 0)."""
        key = _NO_KEY if key is None else key
        with self._ready:
            start = max(self._clock, self._finish.get(key, 0.0))
            self._finish[key] = start + max(0.0, cost)
            heapq.heappush(self._heap, (start, next(self._arrivals), item))
            self._ready.notify()

    def take(self, timeout: float | None = None) -> Item:
        """The next item in fair order, waiting for one.

        Raises TimeoutError after ``timeout`` seconds, QueueClosed once closed and empty.
        """
        with self._ready:
            if not self._ready.wait_for(lambda: self._heap or self._closed, timeout):
                raise TimeoutError("no job queued")
            if not self._heap:
                raise QueueClosed()
            start, _, item = heapq.heappop(self._heap)
            self._clock = start
            if not self._heap:
                # nobody is waiting: forget the finish tags (they only order jobs that wait together)
                self._finish = {k: f for k, f in self._finish.items() if f > self._clock}
            return item

    def close(self) -> None:
        """Take no more waits: :meth:`take` raises QueueClosed once the queued items are taken."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def __len__(self) -> int:
        with self._ready:
            return len(self._heap)


class FairExecutor:
    """One thread that runs submitted calls in :class:`FairQueue` order (a fair ``ThreadPoolExecutor(1)``)."""

    def __init__(self, thread_name: str) -> None:
        self._queue: FairQueue[tuple[Future, Callable[..., Any], tuple[Any, ...]]] = FairQueue()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any, key: Hashable | None = None, cost: float = 0.0) -> Future[T]:
        """Queue ``fn(*args)`` for ``key`` at ``cost`` (seconds of audio); its Future holds the result or error."""
        future: Future[T] = Future()
        self._queue.put((future, fn, args), key=key, cost=cost)
        return future

    def shutdown(self) -> None:
        """Stop the thread once the jobs queued so far have run."""
        self._queue.close()
        self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                future, fn, args = self._queue.take()
            except QueueClosed:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)
