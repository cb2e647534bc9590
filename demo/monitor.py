"""Error monitoring as the seed's demo has it: hear failures, log them, keep the recent ones; and
the engine's reporter that notifies (a log channel, and a JSON webhook when one is given)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine import Channel, Event, LogChannel, Reporter, WebhookChannel

log = logging.getLogger("lysmore.demo.errors")

NOTIFY_KINDS = ("discard", "stale_ack", "node_lost")  # failures that will be retried are only counted


def demo_reporter(notify_url: str | None = None, window: float = 60.0) -> Reporter:
    """One node's reporter: notifications as warnings on ``lysmore.demo.notify``, and POSTed as
    JSON to ``notify_url`` when given (``LYSMORE_DEMO_NOTIFY_URL``), grouped and rate-limited."""
    channels: list[Channel] = [LogChannel(logging.getLogger("lysmore.demo.notify"))]
    if notify_url:
        channels.append(WebhookChannel(notify_url))
    return Reporter(channels, window=window, kinds=NOTIFY_KINDS)

END_KINDS = ("success", "failure", "discard", "cancel", "snooze", "timeout")


def short_worker(name: str) -> str:
    """``demo.workers.WelcomeMailer`` -> ``WelcomeMailer``."""
    return name.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One failed attempt as the monitor saw it."""

    at: float  # time.time()
    kind: str  # failure (will retry), discard (out of attempts) or timeout
    node: str
    queue: str
    worker: str
    job_id: int
    attempt: int
    max_attempts: int
    error: str

    def line(self) -> str:
        """``ReceiptMailer#123 (2/5, demo-1): DemoError: SMTP 450 ...`` for logs and the progress line."""
        return (f"{self.worker}#{self.job_id} ({self.attempt}/{self.max_attempts}, {self.node}) "
                f"{'discarded' if self.kind == 'discard' else self.kind}: {self.error}")


class ErrorMonitor:
    """Subscribe with ``engine.subscribe(monitor, kinds=ErrorMonitor.KINDS)`` on every node.

    Each failure is logged (INFO) and kept in a ring, for the progress line and the summary;
    notifying someone is the nodes' reporter's job (``demo_reporter``).
    """

    KINDS = ("failure", "discard", "timeout")

    def __init__(self, size: int = 200, clock: Callable[[], float] = time.time) -> None:
        self.recent: deque[ErrorRecord] = deque(maxlen=size)
        self.counts: Counter[str] = Counter()  # by kind
        self.by_worker: Counter[str] = Counter()
        self._clock = clock
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        job = event.job
        if job is None or event.kind not in self.KINDS:
            return
        message = _describe(event)
        record = ErrorRecord(
            at=self._clock(), kind=event.kind, node=(job.attempted_by or ["?"])[0], queue=job.queue,
            worker=short_worker(job.worker), job_id=job.id, attempt=job.attempt,
            max_attempts=job.max_attempts, error=message,
        )
        with self._lock:
            self.recent.append(record)
            self.counts[event.kind] += 1
            self.by_worker[record.worker] += 1
        log.info("job failed: %s", record.line(), extra={"job_id": job.id, "queue": job.queue})

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def last(self, n: int = 5) -> list[ErrorRecord]:
        """The ``n`` most recent errors, newest first."""
        with self._lock:
            return list(self.recent)[-n:][::-1]

    def summary(self, width: int = 70) -> str:
        """``errors 42 (3 discarded) last: ...`` for the progress line."""
        with self._lock:
            total = sum(self.counts.values())
            discarded = self.counts["discard"]
            last = self.recent[-1] if self.recent else None
        if not total:
            return "errors 0"
        text = f"errors {total:,}" + (f" ({discarded:,} discarded)" if discarded else "")
        if last is not None:
            line = last.line()
            text += " last " + (line if len(line) <= width else line[: width - 1] + "…")
        return text

    def top_workers(self, n: int = 3) -> list[tuple[str, int]]:
        with self._lock:
            return self.by_worker.most_common(n)


def _describe(event: Event) -> str:
    error = event.error
    if error is not None:
        return f"{type(error).__name__}: {error}"
    if event.kind == "discard":
        reason = (event.detail or {}).get("error")  # the job's error entry: "discarded: <reason>"
        return str(reason) if reason else "discarded by its worker"
    if event.kind == "timeout":
        return f"ran past its timeout ({event.duration or 0:g}s)"
    return event.kind


class Tally:
    """Counts job starts and ends on the nodes it subscribes to, for jobs per second."""

    KINDS = ("start", *END_KINDS)

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.counts[event.kind] += 1

    def finished(self) -> int:
        """Attempts that ended, however they ended."""
        with self._lock:
            return sum(self.counts[k] for k in END_KINDS)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.counts)
