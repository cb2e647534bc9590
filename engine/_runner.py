"""Running one job: call its worker, turn what happened into an outcome to record."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import queue as queue_mod
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from ._job import MAX_ARGS_BYTES, Job, Unstorable, json_text
from ._states import JobState, can_move
from ._worker import Cancel, Discard, Snooze, Worker, default_backoff, resolve_worker

log = logging.getLogger("lysmore.runner")

MAX_DELAY = 10 * 365 * 86_400.0  # seconds; a longer backoff or snooze is cut to this
MAX_JSON_BYTES = MAX_ARGS_BYTES  # default cap on a job's stored result (Engine's max_json_bytes)
MAX_MESSAGE_CHARS = 8_000  # an error entry keeps this much of the message ...
MAX_TRACEBACK_CHARS = 64_000  # ... and the end of the traceback, so it always fits under the cap


# The states an execution can end in (one set lookup a job, not two enum conversions).
_ENDS = frozenset(state for state in JobState if can_move(JobState.EXECUTING, state))


@dataclass(slots=True)
class Outcome:
    """What an execution decided for its job; becomes one row of a batched ack."""

    job: Job
    state: JobState
    delay: float = 0.0  # seconds from now, for scheduled and retryable
    extra_attempts: int = 0  # a snooze gives the attempt back this way; attempt never goes down
    error: dict[str, Any] | None = None
    result: Any = None
    meta: dict[str, Any] | None = None
    exception: BaseException | None = None
    duration: float = 0.0
    kind: str = "success"  # the event to emit
    stored: tuple[str | None, str | None, str | None] | None = None  # error, result, meta as JSON text

    def __post_init__(self) -> None:
        if self.state not in _ENDS:
            raise AssertionError(f"an execution cannot end in state {self.state}")
        # A delay PostgreSQL's interval cannot hold (inf, nan, 1e300) would fail the whole ack batch.
        delay = float(self.delay)
        self.delay = min(delay, MAX_DELAY) if delay > 0 else 0.0

    def encode(self, max_bytes: int = MAX_JSON_BYTES) -> None:
        """Turn error, result and meta into the JSON text the ack stores, now, in the job's thread.

        A result jsonb cannot hold (too big, too deep, not JSON) is replaced by a note in
        ``meta["result_error"]``: the attempt is recorded, and no batch of acks fails on it.
        """
        result = None
        if self.result is not None:
            try:
                result = json_text(self.result, max_bytes)
            except Unstorable as exc:
                self.result = None
                self.meta = {**(self.meta or {}), "result_error": f"return value not stored: it {exc}"}
        error = None if self.error is None else json_text(self.error, max(max_bytes, MAX_ARGS_BYTES))
        meta = None if self.meta is None else json_text(self.meta, max(max_bytes, MAX_ARGS_BYTES))
        self.stored = (error, result, meta)

    def params(self) -> tuple[Any, ...]:
        """This outcome as one element of each array ``ack.sql`` takes."""
        if self.stored is None:
            self.encode()
        assert self.stored is not None
        return (self.job.id, self.job.attempt, self.state.value, self.delay, self.extra_attempts, *self.stored)


def _text(value: str | None) -> str | None:
    """``value`` as text PostgreSQL can store: no NUL character, no lone surrogate."""
    if value is None:
        return None
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _error_entry(job: Job, message: str, tb: str | None = None) -> dict[str, Any]:
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + f"… ({len(message):,} characters)"
    if tb is not None and len(tb) > MAX_TRACEBACK_CHARS:
        tb = f"… ({len(tb):,} characters, the end kept)\n" + tb[-MAX_TRACEBACK_CHARS:]
    entry: dict[str, Any] = {"attempt": job.attempt, "error": _text(message), "traceback": _text(tb)}
    if job.attempted_by:  # where and when this attempt ran, for the dashboard's timeline
        entry["node"] = job.attempted_by[0]
    if job.attempted_at is not None:
        entry["started_at"] = job.attempted_at.isoformat()
    return entry


def _describe(exc: BaseException) -> tuple[str, str | None]:
    """(one-line message, traceback) of ``exc``, even when its ``__str__`` raises."""
    try:
        message = f"{type(exc).__name__}: {exc}"
    except Exception:
        message = f"{type(exc).__name__}: <str() of the exception failed>"
    try:
        tb: str | None = "".join(traceback.format_exception(exc))
    except Exception:
        tb = None
    return message, tb


def failure(job: Job, exc: BaseException, worker: Worker | None, duration: float, note: str = "") -> Outcome:
    """A failed attempt: retryable with backoff while attempts remain, else discarded; ``note``
    goes before the exception in the error entry."""
    message, tb = _describe(exc)
    entry = _error_entry(job, f"{note}: {message}" if note else message, tb)
    if job.attempt >= job.max_attempts:
        return Outcome(job, JobState.DISCARDED, error=entry, exception=exc, duration=duration, kind="discard")
    try:
        delay = float(worker.backoff(job)) if worker is not None else default_backoff(job.attempt)
        if not math.isfinite(delay):
            raise ValueError(f"backoff returned {delay!r}")
    except Exception:
        log.exception("backoff failed; using the default", extra={"job_id": job.id})
        delay = default_backoff(job.attempt)
    return Outcome(
        job, JobState.RETRYABLE, delay=max(0.0, delay), error=entry, exception=exc,
        duration=duration, kind="failure",
    )


def decide(job: Job, worker: Worker | None, value: Any, exc: BaseException | None, duration: float) -> Outcome:
    """Map what ``perform`` returned or raised to the job's next state."""
    if exc is None and value is None:  # the common case, without the checks below
        return Outcome(job, JobState.COMPLETED, duration=duration)
    if isinstance(exc, (Snooze, Cancel, Discard)):
        value, exc = exc, None
    if exc is not None:
        return failure(job, exc, worker, duration)
    if isinstance(value, Snooze):
        before = job.meta.get("snoozed")  # a count someone overwrote with junk starts again
        snoozed = (before if isinstance(before, int) and not isinstance(before, bool) and before > 0 else 0) + 1
        return Outcome(
            job, JobState.SCHEDULED, delay=value.seconds, extra_attempts=1,
            meta={"snoozed": snoozed}, duration=duration, kind="snooze",
        )
    if isinstance(value, Cancel):
        return Outcome(
            job, JobState.CANCELLED, error=_error_entry(job, f"cancelled: {value.reason}"),
            duration=duration, kind="cancel",
        )
    if isinstance(value, Discard):
        return Outcome(
            job, JobState.DISCARDED, error=_error_entry(job, f"discarded: {value.reason}"),
            duration=duration, kind="discard",
        )
    return Outcome(job, JobState.COMPLETED, result=value, duration=duration)


