"""Compare-and-set acks: an outcome is recorded only while the row is still executing the same
attempt on the same node; a stale ack changes nothing and is counted and announced."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

import engine._producer as producer_mod
from engine import JobState, Worker, testing
from engine._runner import Outcome, run_job
from tests.engine._support import events_of, set_row, start_node, wait_state
from tests.helpers import EventLog, wait_for

Q = "acks"
GATES: dict[str, threading.Event] = {}


def gate(key: str) -> threading.Event:
    return GATES.setdefault(key, threading.Event())


class Quick(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return {"done": job.args.get("n")}


class Gated(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        gate(job.args["key"]).wait(10)
        return {"late": True}


def _row(conn, prefix, job_id):  # type: ignore[no-untyped-def]
    from psycopg import sql
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT * FROM {}.lysmore_jobs WHERE id = %s").format(sql.Identifier(prefix)),
            [job_id],
        )
        return cur.fetchone()


def _acking_engine(make_engine):  # type: ignore[no-untyped-def]
    """A started engine with no queues: its acker records what a test hands it."""
    eng = make_engine()
    log = EventLog()
    eng.subscribe(log, kinds=["stale_ack"])
    eng.start()
    return eng, log


def _change_cancel(eng, conn, prefix, job_id) -> None:  # type: ignore[no-untyped-def]
    assert eng.cancel_job(job_id)


def _change_attempt(eng, conn, prefix, job_id) -> None:  # type: ignore[no-untyped-def]
    set_row(conn, prefix, job_id, attempt=2)


def _change_node(eng, conn, prefix, job_id) -> None:  # type: ignore[no-untyped-def]
    set_row(conn, prefix, job_id, node_id=uuid.uuid4())


def _change_released(eng, conn, prefix, job_id) -> None:  # type: ignore[no-untyped-def]
    set_row(conn, prefix, job_id, state="available", node_id=None)


def _change_deleted(eng, conn, prefix, job_id) -> None:  # type: ignore[no-untyped-def]
    set_row(conn, prefix, job_id, state="available")
    assert eng.delete_job(job_id)


@pytest.mark.parametrize(
    "change", [_change_cancel, _change_attempt, _change_node, _change_released, _change_deleted]
)
@pytest.mark.parametrize("state", [JobState.COMPLETED, JobState.RETRYABLE, JobState.DISCARDED,
                                   JobState.CANCELLED, JobState.SCHEDULED])
def test_stale_ack_changes_nothing_and_is_counted(make_engine, conn, prefix, change, state) -> None:  # type: ignore[no-untyped-def]
    eng, log = _acking_engine(make_engine)
    job = eng.insert(Quick.new({"n": 1}))
    (fetched,) = testing.fetch(eng, Q, 1)
    change(eng, conn, prefix, job.id)
    before = _row(conn, prefix, job.id)
    outcome = Outcome(fetched, state, delay=5.0, result={"stale": True},
                      error={"attempt": 1, "error": "stale", "traceback": None})
    assert testing.record(eng, [outcome]) == [outcome]  # nothing hit
    assert _row(conn, prefix, job.id) == before
    eng._acker.add(outcome)
    assert eng._acker.flush(5)
    assert _row(conn, prefix, job.id) == before
    assert eng.counters["stale_acks"] == 1
    (event,) = log.events
    assert event.kind == "stale_ack" and event.job.id == job.id
    reason = {_change_cancel: "cancelled", _change_deleted: "deleted"}.get(change, "rescued")
    assert event.detail == {"state": state.value, "reason": reason}


def test_only_the_stale_outcome_of_a_batch_is_refused(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, log = _acking_engine(make_engine)
    eng.insert_all([Quick.new({"n": i}) for i in range(3)])
    jobs = testing.fetch(eng, Q, 3)
    assert len(jobs) == 3
    set_row(conn, prefix, jobs[1].id, node_id=uuid.uuid4())
    for job in jobs:
        eng._acker.add(run_job(job))
    assert eng._acker.flush(5)
    states = [eng.get_job(j.id).state for j in jobs]
    assert states == [JobState.COMPLETED, JobState.EXECUTING, JobState.COMPLETED]
    assert eng.counters["stale_acks"] == 1
    assert eng.counters["acked"] == 2
    assert [e.job.id for e in log.events] == [jobs[1].id]


def test_the_new_attempt_wins_over_the_old_one(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Quick.new({"n": 7}))
    (first,) = testing.fetch(eng, Q, 1)
    set_row(conn, prefix, job.id, state="available", node_id=None)  # rescued, say
    (second,) = testing.fetch(eng, Q, 1)
    assert (first.attempt, second.attempt) == (1, 2)
    old = Outcome(first, JobState.COMPLETED, result={"from": "attempt 1"})
    new = Outcome(second, JobState.COMPLETED, result={"from": "attempt 2"})
    assert testing.record(eng, [old]) == [old]
    assert testing.record(eng, [new]) == []
    assert testing.record(eng, [old]) == [old]  # and never after it either
    row = eng.get_job(job.id)
    assert row.state is JobState.COMPLETED and row.result == {"from": "attempt 2"}


@pytest.mark.parametrize("plain", [True, False], ids=["plain completions", "with results"])
@pytest.mark.parametrize("order", ["old first", "new first"])
def test_both_attempts_in_one_batch_the_new_one_wins(make_engine, conn, prefix, order, plain) -> None:  # type: ignore[no-untyped-def]
    """The ack statements take each row's outcome by the position of its id; a batch holding the
    outcomes of an old and a new attempt of one job is recorded in parts (one id once a part)."""
    eng = make_engine()
    job = eng.insert(Quick.new({"n": 7}))
    other = eng.insert(Quick.new({"n": 8}))
    (first,) = testing.fetch(eng, Q, 1)
    set_row(conn, prefix, job.id, state="available", node_id=None)  # rescued, say
    second, third = testing.fetch(eng, Q, 2)
    assert (first.id, second.id, third.id) == (job.id, job.id, other.id)
    result = None if plain else {"from": "attempt 2"}
    old = Outcome(first, JobState.COMPLETED, result=None if plain else {"from": "attempt 1"})
    new = Outcome(second, JobState.COMPLETED, result=result)
    both = [old, Outcome(third, JobState.COMPLETED), new] if order == "old first" else [new, old, Outcome(third, JobState.COMPLETED)]
    testing.record(eng, both)  # (what it returns goes by job id: both outcomes share one)
    row = eng.get_job(job.id)
    assert row.state is JobState.COMPLETED and row.attempt == 2 and row.result == result
    assert eng.get_job(other.id).state is JobState.COMPLETED


def test_each_outcome_of_a_batch_lands_on_its_own_row(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    eng.insert_all([Quick.new({"n": i}) for i in range(5)])
    jobs = testing.fetch(eng, Q, 5)
    outcomes = [
        Outcome(jobs[3], JobState.RETRYABLE, delay=60.0, error={"attempt": 1, "error": "three", "traceback": None}),
        Outcome(jobs[0], JobState.COMPLETED, result={"n": 0}),
        Outcome(jobs[4], JobState.DISCARDED, error={"attempt": 1, "error": "four", "traceback": None}),
        Outcome(jobs[2], JobState.CANCELLED, error={"attempt": 1, "error": "two", "traceback": None}),
        Outcome(jobs[1], JobState.COMPLETED, result={"n": 1}),
    ]
    assert testing.record(eng, outcomes) == []
    rows = {j.id: eng.get_job(j.id) for j in jobs}
    got = [(rows[j.id].state, rows[j.id].result, [e["error"] for e in rows[j.id].errors]) for j in jobs]
    assert got == [
        (JobState.COMPLETED, {"n": 0}, []),
        (JobState.COMPLETED, {"n": 1}, []),
        (JobState.CANCELLED, None, ["two"]),
        (JobState.RETRYABLE, None, ["three"]),
        (JobState.DISCARDED, None, ["four"]),
    ]


def test_drain_queue_counts_a_stale_ack(make_engine, conn, prefix, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Quick.new({"n": 1}))
    real_run_job = run_job

    def run_then_lose(j, *args):  # type: ignore[no-untyped-def]
        outcome = real_run_job(j, *args)
        set_row(conn, prefix, j.id, node_id=uuid.uuid4())
        return outcome

    monkeypatch.setattr("engine.testing.run_job", run_then_lose)
    assert testing.drain(eng, Q) == {"stale": 1}
    assert eng.get_job(job.id).state is JobState.EXECUTING
    assert eng.counters["stale_acks"] == 1


def test_stale_ack_through_a_running_node(make_engine, conn, prefix, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The one-second ownership check would interrupt the execution first; switch it off so the
    # late return reaches the acker, as it would when the row moves between two checks.
    monkeypatch.setattr(producer_mod, "LOST_CHECK_INTERVAL", 3600.0)
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Gated.new({"key": uuid.uuid4().hex}))
    log.wait(lambda evs: any(e.kind == "start" and e.job.id == job.id for e in evs))
    other = uuid.uuid4()
    set_row(conn, prefix, job.id, node_id=other, attempt=2)  # another node owns it now
    before = _row(conn, prefix, job.id)
    gate(job.args["key"]).set()
    log.wait(lambda evs: any(e.kind == "stale_ack" and e.job.id == job.id for e in evs))
    assert eng.counters["stale_acks"] == 1
    assert _row(conn, prefix, job.id) == before
    kinds = [e.kind for e in events_of(log, job.id)]
    assert kinds == ["start", "success", "stale_ack"]
    # the node goes on acking other jobs
    fine = eng.insert(Quick.new({"n": 2}))
    assert wait_state(eng, fine.id, JobState.COMPLETED).result == {"done": 2}


def test_a_retried_ack_whose_first_try_committed_is_not_stale(make_engine) -> None:  # type: ignore[no-untyped-def]
    """The commit's answer was lost: the acker tries again and finds its own outcome there."""
    eng, log = _acking_engine(make_engine)
    eng.insert(Quick.new({"n": 1}))
    (fetched,) = testing.fetch(eng, Q, 1)
    outcome = run_job(fetched)
    assert testing.record(eng, [outcome]) == []  # the first try committed ...
    eng._acker.add(outcome)  # ... and its answer never came back, so the acker tries again
    assert eng._acker.flush(5)
    assert eng.counters["stale_acks"] == 0
    assert not log.events


