"""One thread that fires per-job timeouts, instead of a timer thread per job."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("lysmore.deadlines")


class Deadline:
    """A scheduled call; ``cancel()`` before it fires and it never does."""

    __slots__ = ("at", "fn", "cancelled", "_owner")

    def __init__(self, owner: Deadlines, at: float, fn: Callable[[], None]) -> None:
        self._owner = owner
        self.at = at
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self._owner._cancel(self)


class Deadlines:
    """A heap of monotonic deadlines served by one daemon thread, started on first use.

    Callbacks run on that thread one after another, so each must be quick (a timeout only claims
    the run, interrupts the job and hands its outcome on).
    """

    def __init__(self, name: str = "lysmore-deadlines") -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._name = name
        self._thread: threading.Thread | None = None
        self._cancelled = 0  # cancelled entries still in the heap

    def call_in(self, seconds: float, fn: Callable[[], None]) -> Deadline:
        deadline = Deadline(self, time.monotonic() + seconds, fn)
        with self._cond:
            if self._cancelled > 1024 and self._cancelled * 2 > len(self._heap):
                # Jobs mostly end long before their timeout: drop the dead entries in one go
                # rather than keeping each until its time comes.
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0
            heapq.heappush(self._heap, (deadline.at, next(self._seq), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return deadline

    def pending(self) -> int:
        """Deadlines not yet fired nor cancelled."""
        with self._cond:
            return len(self._heap) - self._cancelled

    def size(self) -> int:
        """Entries held, cancelled ones included (bounded by compaction)."""
        with self._cond:
            return len(self._heap)

    def _cancel(self, deadline: Deadline) -> None:
        with self._cond:
            if not deadline.cancelled:
                deadline.cancelled = True
                if deadline.at >= 0:  # still in the heap
                    self._cancelled += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)  # cancelled ones leave as they reach the top
                    self._cancelled -= 1
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, due = heapq.heappop(self._heap)
                due.at = -1.0  # fired: a late cancel no longer counts as an entry in the heap
            try:
                due.fn()
            except Exception:
                log.exception("a deadline callback failed")