class SharedLoop:
    """One event loop for every async perform of the process, in a daemon thread of its own,
    started by the first one. A worker whose ``perform`` is a coroutine function runs there as a
    task (``spawn``), taking no thread of the pool; an awaitable returned by a plain ``perform`` is
    awaited there while the job's thread waits (``run``).

    A loop a job, as ``asyncio.run`` gives, cost more than the job: a no-op async worker ran at a
    sixth of the rate of a sync one. As in any asyncio program, a perform that blocks (a
    ``time.sleep``, a synchronous client) holds up the other async performs while it does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # the loop keeps only weak references

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="lysmore-async", daemon=True)
                self._thread.start()
            return self._loop

    def spawn(self, coros: list[Coroutine[Any, Any, None]]) -> None:
        """Start ``coros`` on the loop, with one wake-up of it; each is a whole execution, outcome
        included, and does not raise."""
        self._running().call_soon_threadsafe(self._tasks_of, coros)

    def _tasks_of(self, coros: list[Coroutine[Any, Any, None]]) -> None:
        for coro in coros:
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def run(self, awaitable: Any) -> Any:
        """What ``awaitable`` returns, or raise what it raised, once the loop ran it."""
        async def guarded() -> tuple[bool, Any]:
            try:
                return True, await awaitable
            except BaseException as exc:  # noqa: B036 - SystemExit in a task would stop the shared loop
                return False, exc

        ok, value = asyncio.run_coroutine_threadsafe(guarded(), self._running()).result()
        if not ok:
            raise value
        return value


ASYNC = SharedLoop()


def _call(worker: Worker, job: Job) -> Any:
    value = worker.perform(job)
    if value is not None and inspect.isawaitable(value):  # None, most jobs' answer: no ABC check
        value = ASYNC.run(value)
    return value


def run_job(job: Job, max_bytes: int = MAX_JSON_BYTES, modules: Sequence[str] = ()) -> Outcome:
    """Run ``job`` in this thread and return its outcome, ready to record; never raises, not even
    SystemExit. Whatever fails after ``perform`` (a result that cannot be stored, a broken
    ``Snooze``, a failing ``backoff``) still ends the attempt: as a failure naming the reason."""
    started = time.monotonic()
    try:
        outcome = _run(job, started, modules)
        outcome.encode(max_bytes)
        return outcome
    except BaseException as exc:  # noqa: B036 - the attempt must end whatever went wrong
        return unrecordable(job, exc, time.monotonic() - started)


def is_async(cls: type[Worker] | None) -> bool:
    """Whether ``cls``'s perform is a coroutine function: its jobs run on the shared loop. Asked
    once a job, answered once a function (``inspect`` took 2% of a node's time at c50)."""
    return cls is not None and _coroutine_function(cls.perform)


@functools.cache
def _coroutine_function(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


async def run_job_async(job: Job, cls: type[Worker], max_bytes: int = MAX_JSON_BYTES) -> Outcome:
    """``run_job`` for an async worker, awaited on the shared loop; never raises either."""
    started = time.monotonic()
    try:
        worker: Worker | None = None
        try:
            worker = cls()
            value = worker.perform(job)
            if inspect.isawaitable(value):
                value = await value
        except BaseException as exc:  # noqa: B036 - as in _run: the job fails, not the loop
            outcome = decide(job, worker, None, exc, time.monotonic() - started)
        else:
            outcome = decide(job, worker, value, None, time.monotonic() - started)
        outcome.encode(max_bytes)
        return outcome
    except BaseException as exc:  # noqa: B036 - the attempt must end whatever went wrong
        return unrecordable(job, exc, time.monotonic() - started)


UNRECORDABLE = "the outcome of this attempt could not be recorded"


def unrecordable(job: Job, exc: BaseException, duration: float) -> Outcome:
    """The attempt as a plain failure when its own outcome could not be made, encoded or stored."""
    outcome = failure(job, exc, None, duration, note=UNRECORDABLE)  # no worker: its backoff may be what broke
    outcome.encode()
    return outcome


def _run(job: Job, started: float, modules: Sequence[str]) -> Outcome:
    cls = resolve_worker(job.worker, modules)
    if cls is None:
        entry = _error_entry(
            job, f"worker {job.worker!r} not found: no such class is known on this node (the app does not "
                 "import it and its module is not under worker_modules); nothing was imported"
        )
        return Outcome(job, JobState.DISCARDED, error=entry, duration=0.0, kind="discard")
    worker: Worker | None = None
    try:
        worker = cls()
        value = _call(worker, job)
    except BaseException as exc:  # noqa: B036 - SystemExit and KeyboardInterrupt fail the job, not the node
        return decide(job, worker, None, exc, time.monotonic() - started)
    return decide(job, worker, value, None, time.monotonic() - started)


def timeout_outcome(job: Job, seconds: float, cls: type[Worker] | None) -> Outcome:
    """The outcome recorded when ``job`` (of worker ``cls``) runs past its ``timeout``."""
    exc = TimeoutError(f"perform ran past its timeout of {seconds:g}s")
    outcome = failure(job, exc, cls() if cls else None, seconds)
    if outcome.error is not None:
        outcome.error["traceback"] = None
    return outcome


class ThreadPool:
    """Threads made on demand and reused; how many jobs run is the producers' business."""

    def __init__(self, name: str, idle_timeout: float = 30.0) -> None:
        self._name = name
        self._tasks: queue_mod.SimpleQueue[Callable[[], None] | None] = queue_mod.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()
        self._idle_timeout = idle_timeout
        self._count = 0

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                spawn = False
            else:
                self._count += 1
                spawn = True
        self._tasks.put(fn)
        if spawn:
            threading.Thread(target=self._work, name=f"{self._name}-{self._count}", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                fn = self._tasks.get(timeout=self._idle_timeout)
            except queue_mod.Empty:
                with self._lock:
                    if self._idle > 0 and self._tasks.empty():
                        self._idle -= 1
                        return
                continue
            if fn is None:
                return
            try:
                fn()
            except BaseException:  # noqa: B036 - a task must never take its thread down silently
                log.exception("task failed in thread pool")
            with self._lock:
                self._idle += 1
