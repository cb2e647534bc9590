"""The one shape of every periodic part: an interval with jitter, log-and-continue on errors."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

log = logging.getLogger("lysmore.loop")


def jittered(seconds: float, spread: float = 0.1) -> float:
    """``seconds`` moved at random by up to ``spread`` of itself either way."""
    return seconds * (1.0 + random.uniform(-spread, spread))


class Periodic:
    """Runs ``fn`` every ``interval`` seconds (jittered) on a daemon thread until stopped."""

    def __init__(self, name: str, interval: float, fn: Callable[[], object], backoff: bool = True) -> None:
        self.name = name
        self.interval = interval
        self.fn = fn
        self.backoff = backoff  # False: a failed round is tried again after one interval, no longer
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lysmore-{name}", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.fn()
                failures = 0
            except Exception as exc:  # log and continue: the next round may succeed
                failures += 1
                self.errors += 1
                log.warning("%s failed: %s", self.name, exc, extra={"loop": self.name})
            wait = jittered(self.interval)
            if failures and self.backoff:
                wait = min(wait * (2 ** min(failures, 5)), 30.0)
            self._kick.wait(wait)
            self._kick.clear()
