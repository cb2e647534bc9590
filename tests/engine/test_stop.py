"""Graceful stop: fetching stops at once, running jobs get one grace period, and what is left is
released to available with its attempt restored; the node's row is removed."""

from __future__ import annotations

import threading
import uuid

import pytest
from psycopg import sql

from engine import JobState, Worker
from tests.engine._support import set_row, start_node, wait_end, wait_state
from tests.helpers import EventLog, wait_for

Q = "stopping"
GATES: dict[str, threading.Event] = {}
DONE: dict[str, threading.Event] = {}
SAW_CANCEL: dict[str, bool] = {}


def _event(table: dict[str, threading.Event], key: str) -> threading.Event:
    return table.setdefault(key, threading.Event())


class Gated(Worker, queue=Q):
    """Finishes when the test opens its gate."""

    def perform(self, job):  # type: ignore[no-untyped-def]
        key = job.args["key"]
        _event(GATES, key).wait(10)
        _event(DONE, key).set()
        return "finished"


class Long(Worker, queue=Q):
    """Runs until told to stop (released at the end of the grace period)."""

    def perform(self, job):  # type: ignore[no-untyped-def]
        key = job.args["key"]
        SAW_CANCEL[key] = job.wait_cancelled(10)
        _event(DONE, key).set()
        return "too late"


class Quick(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return "quick"


def _key() -> str:
    return uuid.uuid4().hex


def _node_rows(conn, prefix: str, eng) -> int:  # type: ignore[no-untyped-def]
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.lysmore_nodes WHERE id = %s").format(sql.Identifier(prefix)),
        [eng.node_id],
    ).fetchone()
    return int(row[0])


def _stop_in_thread(eng, grace: float) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=eng.stop, args=(grace,), daemon=True)
    thread.start()
    return thread


def _wait_started(log: EventLog, n: int) -> None:
    log.wait(lambda evs: sum(e.kind == "start" for e in evs) >= n)


def test_short_jobs_finish_within_the_grace(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 3})
    assert _node_rows(conn, prefix, eng) == 1
    jobs = [eng.insert(Gated.new({"key": _key()})) for _ in range(3)]
    _wait_started(log, 3)
    stopper = _stop_in_thread(eng, 10.0)
    wait_for(lambda: not eng._producers[Q]._fetching, what="fetching to stop")
    late = eng.insert(Quick.new({}))  # inserted after the stop began: never fetched
    for job in jobs:
        _event(GATES, job.args["key"]).set()
    stopper.join(15)
    assert not stopper.is_alive()
    for job in jobs:
        row = eng.get_job(job.id)
        assert row.state is JobState.COMPLETED and row.result == "finished"
    row = eng.get_job(late.id)
    assert row.state is JobState.AVAILABLE and row.attempt == 0
    assert eng.counters["released"] == 0
    assert _node_rows(conn, prefix, eng) == 0


def test_jobs_longer_than_the_grace_are_released(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    jobs = [eng.insert(Long.new({"key": _key()})) for _ in range(2)]
    _wait_started(log, 2)
    for job in jobs:
        assert eng.get_job(job.id).attempt == 1
    stopper = _stop_in_thread(eng, 0.3)
    stopper.join(15)
    assert not stopper.is_alive(), "stop() must be bounded"
    for job in jobs:
        row = eng.get_job(job.id)
        assert row.state is JobState.AVAILABLE
        assert row.attempt == 0  # the attempt it used is given back
        assert row.node_id is None
        assert row.errors == [] and row.result is None
    assert eng.counters["released"] == 2
    assert _node_rows(conn, prefix, eng) == 0
    # perform was told to stop, and its late return changes nothing
    for job in jobs:
        key = job.args["key"]
        assert _event(DONE, key).wait(5)
        assert SAW_CANCEL[key] is True
    for job in jobs:
        row = eng.get_job(job.id)
        assert row.state is JobState.AVAILABLE and row.result is None


def test_released_job_keeps_its_earlier_attempts_and_runs_elsewhere(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 1}, node="first")
    eng.pause_queue(Q, wait=30)
    job = eng.insert(Long.new({"key": _key()}))
    set_row(conn, prefix, job.id, attempt=2)  # two attempts already used
    eng.resume_queue(Q, wait=30)
    _wait_started(log, 1)
    assert eng.get_job(job.id).attempt == 3
    eng.stop(0.1)
    row = eng.get_job(job.id)
    assert (row.state, row.attempt, row.node_id) == (JobState.AVAILABLE, 2, None)
    _event(DONE, job.args["key"]).wait(5)
    # another node takes it over: attempt 3 again, and this time it finishes
    other, other_log = start_node(make_engine, {Q: 1}, node="second")
    other_log.wait(lambda evs: any(e.kind == "start" and e.job.id == job.id for e in evs))
    assert other.cancel_job(job.id)  # ends it quickly: Long stops when told
    row = wait_end(other, other_log, job.id, kinds=["cancel"])
    assert row.attempt == 3 and row.attempted_by == ["second", str(other.node_id)]


def test_mixed_stop_completes_the_quick_and_releases_the_slow(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    quick = eng.insert(Gated.new({"key": _key()}))
    slow = eng.insert(Long.new({"key": _key()}))
    _wait_started(log, 2)
    stopper = _stop_in_thread(eng, 1.0)
    wait_for(lambda: not eng._producers[Q]._fetching, what="fetching to stop")
    _event(GATES, quick.args["key"]).set()
    stopper.join(15)
    assert eng.get_job(quick.id).state is JobState.COMPLETED
    row = eng.get_job(slow.id)
    assert row.state is JobState.AVAILABLE and row.attempt == 0
    assert eng.counters["released"] == 1


def test_stop_is_idempotent_and_an_engine_starts_once(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, _log = start_node(make_engine, {Q: 1})
    eng.stop(0)
    eng.stop(0)
    assert _node_rows(conn, prefix, eng) == 0
    with pytest.raises(RuntimeError, match="already started"):
        eng.start()
    never = make_engine()
    never.stop()  # never started: nothing to do, no error


def test_context_manager_starts_and_stops(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={Q: 1}, shutdown_grace=0.2)
    with eng:
        job = eng.insert(Quick.new({}))
        assert wait_state(eng, job.id, JobState.COMPLETED).result == "quick"
        assert _node_rows(conn, prefix, eng) == 1
    assert _node_rows(conn, prefix, eng) == 0


def test_two_nodes_with_one_name_are_two_identities(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    first, _ = start_node(make_engine, {Q: 1}, node="same-name")
    second, _ = start_node(make_engine, {Q: 1}, node="same-name")
    assert first.node_id != second.node_id
    assert _node_rows(conn, prefix, first) == 1 and _node_rows(conn, prefix, second) == 1
    first.stop(0)
    assert _node_rows(conn, prefix, first) == 0
    assert _node_rows(conn, prefix, second) == 1  # stopping one never removes the other
    job = second.insert(Quick.new({}))
    row = wait_state(second, job.id, JobState.COMPLETED)
    assert row.attempted_by == ["same-name", str(second.node_id)]
