"""Async workers (``async def perform``) run as tasks on one shared event loop, not a thread of the
pool each: many wait at once, a job's failure (SystemExit included) is the job's, and the queue's
limit and timeouts hold as for any worker."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from engine import JobState, Worker, testing
from tests.engine._support import events_of, start_node, wait_end

Q = "async_workers"
GATE: dict[str, Any] = {}  # the loop's event the waiting jobs wait on, and how many wait


class Waits(Worker, queue=Q):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        GATE["loop"] = asyncio.get_running_loop()
        gate = GATE.setdefault("event", asyncio.Event())
        GATE["waiting"] = GATE.get("waiting", 0) + 1
        GATE.setdefault("threads", set()).add(threading.current_thread().name)
        await gate.wait()
        return {"n": job.args["n"]}


class Exits(Worker, queue=Q, max_attempts=2):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        raise SystemExit(3)


class Quick(Worker, queue=Q):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return "ok"


class Hangs(Worker, queue=Q, timeout=0.2, max_attempts=1):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        await asyncio.Event().wait()


CANCELLED: list[int] = []


class Forever(Worker, queue=Q):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            CANCELLED.append(job.id)
            raise


def test_many_async_jobs_wait_at_once_on_one_loop_within_the_queue_limit(make_engine) -> None:  # type: ignore[no-untyped-def]
    GATE.clear()
    eng, log = start_node(make_engine, {Q: 8})
    jobs = [eng.insert(Waits.new({"n": n})) for n in range(12)]
    log.wait(lambda evs: sum(e.kind == "start" for e in evs) >= 8, 10)
    assert testing.flush(eng, 5)
    executing = [j for j in jobs if eng.get_job(j.id).state is JobState.EXECUTING]
    assert len(executing) == 8  # the limit: the other four wait for a slot
    GATE["loop"].call_soon_threadsafe(GATE["event"].set)
    for job in jobs:
        row = wait_end(eng, log, job.id)
        assert row.state is JobState.COMPLETED and row.result == {"n": job.args["n"]}
    assert GATE["threads"] == {"lysmore-async"}  # no pool thread ran any of them


def test_system_exit_in_an_async_perform_fails_the_job_and_the_loop_goes_on(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    bad = eng.insert(Exits.new({}))
    row = wait_end(eng, log, bad.id, kinds=["failure"])
    assert row.state is JobState.RETRYABLE and "SystemExit: 3" in row.errors[-1]["error"]
    good = eng.insert(Quick.new({}))
    assert wait_end(eng, log, good.id).result == "ok"


def test_an_async_job_past_its_timeout_fails_and_frees_its_slot(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 1})
    stuck = eng.insert(Hangs.new({}))
    row = wait_end(eng, log, stuck.id, kinds=["timeout"])
    assert row.state is JobState.DISCARDED
    assert row.errors[-1]["error"] == "TimeoutError: perform ran past its timeout of 0.2s"
    after = eng.insert(Quick.new({}))  # the only slot: free again, the task was cancelled
    assert wait_end(eng, log, after.id).result == "ok"
    assert [e.kind for e in events_of(log, stuck.id)] == ["start", "timeout", "discard"]
    assert eng.get_job(stuck.id).state is JobState.DISCARDED  # the cancelled task's late outcome changed nothing


def test_cancelling_an_async_job_cancels_its_task(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 1})
    job = eng.insert(Forever.new({}))
    log.wait(lambda evs: any(e.kind == "start" and e.job.id == job.id for e in evs), 10)
    assert eng.cancel_job(job.id)
    log.wait(lambda evs: any(e.kind == "cancel" and e.job.id == job.id for e in evs), 10)
    after = eng.insert(Quick.new({}))
    assert wait_end(eng, log, after.id).result == "ok"
    assert CANCELLED == [job.id]
    assert eng.get_job(job.id).state is JobState.CANCELLED
