"""Cancelling an executing job (same engine, another engine, a missed notification) and per-worker
timeouts: the row changes at once, perform sees job.cancelled(), and a late return changes nothing."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

import engine._producer as producer_mod
from engine import JobState, Worker, testing
from tests.engine._support import events_of, set_row, start_node, wait_end, wait_state
from tests.helpers import wait_for

Q = "cancels"
SEEN: dict[str, dict[str, object]] = {}
DONE: dict[str, threading.Event] = {}
GATES: dict[str, threading.Event] = {}


def done(key: str) -> threading.Event:
    return DONE.setdefault(key, threading.Event())


def gate(key: str) -> threading.Event:
    return GATES.setdefault(key, threading.Event())


def new_key() -> str:
    """Job ids repeat across tests (a schema each): the module-level records go by this key."""
    return uuid.uuid4().hex


class Cooperative(Worker, queue=Q):
    """Works in small steps and stops as soon as it is told to."""

    def perform(self, job):  # type: ignore[no-untyped-def]
        key = job.args["key"]
        SEEN[key] = {"cancelled_at_start": job.cancelled()}
        deadline = time.monotonic() + 10
        while not job.wait_cancelled(0.05):
            if time.monotonic() > deadline:
                break
        SEEN[key]["cancelled"] = job.cancelled()
        SEEN[key]["stopped_at"] = time.monotonic()
        done(key).set()
        return {"late": True}


class SlowCooperative(Cooperative, queue=Q, timeout=0.3):
    pass


class Stuck(Worker, queue=Q, timeout=0.2):
    """Ignores cancellation: only the test's gate lets it return."""

    def perform(self, job):  # type: ignore[no-untyped-def]
        key = job.args["key"]
        gate(key).wait(10)
        SEEN[key] = {"cancelled": job.cancelled()}
        done(key).set()
        return {"late": True}


class QuickTimed(Worker, queue=Q, timeout=5):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return "in time"


class Quick(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return "quick"


def _started(log, job_id: int) -> None:  # type: ignore[no-untyped-def]
    log.wait(lambda evs: any(e.kind == "start" and e.job.id == job_id for e in evs))


def _settled(eng, job):  # type: ignore[no-untyped-def]
    """Wait until the execution's thread has returned and anything it acked is recorded."""
    assert done(job.args["key"]).wait(10)
    wait_for(lambda: eng._producers[Q].running_count() == 0, what="the thread to finish")
    assert testing.flush(eng, 5)
    return eng.get_job(job.id)


def _check_cancelled_run(eng, log, job, within: float) -> None:  # type: ignore[no-untyped-def]
    asked = time.monotonic()
    key, job_id = job.args["key"], job.id
    assert done(key).wait(within), f"perform did not stop within {within}s"
    assert SEEN[key]["cancelled"] is True
    assert SEEN[key]["cancelled_at_start"] is False
    assert float(SEEN[key]["stopped_at"]) - asked < within  # type: ignore[arg-type]
    row = _settled(eng, job)
    assert row.state is JobState.CANCELLED
    assert row.result is None  # the late return changed nothing
    assert row.completed_at is None
    assert events_of(log, job_id, ["cancel"])
    assert not events_of(log, job_id, ["success"])
    assert eng.counters["stale_acks"] == 0  # the late result was never even sent


def test_cancel_executing_job_from_the_same_engine(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Cooperative.new({"key": new_key()}))
    _started(log, job.id)
    assert eng.cancel_job(job.id) is True
    row = eng.get_job(job.id)  # at once, not when perform notices
    assert row.state is JobState.CANCELLED and row.cancelled_at is not None
    _check_cancelled_run(eng, log, job, within=1.0)


def test_cancel_executing_job_from_another_engine(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2}, node="runner")
    controller = make_engine(node="dashboard")  # another node of the same prefix, not running queues
    job = eng.insert(Cooperative.new({"key": new_key()}))
    _started(log, job.id)
    assert controller.cancel_job(job.id) is True
    assert controller.get_job(job.id).state is JobState.CANCELLED
    _check_cancelled_run(eng, log, job, within=1.0)


def test_cancel_inside_a_callers_transaction_is_heard_at_commit(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Cooperative.new({"key": new_key()}))
    _started(log, job.id)
    controller = make_engine(node="dashboard")
    with conn.transaction():
        assert controller.cancel_job(job.id, conn=conn) is True
        assert not done(job.args["key"]).wait(0.2)  # not committed: nobody was told yet
        assert SEEN[job.args["key"]].get("cancelled") is None
    _check_cancelled_run(eng, log, job, within=1.0)


