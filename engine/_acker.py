"""Buffers job outcomes and records them in one compare-and-set statement every few milliseconds
(``GATHER``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection

import psycopg

from ._runner import UNRECORDABLE, Outcome, unrecordable

log = logging.getLogger("lysmore.acker")

BATCH = 1000
# Seconds the acker gathers outcomes after the first one arrives, before it records them. Each
# ack statement has a fixed cost (a commit, the locks and setup of the jobs table's relations)
# that a node at a small local limit paid every ten jobs: gathering 5 ms took one node at
# concurrency 10 from about 5,750 to 6,700-7,100 jobs/s, PostgreSQL's CPU a job from about 117
# to 85 us (tools/perf/drain.py). Slots are freed when a job ends, not when its outcome is
# recorded, so nothing waits on this but the row's state; flush() and stop() skip it.
GATHER = 0.005


def transient(exc: BaseException) -> bool:
    """True for a connection or server-side interruption, worth retrying as it is; False when
    PostgreSQL refused what was sent (bad data), which the same statement would meet again."""
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def refused(outcome: Outcome, exc: BaseException) -> list[Outcome]:
    """What to record instead of an outcome PostgreSQL refused: a failure naming the reason, with
    no result or meta; nothing at all when even that was refused (the rescue takes the job)."""
    if outcome.error is not None and str(outcome.error.get("error", "")).startswith(UNRECORDABLE):
        log.error("job %s: even the failure recorded for it was refused; leaving it to the rescue",
                  outcome.job.id, extra={"job_id": outcome.job.id})
        return []
    return [unrecordable(outcome.job, exc, outcome.duration)]


class Acker:
    """One thread that flushes outcomes in batches; a failed flush keeps them and tries again."""

    def __init__(
        self, record: Callable[[list[Outcome]], list[Outcome]], on_stale: Callable[[list[Outcome]], None],
        limited: Callable[[], Collection[str]] = list,
    ) -> None:
        self._record = record  # writes a batch, returns the outcomes it could not apply
        self._on_stale = on_stale
        self._limited = limited  # queues under a global limit: their outcomes free slots, no gathering
        self._buffer: list[Outcome] = []
        self._lock = threading.RLock()  # add() takes it bare: Condition's own __enter__ is Python
        self._cond = threading.Condition(self._lock)
        self._stopping = False
        self._inflight = 0
        self._inflight_ids: set[int] = set()
        self._flushing = 0  # callers of flush() waiting: record at once, do not gather
        self._record_at_once: Collection[str] = ()  # queues whose outcomes end a gathering (_gather)
        self._thread = threading.Thread(target=self._run, name="lysmore-acker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self._buffer.append(outcome)
            # Wake the acker only when it has something to do: a first outcome (it waits for one),
            # a full batch, or an outcome it records at once (a queue under a global limit).
            # While it gathers, the other outcomes wait for the window to close; a notify for
            # each (at concurrency 50, about 50 a window) woke its thread for nothing.
            n = len(self._buffer)
            if n == 1 or n >= BATCH or outcome.job.queue in self._record_at_once:
                self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._buffer) + self._inflight

    def pending_ids(self) -> set[int]:
        """Jobs whose outcome is buffered or being recorded right now."""
        with self._cond:
            return {o.job.id for o in self._buffer} | self._inflight_ids

    def flush(self, timeout: float) -> bool:
        """Wait until everything added so far is recorded; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            try:
                self._cond.notify_all()
                while self._buffer or self._inflight:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            finally:
                self._flushing -= 1
        return True

    def stop(self, timeout: float) -> bool:
        done = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=max(0.1, timeout))
        if not done:
            log.error("stopped with %d outcomes unrecorded; the lifeline will rescue those jobs", self.pending())
        return done

    def _gather(self) -> None:
        """With the condition held and outcomes buffered: wait up to ``GATHER`` seconds for more,
        unless a batch is full, someone flushes, the acker stops, or an outcome of a globally
        limited queue waits (recording it frees a slot every node counts)."""
        until = time.monotonic() + GATHER
        limited, seen = self._limited(), 0
        self._record_at_once = limited  # add() wakes us for these
        while len(self._buffer) < BATCH and not self._stopping and not self._flushing:
            if limited and any(o.job.queue in limited for o in self._buffer[seen:]):
                return
            seen = len(self._buffer)
            left = until - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _run(self) -> None:
        failures = 0
        size = BATCH  # smaller while a batch PostgreSQL refused is taken apart
        while True:
            with self._cond:
                while not self._buffer and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._buffer:
                    return
                self._gather()
                batch, self._buffer = self._buffer[:size], self._buffer[size:]
                self._inflight = len(batch)
                self._inflight_ids = {o.job.id for o in batch}
            try:
                stale = self._record(batch)
            except Exception as exc:
                if not transient(exc):
                    # PostgreSQL refused something in this batch: halve it until the refused
                    # outcome is alone, record that one as a failure naming the reason, and let
                    # the others land meanwhile. A connection problem, instead, is waited out.
                    if len(batch) == 1:
                        log.error("job %s: PostgreSQL refused its outcome (%s); recording a failure instead",
                                  batch[0].job.id, str(exc).partition("\n")[0], extra={"job_id": batch[0].job.id})
                        batch = refused(batch[0], exc)
                    size = max(1, len(batch) // 2)
                    with self._cond:
                        self._buffer[:0] = batch
                        self._inflight = 0
                        self._inflight_ids = set()
                    continue
                failures += 1
                log.warning("recording %d outcomes failed, will retry: %s", len(batch), exc)
                with self._cond:
                    self._buffer[:0] = batch
                    self._inflight = 0
                    self._inflight_ids = set()
                    if self._stopping:
                        return
                    self._cond.wait(min(0.05 * 2**failures, 5.0))
                continue
            failures = 0
            size = min(BATCH, size * 2)
            if stale:  # counted before the batch is done, so flush() returns with counters current
                try:
                    self._on_stale(stale)
                except Exception:
                    log.exception("counting %d stale acks failed", len(stale))
            with self._cond:
                self._inflight = 0
                self._inflight_ids = set()
                self._cond.notify_all()
