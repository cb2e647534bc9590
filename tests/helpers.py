"""Small test helpers: wait for a condition the engine signals through the database or events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout`` seconds.

    Used where the event happens in another process or in the database, so there is nothing
    in-process to wait on.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class EventLog:
    """Collects engine events and lets a test wait for one without sleeping."""

    def __init__(self) -> None:
        self.events: list = []
        self._cond = threading.Condition()

    def __call__(self, event) -> None:  # type: ignore[no-untyped-def]
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[list], bool], timeout: float = 10.0) -> list:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.events), timeout):
                raise AssertionError(f"timed out waiting for events; have {[e.kind for e in self.events]}")
            return list(self.events)

    def kinds(self) -> list[str]:
        with self._cond:
            return [e.kind for e in self.events]


def max_in_window(starts: Sequence[datetime], window: timedelta) -> int:
    """The most starts in any sliding window (t - window, t]: the engine's rate-limit rule."""
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
