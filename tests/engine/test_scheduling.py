"""Scheduling and order: future jobs wait as scheduled until the stager makes them available;
fetch order is priority, then scheduled_at, then id; fetch never takes more than asked;
drain_queue runs jobs synchronously."""

from __future__ import annotations

import threading
from datetime import timedelta

from psycopg import sql

from engine import JobState, Worker, testing
from tests.engine._support import db_now, events_of, start_node, wait_end, wait_state
from tests.helpers import EventLog, wait_for

Q = "sched"
ORDER: list[int] = []
ORDER_LOCK = threading.Lock()


class Record(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        with ORDER_LOCK:
            ORDER.append(job.args["n"])
        return job.args["n"]


class Fails(Worker, queue=Q, max_attempts=2):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise RuntimeError("nope")


def _reset() -> None:
    with ORDER_LOCK:
        ORDER.clear()


def test_schedule_in_waits_then_the_stager_runs_it(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Record.new({"n": 1}, schedule_in=0.5))
    assert job.state is JobState.SCHEDULED
    # both times come from one now(): exactly half a second apart
    assert job.scheduled_at - job.inserted_at == timedelta(seconds=0.5)
    assert eng.get_job(job.id).state is JobState.SCHEDULED
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.COMPLETED
    assert row.attempted_at is not None and row.attempted_at >= row.scheduled_at


def test_scheduled_at_waits_then_runs(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    when = db_now(conn) + timedelta(seconds=0.5)
    job = eng.insert(Record.new({"n": 2}, scheduled_at=when))
    assert job.state is JobState.SCHEDULED
    assert job.scheduled_at == when
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.COMPLETED
    assert row.attempted_at is not None and row.attempted_at >= when


def test_scheduled_at_in_the_past_is_available_at_once(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    past = db_now(conn) - timedelta(hours=1)
    job = eng.insert(Record.new({"n": 3}, scheduled_at=past))
    assert job.state is JobState.AVAILABLE
    assert eng.get_job(job.id).scheduled_at == past
    assert eng.insert(Record.new({"n": 4}, schedule_in=0)).state is JobState.AVAILABLE


def test_priority_then_scheduled_at_then_id(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    _reset()
    eng = make_engine()
    now = db_now(conn)
    specs = [
        Record.new({"n": 1}, priority=5),
        Record.new({"n": 2}, priority=9),
        Record.new({"n": 3}, priority=0, scheduled_at=now - timedelta(seconds=10)),
        Record.new({"n": 4}, priority=0, scheduled_at=now - timedelta(seconds=30)),
        Record.new({"n": 5}, priority=5, scheduled_at=now - timedelta(seconds=5)),
        Record.new({"n": 6}, priority=0, scheduled_at=now - timedelta(seconds=30)),
        Record.new({"n": 7}, priority=9, scheduled_at=now - timedelta(seconds=1)),
    ]
    for spec in specs:
        eng.insert(spec)
    assert testing.drain(eng, Q) == {"completed": 7}
    # p0: 4 and 6 share a time (4 has the lower id), then 3; p5: 5 (older) then 1; p9: 7 then 2
    assert ORDER == [4, 6, 3, 5, 1, 7, 2]


def test_paused_queue_resumed_runs_in_priority_order(make_engine) -> None:  # type: ignore[no-untyped-def]
    _reset()
    eng = make_engine(queues={Q: 1})
    eng.pause_queue(Q, wait=0)  # persisted: the node starts paused
    log = EventLog()
    eng.subscribe(log, kinds=["success"])
    eng.start()
    ids = [eng.insert(Record.new({"n": p}, priority=p)).id for p in (9, 3, 0, 7, 3, 1)]
    result = eng.resume_queue(Q, wait=30)
    assert result.acked == [eng.node_name]
    log.wait(lambda evs: len(evs) == 6)
    assert ORDER == [0, 1, 3, 3, 7, 9]
    by_id = [e.job.id for e in log.events]
    assert by_id.index(ids[1]) < by_id.index(ids[4])  # equal priority: lower id first


def test_paused_queue_fetches_nothing(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={Q: 2})
    eng.start()
    result = eng.pause_queue(Q, wait=30)
    assert result.acked == [eng.node_name] and result.pending == []
    job = eng.insert(Record.new({"n": 1}))
    # the node has acknowledged the pause; a notified, polling producer leaves the job alone
    assert eng._producers[Q].paused
    assert eng.get_job(job.id).state is JobState.AVAILABLE
    eng.resume_queue(Q, wait=30)
    assert wait_state(eng, job.id, JobState.COMPLETED).result == 1


def test_fetch_never_takes_more_than_asked(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    ids = [j.id for j in eng.insert_all([Record.new({"n": i}, priority=9 - i) for i in range(10)])]
    got = testing.fetch(eng, Q, 3)
    assert [j.id for j in got] == ids[::-1][:3]  # highest priority first (lowest number)
    for job in got:
        row = eng.get_job(job.id)
        assert row.state is JobState.EXECUTING and row.attempt == 1 and row.node_id == eng.node_id
    assert len(testing.fetch(eng, Q, 100)) == 7
    assert testing.fetch(eng, Q, 5) == []


def test_concurrent_fetches_never_share_a_job(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(pool_size=8)
    eng.insert_all([Record.new({"n": i}) for i in range(40)])
    got: list[list[int]] = []
    lock = threading.Lock()
    gate = threading.Barrier(6)

    def grab() -> None:
        gate.wait()
        mine = []
        while batch := testing.fetch(eng, Q, 3):
            assert len(batch) <= 3
            mine.extend(j.id for j in batch)
        with lock:
            got.append(mine)

    threads = [threading.Thread(target=grab) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    flat = [i for mine in got for i in mine]
    assert len(flat) == 40 and len(set(flat)) == 40


def test_drain_queue_counts_and_skips_future_jobs(make_engine) -> None:  # type: ignore[no-untyped-def]
    _reset()
    eng = make_engine()
    eng.insert_all([Record.new({"n": i}) for i in range(3)])
    later = eng.insert(Record.new({"n": 99}, schedule_in=3600))
    failing = eng.insert(Fails.new({}))
    assert testing.drain(eng, Q) == {"completed": 3, "retryable": 1}
    assert eng.get_job(later.id).state is JobState.SCHEDULED
    assert eng.get_job(failing.id).state is JobState.RETRYABLE
    assert testing.drain(eng, Q) == {}
    # with_scheduled: the future job runs now, and the failed one runs out of attempts
    assert testing.drain(eng, Q, with_scheduled=True) == {"completed": 1, "discarded": 1}
    assert eng.get_job(later.id).state is JobState.COMPLETED
    assert eng.get_job(failing.id).state is JobState.DISCARDED
    assert sorted(ORDER) == [0, 1, 2, 99]


def test_drain_queue_limit_and_other_queues(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    eng.insert_all([Record.new({"n": i}) for i in range(5)])
    other = eng.insert(Record.new({"n": 100}, queue="elsewhere"))
    assert testing.drain(eng, Q, limit=2) == {"completed": 2}
    assert testing.drain(eng, Q) == {"completed": 3}
    assert eng.get_job(other.id).state is JobState.AVAILABLE
    assert testing.drain(eng, "elsewhere") == {"completed": 1}


def test_events_of_a_scheduled_job_start_after_it_is_due(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Record.new({"n": 5}, schedule_in=0.3))
    row = wait_end(eng, log, job.id)
    kinds = [e.kind for e in events_of(log, job.id)]
    assert kinds == ["start", "success"]
    assert row.state is JobState.COMPLETED


def test_control_missed_while_not_listening_is_read_on_reconnect(make_engine, conn, prefix, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A pause written while the listener was away sends nothing this node hears; with the periodic
    # settings refresh out of the way, only the catch-up on (re)connect can apply it.
    monkeypatch.setattr("engine._producer.SETTINGS_REFRESH_INTERVAL", 3600.0)
    eng = make_engine(queues={Q: 2})
    eng.start()
    wait_for(lambda: eng._notifier is not None and eng._notifier.connected.is_set(), 10, "the listener")
    conn.execute(
        sql.SQL("INSERT INTO {}.lysmore_queue_settings (queue, node, paused) VALUES (%s, '*', true)").format(
            sql.Identifier(prefix)), [Q])
    eng._catch_up()  # what the listener runs when it (re)connects
    wait_for(lambda: eng._producers[Q].paused, 10, "the pause read on catch-up")
