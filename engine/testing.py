"""Helpers for the tests of apps built on the engine (and of the engine itself): run a queue's
jobs inline, claim jobs by hand as a node would, wait until recorded outcomes are written.

Kept apart from ``Engine`` so that production code never reaches for them.
"""

from __future__ import annotations

from ._engine import Engine
from ._job import Job, check_queue_name
from ._runner import run_job

__all__ = ["drain", "fetch", "flush"]


def drain(engine: Engine, queue: str, *, with_scheduled: bool = False, limit: int | None = None) -> dict[str, int]:
    """Run the available jobs of ``queue`` in this thread, one by one; returns counts by outcome
    (``completed``, ``retryable``, ... and ``stale`` for an outcome the row no longer took).

    Jobs inserted while draining run too; ``with_scheduled`` stages the queue's scheduled and
    retryable jobs before every fetch, so retries run until they complete or are discarded (give
    ``limit`` for a job that snoozes for ever).
    """
    check_queue_name(queue)
    counts: dict[str, int] = {}
    ran = 0
    while limit is None or ran < limit:
        if with_scheduled:
            with engine.connection() as c:
                c.execute(engine.q.jobs.stage_queue_now, {"queue": queue})
        jobs = fetch(engine, queue, 1)
        if not jobs:
            break
        jobs[0]._engine = engine
        outcome = run_job(jobs[0], engine.max_json_bytes, engine.worker_modules)
        stale = engine._record([outcome])
        if stale:  # the row moved on while it ran: counted and announced, as on a node
            engine._stale(stale)
        key = "stale" if stale else outcome.state.value
        counts[key] = counts.get(key, 0) + 1
        ran += 1
    return counts


def fetch(engine: Engine, queue: str, demand: int) -> list[Job]:
    """Claim up to ``demand`` jobs of ``queue`` for ``engine``'s node, with its configured limits,
    as its producer would; the jobs are then executing on that node."""
    return engine._claim(queue, demand, engine.queues.get(queue))[0]


def flush(engine: Engine, timeout: float = 5.0) -> bool:
    """Wait until every outcome ``engine`` has so far is written; False if ``timeout`` ran out."""
    return engine._flush(timeout)