@pytest.mark.parametrize("poll_interval", [0.2, 30.0])
def test_missed_cancel_notification_is_caught_by_the_ownership_check(make_engine, conn, prefix, poll_interval) -> None:  # type: ignore[no-untyped-def]
    # a cancel written straight to the row sends no notification at all
    eng, log = start_node(make_engine, {Q: 2}, poll_interval=poll_interval)
    job = eng.insert(Cooperative.new({"key": new_key()}))
    _started(log, job.id)
    set_row(conn, prefix, job.id, state="cancelled")
    # the README promises a one-second check as fallback, whatever the poll interval
    _check_cancelled_run(eng, log, job, within=producer_mod.LOST_CHECK_INTERVAL * 3)


def test_cancel_jobs_that_are_not_running(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    eng.pause_queue(Q, wait=30)
    waiting = eng.insert(Quick.new({"key": new_key()}))
    later = eng.insert(Quick.new({"key": new_key()}, schedule_in=3600))
    assert eng.cancel_jobs([waiting.id, later.id, 10**12]) == [waiting.id, later.id]
    eng.resume_queue(Q, wait=30)
    probe = eng.insert(Quick.new({"key": new_key()}))
    wait_state(eng, probe.id, JobState.COMPLETED)
    for job_id in (waiting.id, later.id):
        row = eng.get_job(job_id)
        assert row.state is JobState.CANCELLED and row.attempt == 0 and row.attempted_at is None


def test_cancel_finished_jobs_returns_false(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Quick.new({"key": new_key()}))
    testing.drain(eng, Q)
    assert eng.cancel_job(job.id) is False
    assert eng.get_job(job.id).state is JobState.COMPLETED
    assert eng.cancel_job(10**12) is False


def test_timeout_fails_the_attempt_and_the_late_return_changes_nothing(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(SlowCooperative.new({"key": new_key()}))
    row = wait_end(eng, log, job.id, kinds=["timeout"])
    assert testing.flush(eng, 5)
    row = eng.get_job(job.id)
    assert row.state is JobState.RETRYABLE
    (entry,) = row.errors
    assert entry["error"] == "TimeoutError: perform ran past its timeout of 0.3s"
    assert entry["attempt"] == 1
    assert 17 * 0.9 <= (row.scheduled_at - row.attempted_at).total_seconds()
    # perform was told: job.cancelled() turned true, and its late return is ignored
    row = _settled(eng, job)
    assert SEEN[job.args["key"]]["cancelled"] is True
    assert row.state is JobState.RETRYABLE and row.result is None and len(row.errors) == 1
    kinds = [e.kind for e in events_of(log, job.id)]
    assert kinds == ["start", "timeout", "failure"]
    (failure,) = events_of(log, job.id, ["failure"])
    assert isinstance(failure.error, TimeoutError)
    assert eng.counters["stale_acks"] == 0


def test_timeout_on_the_last_attempt_discards(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(SlowCooperative.new({"key": new_key()}, max_attempts=1))
    wait_end(eng, log, job.id, kinds=["timeout"])
    row = _settled(eng, job)
    assert row.state is JobState.DISCARDED
    assert row.errors[0]["error"].startswith("TimeoutError")


def test_a_job_done_in_time_is_not_timed_out(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(QuickTimed.new({"key": new_key()}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.COMPLETED and row.result == "in time"
    assert not events_of(log, job.id, ["timeout"])


def test_timed_out_thread_keeps_its_slot_until_it_returns(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 1})
    stuck = eng.insert(Stuck.new({"key": new_key()}))
    wait_end(eng, log, stuck.id, kinds=["timeout"])
    assert eng.get_job(stuck.id).state is JobState.RETRYABLE
    waiting = eng.insert(Quick.new({"key": new_key()}))
    # The stuck thread still runs, so the queue's only slot is taken: the producer, woken by the
    # insert and polling every 0.2 s, must leave the next job alone for as long as it runs.
    assert eng._producers[Q].running_count() == 1
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:
        assert eng.get_job(waiting.id).state is JobState.AVAILABLE
        time.sleep(0.05)
    gate(stuck.args["key"]).set()
    assert wait_state(eng, waiting.id, JobState.COMPLETED).result == "quick"
    row = _settled(eng, stuck)
    assert SEEN[stuck.args["key"]]["cancelled"] is True
    assert row.state is JobState.RETRYABLE and row.result is None


def test_cancel_before_the_timeout_wins(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Stuck.new({"key": new_key()}))
    _started(log, job.id)
    assert eng.cancel_job(job.id)
    gate(job.args["key"]).set()
    row = _settled(eng, job)
    assert row.state is JobState.CANCELLED and row.errors == []
    assert not events_of(log, job.id, ["timeout", "failure"])
