"""One producer per queue and node: fetches up to the free slots and hands jobs to threads."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._acker import Acker
from ._deadlines import Deadline, Deadlines
from ._events import Event, Events
from ._job import Job
from ._jobpath import JobPath
from ._loop import jittered
from ._queues import QueueConfig
from ._runner import ASYNC, Outcome, ThreadPool, is_async, run_job, run_job_async, timeout_outcome
from ._store import Store
from ._worker import Worker, resolve_worker

log = logging.getLogger("lysmore.producer")

LOST_CHECK_INTERVAL = 1.0
RECONCILE_INTERVAL = 10.0
SETTINGS_REFRESH_INTERVAL = 5.0
PAUSE_SETTLE_TIMEOUT = 10.0  # seconds a pause waits for fetches in flight before it is acknowledged


@dataclass(eq=False, slots=True)
class Running:
    """A job this node is executing. Exactly one party records its outcome: see ``claim``."""

    job: Job
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    claimed: bool = False
    taken: bool = False  # its row was rescued or deleted: told to stop, its outcome will be refused
    timer: Deadline | None = None

    def claim(self) -> bool:
        """True for the first caller only: the finished thread, the timeout, a cancel or stop."""
        with self.lock:
            if self.claimed:
                return False
            self.claimed = True
            return True


@dataclass(frozen=True)
class Runtime:
    """What the producers of one node share: the way to the database, the job path's two ends,
    the threads jobs run in, and the node's few answers a producer asks for."""

    store: Store
    path: JobPath
    acker: Acker
    events: Events
    threads: ThreadPool
    deadlines: Deadlines
    settings_for: Callable[[QueueConfig], tuple[bool, QueueConfig]]  # (paused, limits) in force here
    lease_held: Callable[[], bool]  # False while this node's heartbeat lease has lapsed: fetch nothing
    job_done: Callable[[], None]  # a job's thread finished (stop() waits on these)
    owner: Any  # given to each job (``job._engine``): a job reads its workflow's results through it
    poll_interval: float
    max_json_bytes: int
    worker_modules: Sequence[str]


