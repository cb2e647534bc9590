"""Buffers job outcomes and records them in one compare-and-set statement every few milliseconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._runner import Outcome

if TYPE_CHECKING:
    from ._engine import Engine

log = logging.getLogger("lysmore.acker")

BATCH = 1000


class Acker:
    """One thread that flushes outcomes in batches; a failed flush keeps them and tries again."""

    def __init__(self, engine: Engine, on_stale: Callable[[list[Outcome]], None]) -> None:
        self._engine = engine
        self._on_stale = on_stale
        self._buffer: list[Outcome] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._inflight = 0
        self._inflight_ids: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="lysmore-acker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, outcome: Outcome) -> None:
        with self._cond:
            self._buffer.append(outcome)
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
            self._cond.notify_all()
            while self._buffer or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
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

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while not self._buffer and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._buffer:
                    return
                batch, self._buffer = self._buffer[:BATCH], self._buffer[BATCH:]
                self._inflight = len(batch)
                self._inflight_ids = {o.job.id for o in batch}
            try:
                stale = self._engine._record(batch)
            except Exception as exc:
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
            if stale:  # counted before the batch is done, so flush() returns with counters current
                try:
                    self._on_stale(stale)
                except Exception:
                    log.exception("counting %d stale acks failed", len(stale))
            with self._cond:
                self._inflight = 0
                self._inflight_ids = set()
                self._cond.notify_all()
