"""The job path's two ends on one node: fetch (claim jobs, recording finished outcomes of a
globally limited queue on the way) and record (outcomes, compare-and-set, stale ones explained).

Producers fetch through it; the acker records through it. It holds the store, the counters and
the events, and two callbacks into the node: which queues here run under a global limit, and how
to wake one. It knows nothing else of the node.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from ._events import Counters, Event, Events
from ._job import Job
from ._queues import QueueConfig
from ._runner import Outcome
from ._states import FINAL_STATES, JobState
from ._store import Store
from ._timings import Tally, bucket_of

log = logging.getLogger("lysmore.engine")

# The rollup column an outcome counts in, by the state it leaves the job in.
ROLLUP_OF = {
    JobState.COMPLETED: "completed", JobState.RETRYABLE: "failed", JobState.DISCARDED: "discarded",
    JobState.CANCELLED: "cancelled", JobState.SCHEDULED: "snoozed",
}


class Rollups:
    """Outcomes and execution times recorded on this node and not yet added to the per-minute
    rollups, per (queue, worker): counted in memory, written about once a second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Tally] = {}

    def add(self, outcomes: Iterable[Outcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                column = ROLLUP_OF.get(outcome.state)
                if column is not None:
                    tally = self._pending.get((outcome.job.queue, outcome.job.worker))
                    if tally is None:
                        tally = self._pending[(outcome.job.queue, outcome.job.worker)] = Tally()
                    tally.counts[column] += 1
                    tally.buckets[bucket_of(outcome.duration)] += 1

    def take(self) -> dict[tuple[str, str], Tally]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def give_back(self, rows: dict[tuple[str, str], Tally]) -> None:
        with self._lock:
            for key, tally in rows.items():
                mine = self._pending.get(key)
                if mine is None:
                    self._pending[key] = tally
                else:
                    mine.merge(tally)


class JobPath:
    def __init__(
        self, store: Store, counters: Counters, events: Events, node_ttl: float,
        limited: Callable[[], list[str]], wake: Callable[[str], None],
    ) -> None:
        self.store = store
        self.counters = counters
        self.events = events
        self.node_ttl = node_ttl
        self._limited = limited  # queues run here under a global limit: their freed slots are announced
        self._wake = wake
        self.rollups = Rollups()

    def fetch(
        self, queue: str, demand: int, limits: QueueConfig | None = None, done: list[Outcome] | None = None
    ) -> tuple[list[Job], float | None]:
        """Claim up to ``demand`` jobs; also seconds until a rate window frees a slot, if it is full.

        ``done`` are finished executions of this globally limited queue, recorded in the same
        transaction under the queue's lock, just before the fetch counts what is executing: the
        slots they held are free for this very fetch, and no reader ever sees more executing than
        the limit. Without this, a slot would wait for a separate ack commit before any fetch
        could use it. ``done`` is emptied once its outcomes are recorded (whatever happens next).
        """
        if done and (limits is None or limits.global_limit is None):  # the limit went away meanwhile
            stale = self.record(done)
            done.clear()
            if stale:
                self.stale(stale)
        ack = self.store.ack_params([o.params() for o in done], []) if done else None  # a global limit's
        fetched = self.store.fetch(queue, demand, limits, ack, self.node_ttl)
        if done and fetched.recorded is not None:
            stale = self._applied(done, fetched.recorded)
            done.clear()
            if stale:
                self.stale(stale)
        self.counters.add("fetched", len(fetched.jobs))
        return fetched.jobs, fetched.rate_wait

    def record(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Write ``outcomes`` in one statement; returns those that were stale (changed nothing)."""
        limited = self._limited()
        workflows = sorted(
            {o.job.workflow_id for o in outcomes if o.job.workflow_id is not None and o.state in FINAL_STATES},
            key=str,
        )
        hit = self.store.record(self.store.ack_params([o.params() for o in outcomes], limited), workflows)
        for queue in {o.job.queue for o in outcomes} & set(limited):
            self._wake(queue)  # global slots freed: fetch again without waiting to hear it
        return self._applied(outcomes, hit)

    def _applied(self, outcomes: Sequence[Outcome], hit: set[int]) -> list[Outcome]:
        """Count the outcomes an ack applied (``hit``, by job id), for the counters and the
        rollups; returns the others, the stale ones."""
        self.counters.add("acked", len(hit))
        self.rollups.add(o for o in outcomes if o.job.id in hit)
        return [o for o in outcomes if o.job.id not in hit]

    def stale(self, outcomes: list[Outcome]) -> None:
        """Count and announce outcomes an ack did not apply, each with why: the attempt was
        ``rescued`` (given back or to another node), ``cancelled`` or ``deleted`` meanwhile. An
        ack retried after its first try committed (the answer was lost) finds its own outcome
        already there: that counts as acked, not stale."""
        try:
            rows = self.store.refused([o.job.id for o in outcomes])
        except Exception as exc:  # the reasons are for people; the count must not wait for them
            log.warning("could not read why %d acks were refused: %s", len(outcomes), exc)
            rows = {}
        stale = []
        for outcome in outcomes:
            state, attempt, node_id, last_error = rows.get(outcome.job.id, (None, None, None, None))
            own_error = None if outcome.error is None else outcome.error.get("error")
            if (state, attempt, node_id) == (outcome.state.value, outcome.job.attempt, self.store.node.id) and (
                own_error is None or own_error == last_error
            ):
                self.counters.add("acked", 1)
                self.rollups.add([outcome])  # recorded by a try whose answer was lost
                continue
            why = ("unknown" if not rows else "deleted" if state is None
                   else "cancelled" if state == JobState.CANCELLED.value and attempt == outcome.job.attempt
                   else "rescued")
            stale.append(outcome)
            log.warning(
                "stale ack for job %s attempt %s: the attempt was %s meanwhile, nothing changed",
                outcome.job.id, outcome.job.attempt, why, extra={"job_id": outcome.job.id},
            )
            self.events.emit(Event("stale_ack", outcome.job, detail={"state": outcome.state.value, "reason": why}))
        self.counters.add("stale_acks", len(stale))

    def flush_rollups(self) -> None:
        """Add what this node recorded since the last time (outcomes and execution times) to the
        per-minute rollups (the database's current minute); on failure they wait for the next time."""
        rows = self.rollups.take()
        if not rows:
            return
        try:
            self.store.add_rollups(rows)
        except Exception:
            self.rollups.give_back(rows)
            raise

    def release(self, rows: list[tuple[int, int]]) -> int:
        """Give (id, attempt) rows this node executes back to available; how many."""
        released = self.store.release(rows)
        self.counters.add("released", released)
        return released