class Producer:
    """Fetches jobs of one queue for this node and runs them, within the local limit."""

    def __init__(self, rt: Runtime, config: QueueConfig) -> None:
        self.rt = rt
        self.queue = config.name
        self.config = config
        self.limit = config.local_limit
        self.effective = config  # config with persisted overrides applied
        self.paused = False
        self._rate_wake_at = 0.0  # monotonic time when a rate window frees its next slot
        self.running: dict[int, Running] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._assist_wake = threading.Event()  # the second fetcher's own, so neither spins
        self._fetching = True
        self._settings_dirty = True
        self._settings_applied = False  # nothing is fetched before the queue's settings are read once
        self._reserved = 0  # slots promised to fetches in flight
        self._reconciling = False
        self.fenced_skips = 0  # fetches skipped because the lease had lapsed
        self._done: list[Outcome] = []  # finished here, to be recorded by the next fetch (global limit)
        self._carrying = 0  # outcomes a fetch in flight is recording
        self._settled = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name=f"lysmore-producer-{self.queue}", daemon=True)
        self._helper = threading.Thread(target=self._assist, name=f"lysmore-fetcher-{self.queue}", daemon=True)

    # -- control, called from other threads ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._helper.start()

    def wake(self) -> None:
        """Have both fetchers look for free slots and work. An event still set is left alone: each
        fetcher clears its own before it counts the free slots, so it will count whatever this
        wake-up is for (``Event.set`` takes a lock and notifies even when set; a job's end wakes
        them, so at concurrency 50 that was two of them a job, mostly for nothing)."""
        if not self._wake.is_set():
            self._wake.set()
        if not self._assist_wake.is_set():
            self._assist_wake.set()

    def settings_changed(self) -> None:
        self._settings_dirty = True
        self.wake()

    def stop_fetching(self) -> None:
        with self._lock:
            self._fetching = False
        self._hand_over_waiting()
        self.wake()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._helper.join(timeout)

    def running_count(self) -> int:
        with self._lock:
            return len(self.running)

    def flush(self, deadline: float) -> bool:
        """Send waiting outcomes to the acker and wait out fetches recording some; False if
        ``deadline`` (monotonic) came first."""
        self._hand_over_waiting()
        with self._settled:
            return self._settled.wait_for(lambda: not self._carrying, max(0.0, deadline - time.monotonic()))

    def carried_ids(self) -> set[int]:
        """Jobs finished here whose outcome waits for the next fetch to record it."""
        with self._lock:
            return {o.job.id for o in self._done}

    def running_claimed(self, job_id: int) -> bool:
        """Whether the execution of ``job_id`` here has finished (or been stopped), or is gone."""
        with self._lock:
            run = self.running.get(job_id)
        return run is None or run.claimed

    def snapshot(self) -> list[Running]:
        with self._lock:
            return list(self.running.values())

    def interrupt(self, job_ids: set[int], reason: str) -> int:
        """Tell the executions of ``job_ids`` to stop; their late results will be ignored."""
        hits = 0
        for run in self.snapshot():
            if run.job.id in job_ids:
                hits += 1
                if run.claim():
                    log.info("job %s %s while executing", run.job.id, reason, extra={"job_id": run.job.id})
                    self.rt.events.emit(Event("cancel", run.job, time.monotonic() - run.started))
                run.job._interrupt()
        return hits

    # -- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        """Fetch when woken (insert, freed slot, control) or when the poll is due; between times,
        wake at least every second for the checks that keep running jobs honest."""
        last_lost_check = last_reconcile = time.monotonic()
        last_settings = 0.0
        failures = 0
        poll_due = 0.0
        woken = True
        while self._fetching:
            now = time.monotonic()
            fetched = False
            try:
                if self._settings_dirty or now - last_settings > SETTINGS_REFRESH_INTERVAL:
                    self._settings_dirty = False
                    last_settings = now
                    self._apply_settings()
                if now - last_lost_check >= LOST_CHECK_INTERVAL:
                    last_lost_check = now
                    self._check_lost()
                if now - last_reconcile > RECONCILE_INTERVAL and self._begin_reconcile():
                    last_reconcile = now
                    try:
                        self.reconcile()
                    finally:
                        self._reconciling = False
                rate_due = self._rate_wake_at and now >= self._rate_wake_at
                if woken or rate_due or now >= poll_due:
                    fetched = self._fetch_once()
                    if not fetched:
                        poll_due = now + jittered(self.rt.poll_interval)
                failures = 0
            except Exception as exc:
                failures += 1
                log.warning("producer %s: %s; retrying", self.queue, exc, extra={"queue": self.queue})
                self._wake.wait(min(0.05 * 2**failures, 5.0) * jittered(1.0))
                self._wake.clear()
                woken = True
                continue
            if fetched:
                continue  # there may be more and free slots left: fetch again straight away
            wait = min(poll_due, last_lost_check + LOST_CHECK_INTERVAL) - time.monotonic()
            if self._rate_wake_at:
                wait = min(wait, self._rate_wake_at - time.monotonic())
            woken = self._wake.wait(max(0.0, wait))
            self._wake.clear()

    def _assist(self) -> None:
        """A second fetcher: while one fetch waits for its commit, the next can already be on its
        way, so throughput is not one commit per batch. Under a global limit the two queue at the
        queue's lock in the database, which keeps the limit exact. Rate-limited queues use one."""
        while self._fetching:
            limited = self.effective.rate_limit is not None
            try:
                if not limited and self._fetch_once():
                    continue
            except Exception as exc:
                log.debug("second fetcher of %s: %s", self.queue, exc)
            self._assist_wake.wait(jittered(self.rt.poll_interval))
            self._assist_wake.clear()

    def _free(self) -> int:
        with self._lock:
            return self.limit - len(self.running) - self._reserved

    def _begin_reconcile(self) -> bool:
        """Hold fetches off while reconciling; only when none is in flight."""
        with self._lock:
            if self._reserved:
                return False
            self._reconciling = True
            return True

    def _fetch_once(self) -> bool:
        """Fetch and start jobs if any slot is free; True when it filled every slot it asked for.

        Outcomes waiting in ``_done`` go with the fetch; when there is no fetch to carry them
        (paused, stopping, reconciling, every slot busy) they go to the acker.
        """
        with self._lock:
            done, self._done = self._done, []
            demand = self.limit - len(self.running) - self._reserved
            fenced = not self.rt.lease_held()  # our heartbeat may have lapsed: take no new work
            self.fenced_skips += fenced
            if (self.paused or not self._settings_applied or not self._fetching or self._reconciling
                    or demand <= 0 or fenced):
                if demand <= 0 and self._reserved and self._fetching:
                    self._done, done = done, []  # the fetch in flight wakes us when it returns
                demand = 0
            else:
                self._reserved += demand
                self._carrying += len(done)
        if not demand:
            self._hand_over(done)
            return False
        carrying = len(done)
        try:
            self._rate_wake_at = 0.0
            jobs, rate_wait = self.rt.path.fetch(self.queue, demand, self.effective, done)
            if rate_wait is not None:
                self._rate_wake_at = time.monotonic() + rate_wait
            tasks: list[Coroutine[Any, Any, None]] = []
            try:
                for job in jobs:
                    task = self._start(job)
                    if task is not None:
                        tasks.append(task)
            finally:
                if tasks:  # the async ones, started: one wake-up of the loop for the batch
                    ASYNC.spawn(tasks)
        finally:
            self._hand_over(done)  # still there only if the fetch failed before recording them
            with self._lock:
                self._reserved -= demand
                self._carrying -= carrying
                self._settled.notify_all()
                waiting = bool(self._done)
            if waiting:
                self._wake.set()
        return len(jobs) == demand and self._free() > 0

    def _hand_over(self, done: list[Outcome]) -> None:
        for outcome in done:
            self.rt.acker.add(outcome)

    def _hand_over_waiting(self) -> None:
        """Send every outcome waiting for a fetch to the acker instead."""
        with self._lock:
            done, self._done = self._done, []
        self._hand_over(done)

    def _start(self, job: Job) -> Coroutine[Any, Any, None] | None:
        """Start executing ``job``: in a thread of the pool, or, for an async worker, as the
        coroutine returned, for the caller to run on the shared loop."""
        job._engine = self.rt.owner
        run = Running(job)
        with self._lock:
            self.running[job.id] = run
        cls = resolve_worker(job.worker, self.rt.worker_modules)
        timeout = getattr(cls, "timeout", None) if cls else None
        if timeout:
            run.timer = self.rt.deadlines.call_in(timeout, lambda: self._timed_out(run, timeout, cls))
        if cls is not None and is_async(cls):
            return self._execute_async(run, cls)
        self.rt.threads.submit(lambda: self._execute(run))
        return None

    def _execute(self, run: Running) -> None:
        try:
            if "start" in self.rt.events.wanted:
                self.rt.events.emit(Event("start", run.job))
            self._ended(run, run_job(run.job, self.rt.max_json_bytes, self.rt.worker_modules))
        finally:
            self._gone(run)

    async def _execute_async(self, run: Running, cls: type[Worker]) -> None:
        """``_execute`` for an async worker, as a task on the shared loop. Told to stop (a timeout,
        a cancel, a rescue, the node's stop), the task is cancelled: ``perform`` gets
        CancelledError at its next await, and its slot is free once it returns. (A thread cannot
        be stopped; its job sees ``job.cancelled()`` and its slot waits for it.)"""
        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        assert task is not None

        def cancel() -> None:
            loop.call_soon_threadsafe(task.cancel)

        run.job._on_interrupt = cancel
        if run.job.cancelled():  # told before it started
            task.cancel()
        try:
            if "start" in self.rt.events.wanted:
                self.rt.events.emit(Event("start", run.job))
            self._ended(run, await run_job_async(run.job, cls, self.rt.max_json_bytes))
        except Exception:
            log.exception("job %s: its execution failed to end", run.job.id, extra={"job_id": run.job.id})
        finally:
            self._gone(run)

    def _ended(self, run: Running, outcome: Outcome) -> None:
        if run.timer is not None:
            run.timer.cancel()
        if run.claim():
            self._finish(outcome, carry=True)

    def _gone(self, run: Running) -> None:
        """An execution is over (whoever recorded its outcome): its slot is free."""
        with self._lock:
            self.running.pop(run.job.id, None)
        self.wake()
        self.rt.job_done()

    def _timed_out(self, run: Running, seconds: float, cls: type[Worker] | None) -> None:
        if run.claim():
            run.job._interrupt()
            log.warning("job %s ran past its timeout of %ss", run.job.id, seconds, extra={"job_id": run.job.id})
            outcome = timeout_outcome(run.job, seconds, cls)
            self.rt.events.emit(Event("timeout", run.job, seconds))
            self._finish(outcome)

    def _finish(self, outcome: Outcome, carry: bool = False) -> None:
        """Hand the outcome on to be recorded: under a global limit, to the fetch this finish
        wakes (``carry``: the caller wakes it), which frees the slot in the database as it takes
        it again; otherwise, and for workflow steps (recorded under the workflow's lock), to the
        acker."""
        carried = False
        if carry and self.effective.global_limit is not None and outcome.job.workflow_id is None:
            with self._lock:
                if self._fetching and not self.paused:
                    self._done.append(outcome)
                    carried = True
        if not carried:
            self.rt.acker.add(outcome)
        if outcome.kind in self.rt.events.wanted:
            self.rt.events.emit(
                Event(outcome.kind, outcome.job, outcome.duration, outcome.exception, outcome.result,
                      detail=outcome.error)  # the error entry: the reason of a Cancel or Discard too
            )

    def _check_lost(self) -> None:
        """Interrupt executions whose rows no longer belong to them. A cancelled row is a cancel
        (its notification was missed); a rescued or deleted one is not: the execution is told to
        stop, and its outcome, when it comes, is refused and counted as a stale ack."""
        runs = [r for r in self.snapshot() if not r.claimed and not r.taken]
        if not runs:
            return
        lost = self.rt.store.lost([r.job.id for r in runs], [r.job.attempt for r in runs])
        # A run that finished while the rows were read may already be recorded (its own outcome
        # is what the row shows now): only runs still unclaimed are another party's doing.
        lost = {job_id: state for job_id, state in lost.items() if not self.running_claimed(job_id)}
        cancelled = {i for i, state in lost.items() if state == "cancelled"}
        if cancelled:
            self.interrupt(cancelled, "was cancelled")
        for run in runs:
            if run.job.id in lost and run.job.id not in cancelled:
                run.taken = True
                log.warning("job %s attempt %s was %s elsewhere while running here; its outcome will be refused",
                            run.job.id, run.job.attempt, "deleted" if lost[run.job.id] is None else "rescued",
                            extra={"job_id": run.job.id})
                run.job._interrupt()

    def _apply_settings(self) -> None:
        """Take the queue's settings in force here, then record them in this node's producer row,
        which is what a control call waits to see (its acknowledgement). A pause is recorded only
        once no fetch begun before it is still in flight: one would claim jobs inserted after the
        caller saw the pause acknowledged."""
        paused, effective = self.rt.settings_for(self.config)
        limit = effective.local_limit
        changed = (paused, effective) != (self.paused, self.effective)
        with self._settled:
            self.paused, self.limit, self.effective = paused, limit, effective
            self._settings_applied = True
            if paused and not self._settled.wait_for(lambda: not self._reserved, PAUSE_SETTLE_TIMEOUT):
                log.warning("queue %s: a fetch begun before the pause is still running after %ss",
                            self.queue, PAUSE_SETTLE_TIMEOUT, extra={"queue": self.queue})
        self.rt.store.record_producer(self.queue, limit, paused, self.running_count(), effective.limits_dict())
        if changed:
            log.info(
                "queue %s now %s with limit %d", self.queue, "paused" if paused else "running", limit,
                extra={"queue": self.queue, "paused": paused, "limit": limit},
            )

    def reconcile(self, older_than: float = 10.0) -> int:
        """Release rows recorded as executing here that no execution here knows about.

        That happens when a fetch committed but its answer was lost with the connection. Runs
        on the producer's own thread, so no fetch of this queue is in flight meanwhile.
        """
        rows = self.rt.store.executing_here(self.queue, older_than)
        if not rows:
            return 0
        known = {run.job.id for run in self.snapshot()} | self.carried_ids() | self.rt.acker.pending_ids()
        lost = [row for row in rows if row[0] not in known]
        if not lost:
            return 0
        released = self.rt.path.release(lost)
        log.warning("released %d jobs of %s whose fetch answer was lost", released, self.queue)
        return released