def test_the_late_outcome_of_a_rescued_job_is_a_stale_ack_not_a_cancel(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Gated.new({"key": "rescued"}))
    log.wait(lambda evs: any(e.kind == "start" for e in evs))
    # A rescuer gave it back (to run later, so this node does not take it again meanwhile).
    set_row(conn, prefix, job.id, state="scheduled", node_id=None, scheduled_at=datetime.now(UTC) + timedelta(hours=1))
    wait_for(lambda: eng._producers[Q].snapshot()[0].taken, what="the node to notice")
    gate("rescued").set()
    log.wait(lambda evs: any(e.kind == "stale_ack" for e in evs))
    (event,) = events_of(log, job.id, ["stale_ack"])
    assert event.detail == {"state": "completed", "reason": "rescued"}
    assert not events_of(log, job.id, ["cancel"])
    assert eng.counters["stale_acks"] == 1
    assert eng.get_job(job.id).state is JobState.SCHEDULED


def test_a_job_finishing_while_the_lost_check_reads_is_not_taken_for_rescued(make_engine, caplog) -> None:  # type: ignore[no-untyped-def]
    """The check reads the rows of unfinished runs; one may finish and be recorded meanwhile. Its
    row then shows its own outcome, which is no rescue: nothing is interrupted or refused."""
    eng = make_engine(queues={Q: 1})
    eng.insert(Quick.new({"n": 1}))
    (claimed,) = testing.fetch(eng, Q, 1)
    producer = testing.producer(eng, eng.queues[Q])
    run = producer_mod.Running(claimed)
    producer.running[claimed.id] = run
    real = eng.store.lost

    def finishing_meanwhile(ids, attempts):  # type: ignore[no-untyped-def]
        assert run.claim()  # the job's thread finishes ...
        assert testing.record(eng, [run_job(claimed)]) == []  # ... and its outcome is written
        return real(ids, attempts)

    eng.store.lost = finishing_meanwhile
    producer._check_lost()
    assert not run.taken
    assert "rescued" not in caplog.text
    assert eng.get_job(claimed.id).state is JobState.COMPLETED
