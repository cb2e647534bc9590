"""Job control: get_job, cancel_job, retry_job and delete_job move jobs only along the transitions
written down in engine/_states.py, and say whether they did."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import TRANSITIONS, JobNotFound, JobState, Worker, testing
from engine._states import DELETABLE, FINAL_STATES, RETRYABLE_BY_HAND, can_move
from tests.engine._support import count_jobs, db_now, events_of, set_row, start_node, wait_end

Q = "control"
S = JobState


class Once(Worker, queue=Q, max_attempts=1):
    def perform(self, job):  # type: ignore[no-untyped-def]
        if job.args.get("fail"):
            raise RuntimeError("failed once")
        return {"attempt": job.attempt}


def test_the_transition_table_is_what_the_issue_promises() -> None:
    # a finished job only ever leaves by a retry: to available, or held again for a workflow step
    # whose dependencies must complete first
    for final in FINAL_STATES:
        for target in JobState:
            if target not in (S.AVAILABLE, S.HELD):
                assert not can_move(final, target), (final, target)
    assert TRANSITIONS[S.EXECUTING] == {S.AVAILABLE}  # only a fetch starts an execution
    assert TRANSITIONS[S.HELD] == RETRYABLE_BY_HAND  # inserted held, or a workflow step retried early
    assert RETRYABLE_BY_HAND <= TRANSITIONS[S.AVAILABLE]
    assert DELETABLE == set(JobState) - {S.EXECUTING}
    assert S.COMPLETED not in TRANSITIONS[S.CANCELLED]
    for outcome in (S.COMPLETED, S.RETRYABLE, S.DISCARDED, S.CANCELLED, S.SCHEDULED):
        assert can_move(S.EXECUTING, outcome)


def _job_in(eng, conn, prefix, state: JobState):  # type: ignore[no-untyped-def]
    job = eng.insert(Once.new({}))
    if state is S.EXECUTING:
        (job,) = testing.fetch(eng, Q, 1)
    elif state is not S.AVAILABLE:
        set_row(conn, prefix, job.id, state=state.value, attempt=1)
    return job


@pytest.mark.parametrize("state", list(JobState))
def test_cancel_follows_the_table(make_engine, conn, prefix, state) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = _job_in(eng, conn, prefix, state)
    allowed = can_move(state, S.CANCELLED)
    assert eng.cancel_job(job.id) is allowed
    row = eng.get_job(job.id)
    if allowed:
        assert row.state is S.CANCELLED and row.cancelled_at is not None
    else:
        assert row.state is state and row.cancelled_at is None


@pytest.mark.parametrize("state", list(JobState))
def test_retry_follows_the_table(make_engine, conn, prefix, state) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = _job_in(eng, conn, prefix, state)
    set_row(conn, prefix, job.id, scheduled_at=db_now(conn) + timedelta(hours=1))
    allowed = state in RETRYABLE_BY_HAND
    assert allowed == (can_move(state, S.AVAILABLE) and state not in (S.EXECUTING, S.HELD))
    before = db_now(conn)
    assert eng.retry_job(job.id) is allowed
    row = eng.get_job(job.id)
    if allowed:
        assert row.state is S.AVAILABLE
        assert before <= row.scheduled_at <= db_now(conn)
        assert row.completed_at is None and row.cancelled_at is None and row.discarded_at is None
        assert row.max_attempts >= row.attempt + 1
    else:
        assert row.state is state
        assert row.scheduled_at > db_now(conn)


@pytest.mark.parametrize("state", list(JobState))
def test_delete_follows_the_table(make_engine, conn, prefix, state) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = _job_in(eng, conn, prefix, state)
    allowed = state in DELETABLE
    assert eng.delete_job(job.id) is allowed
    if allowed:
        with pytest.raises(JobNotFound, match=str(job.id)):
            eng.get_job(job.id)
    else:
        assert eng.get_job(job.id).state is state


def test_get_job_and_get_jobs(make_engine, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    a = eng.insert(Once.new({"n": 1}, tags=["x", "y"], priority=3))
    b = eng.insert(Once.new({"n": 2}))
    row = eng.get_job(a.id)
    assert (row.id, row.state, row.queue, row.worker) == (a.id, S.AVAILABLE, Q, Once.name)
    assert (row.args, row.tags, row.priority, row.attempt, row.max_attempts) == ({"n": 1}, ["x", "y"], 3, 0, 1)
    assert row.inserted_at == a.inserted_at and row.scheduled_at == a.scheduled_at
    assert [j.id for j in eng.get_jobs([b.id, 10**12, a.id])] == [a.id, b.id]
    with pytest.raises(JobNotFound, match=prefix):
        eng.get_job(10**12)
    assert isinstance(JobNotFound("x"), LookupError)


def test_retry_gives_an_exhausted_job_one_more_attempt(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Once.new({"fail": True}))
    assert testing.drain(eng, Q) == {"discarded": 1}
    assert eng.retry_job(job.id) is True
    row = eng.get_job(job.id)
    assert (row.state, row.attempt, row.max_attempts) == (S.AVAILABLE, 1, 2)
    assert testing.drain(eng, Q) == {"discarded": 1}  # still failing: attempt 2 of 2
    row = eng.get_job(job.id)
    assert [e["attempt"] for e in row.errors] == [1, 2]


def test_retry_wakes_a_node_by_notification(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Once.new({}))
    testing.drain(eng, Q)
    assert eng.get_job(job.id).state is S.COMPLETED
    # a poll every 30 s: a quick pickup can only come from the notification the retry sends
    node, log = start_node(make_engine, {Q: 1}, poll_interval=30.0)
    assert node._notifier is not None and node._notifier.connected.wait(5)
    assert eng.retry_job(job.id) is True
    row = wait_end(node, log, job.id, timeout=5)
    assert row.state is S.COMPLETED and row.result == {"attempt": 2}


def test_bulk_control_returns_the_ids_it_changed(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    jobs = eng.insert_all([Once.new({"n": i}) for i in range(4)])
    ids = [j.id for j in jobs]
    assert sorted(eng.cancel_jobs(ids[:2] + [10**12])) == ids[:2]
    assert sorted(eng.retry_jobs(ids)) == ids[:2]
    assert sorted(eng.delete_jobs(ids[1:3])) == ids[1:3]
    assert [j.id for j in eng.get_jobs(ids)] == [ids[0], ids[3]]
    assert eng.cancel_jobs([]) == [] and eng.retry_jobs([]) == [] and eng.delete_jobs([]) == []


def test_insert_inside_a_callers_transaction(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    node, log = start_node(make_engine, {Q: 1})
    with pytest.raises(RuntimeError, match="rolled back"), conn.transaction():
        node.insert(Once.new({"n": "gone"}), conn=conn)
        raise RuntimeError("rolled back")
    assert count_jobs(conn, prefix) == 0
    with conn.transaction():
        job = node.insert(Once.new({"n": "kept"}), conn=conn)
        assert not events_of(log, job.id)  # not committed: not visible, not run
    row = wait_end(node, log, job.id)
    assert row.state is S.COMPLETED
