"""Helpers for the tests of apps built on the engine (and of the engine itself): run a queue's
jobs inline, claim jobs by hand as a node would, wait until recorded outcomes are written.

Kept apart from ``Engine`` so that production code never reaches for them.
"""

from __future__ import annotations

from typing import Any

from ._engine import Engine
from ._job import Job, check_queue_name
from ._producer import Producer
from ._queues import QueueConfig
from ._runner import Outcome, run_job

__all__ = ["drain", "fetch", "flush", "producer", "reconcile", "record", "run_round"]


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
            engine.store.stage_queue_now(queue)
        jobs = fetch(engine, queue, 1)
        if not jobs:
            break
        jobs[0]._engine = engine
        outcome = run_job(jobs[0], engine.max_json_bytes, engine.worker_modules)
        stale = engine._path.record([outcome])
        if stale:  # the row moved on while it ran: counted and announced, as on a node
            engine._path.stale(stale)
        key = "stale" if stale else outcome.state.value
        counts[key] = counts.get(key, 0) + 1
        ran += 1
    engine._path.flush_rollups()
    return counts


def fetch(
    engine: Engine, queue: str, demand: int, limits: QueueConfig | None = None, done: list[Outcome] | None = None
) -> list[Job]:
    """Claim up to ``demand`` jobs of ``queue`` for ``engine``'s node, as its producer would: with
    ``limits`` (by default the queue's configured ones), recording ``done`` (outcomes of a globally
    limited queue) in the same transaction; ``done`` is emptied once they are recorded. The jobs
    are then executing on that node."""
    return engine._path.fetch(queue, demand, limits or engine.queues.get(queue), done)[0]


def record(engine: Engine, outcomes: list[Outcome]) -> list[Outcome]:
    """Record ``outcomes`` now, in one statement, as the acker does; returns the stale ones (the
    rows had moved on), not yet counted or announced."""
    return engine._path.record(outcomes)


def producer(engine: Engine, config: QueueConfig) -> Producer:
    """A producer of ``config``'s queue on ``engine``'s node, not started: nothing happens but
    what the test does with it."""
    return Producer(engine._runtime, config)


def run_round(engine: Engine, part: str) -> Any:
    """Run one round of a periodic part of ``engine``'s node now, as its loop would: ``stager``,
    ``rollups``, ``lifeline``, ``pruner``, ``tidy``, ``stats``, ``workflows`` or ``cron``. The leader-only
    ones do nothing unless this node leads. Returns what the round returns (how many jobs it moved, mostly)."""
    if part not in engine._rounds:
        raise ValueError(f"no periodic part {part!r}; there are {sorted(engine._rounds)}")
    return engine._rounds[part]()


def reconcile(engine: Engine, queue: str, older_than: float = 10.0) -> int:
    """Run the reconciler of ``queue``'s producer now: rows executing on this node for longer
    than ``older_than`` seconds that no execution here knows about are given back; how many."""
    return engine._producers[queue].reconcile(older_than)


def flush(engine: Engine, timeout: float = 5.0) -> bool:
    """Wait until every outcome ``engine`` has so far is written, and added to the per-minute
    rollups; False if ``timeout`` ran out."""
    done = engine._flush(timeout)
    engine._path.flush_rollups()
    return done
