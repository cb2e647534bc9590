"""Under a global limit, a node records its finished jobs in the fetch that reuses their slots.

The outcomes and the fetch share one transaction under the queue's lock, so the slots are free
for that fetch and no reader sees more jobs executing than the limit. These tests hold the
outcomes that wait for a fetch to the same promises the acker keeps: recorded once, stale ones
refused and announced, never lost on pause, stop or a limit that goes away, and never taken for
lost by the reconciler.
"""

from __future__ import annotations

import logging

from psycopg import sql

from engine import Worker, testing
from engine._queues import QueueConfig, parse_queue
from engine._runner import run_job
from tests.engine._support import set_row, start_node
from tests.helpers import EventLog, wait_for

Q = "limited"


class Quick(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return {"n": job.args["n"]}


def _states(conn, prefix, ids):  # type: ignore[no-untyped-def]
    rows = conn.execute(
        sql.SQL("SELECT id, state::text FROM {}.lysmore_jobs WHERE id = ANY(%s)").format(sql.Identifier(prefix)),
        [list(ids)],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _executing(conn, prefix) -> int:  # type: ignore[no-untyped-def]
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.lysmore_jobs WHERE state = 'executing'").format(sql.Identifier(prefix))
    ).fetchone()
    return int(row[0])


def _limited(make_engine, allowed: int = 2):  # type: ignore[no-untyped-def]
    """An engine (not started) with one globally limited queue, and that queue's config."""
    eng = make_engine(queues={Q: {"global_limit": allowed}})
    return eng, eng.queues[Q]


def test_fetch_records_finished_jobs_and_reuses_their_slots(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, cfg = _limited(make_engine)
    eng.insert_all([Quick.new({"n": i}) for i in range(4)])
    first = testing.fetch(eng, Q, 2, cfg)
    assert len(first) == 2
    assert testing.fetch(eng, Q, 2, cfg) == []  # the limit is full
    done = [run_job(job) for job in first]
    second = testing.fetch(eng, Q, 2, cfg, done)
    assert len(second) == 2 and done == []  # recorded, and their slots taken again at once
    assert _states(conn, prefix, [j.id for j in first]) == {j.id: "completed" for j in first}
    assert _executing(conn, prefix) == 2
    assert eng.get_job(first[0].id).result == {"n": first[0].args["n"]}
    assert eng.counters["acked"] == 2


def test_a_stale_outcome_in_a_fetch_changes_nothing_and_is_announced(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, cfg = _limited(make_engine)
    log = EventLog()
    eng.subscribe(log, kinds=["stale_ack"])
    eng.insert_all([Quick.new({"n": i}) for i in range(3)])
    jobs = testing.fetch(eng, Q, 2, cfg)
    set_row(conn, prefix, jobs[0].id, attempt=5)  # moved on while it ran
    done = [run_job(job) for job in jobs]
    fetched = testing.fetch(eng, Q, 2, cfg, done)
    states = _states(conn, prefix, [j.id for j in jobs])
    assert states == {jobs[0].id: "executing", jobs[1].id: "completed"}
    assert len(fetched) == 1  # one slot freed; the stale row still holds the other
    assert eng.counters["stale_acks"] == 1
    assert [e.job.id for e in log.events] == [jobs[0].id]


def test_outcomes_are_recorded_when_the_global_limit_went_away(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, cfg = _limited(make_engine)
    eng.insert_all([Quick.new({"n": i}) for i in range(3)])
    jobs = testing.fetch(eng, Q, 2, cfg)
    done = [run_job(job) for job in jobs]
    fetched = testing.fetch(eng, Q, 2, QueueConfig(Q, 10), done)
    assert done == [] and len(fetched) == 1
    assert set(_states(conn, prefix, [j.id for j in jobs]).values()) == {"completed"}


def test_the_reconciler_leaves_jobs_whose_outcome_waits_for_a_fetch(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, cfg = _limited(make_engine)
    job = eng.insert(Quick.new({"n": 1}))
    (claimed,) = testing.fetch(eng, Q, 1, cfg)
    producer = testing.producer(eng, cfg)  # not started: nothing else takes its outcomes
    producer._done.append(run_job(claimed))
    assert producer.reconcile(older_than=0) == 0
    assert _states(conn, prefix, [job.id]) == {job.id: "executing"}
    producer._done.clear()  # the same row with nothing waiting is lost, and released
    assert producer.reconcile(older_than=0) == 1
    assert _states(conn, prefix, [job.id]) == {job.id: "available"}


def test_a_running_node_records_every_job_under_the_limit(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, _ = start_node(make_engine, {Q: {"local_limit": 4, "global_limit": 3}})
    jobs = eng.insert_all([Quick.new({"n": i}) for i in range(60)])
    ids = [j.id for j in jobs]
    # The last jobs' outcomes go with a fetch that finds nothing more to run: recorded all the same.
    wait_for(lambda: set(_states(conn, prefix, ids).values()) == {"completed"}, 10, "all 60 completed")
    assert _executing(conn, prefix) == 0
    assert eng._producers[Q].carried_ids() == set()


def test_outcomes_go_to_the_acker_when_no_fetch_will_carry_them(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={})  # a started acker, no producers of its own
    eng.start()
    cfg = parse_queue(Q, {"local_limit": 3, "global_limit": 3})
    eng.insert_all([Quick.new({"n": i}) for i in range(3)])
    a, b, c = testing.fetch(eng, Q, 3, cfg)
    producer = testing.producer(eng, cfg)  # not started: only what the test does happens
    producer._finish(run_job(a), carry=True)
    assert producer.carried_ids() == {a.id}  # waits for the next fetch
    producer.paused = True
    producer._finish(run_job(b), carry=True)  # paused: no fetch is coming
    assert producer.carried_ids() == {a.id}
    producer.paused = False
    producer.stop_fetching()  # stopping hands over what waits ...
    producer._finish(run_job(c), carry=True)  # ... and what finishes afterwards
    assert producer.carried_ids() == set()
    assert testing.flush(eng, 5)
    assert set(_states(conn, prefix, [a.id, b.id, c.id]).values()) == {"completed"}


def test_flush_waits_for_outcomes_held_by_a_producer(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng, cfg = _limited(make_engine)
    job = eng.insert(Quick.new({"n": 1}))
    (claimed,) = testing.fetch(eng, Q, 1, cfg)
    eng._acker.start()
    producer = eng._producers[Q] = testing.producer(eng, cfg)
    producer._done.append(run_job(claimed))
    assert testing.flush(eng, 5)
    assert _states(conn, prefix, [job.id]) == {job.id: "completed"}


def test_a_failed_fetch_keeps_its_outcomes_and_leaves_the_connection_clean(make_engine, conn, prefix, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="psycopg")
    eng = make_engine(queues={Q: {"global_limit": 2}}, pool_size=1)  # one connection: the next claim reuses it
    cfg = eng.queues[Q]
    eng.insert_all([Quick.new({"n": i}) for i in range(4)])
    jobs = testing.fetch(eng, Q, 2, cfg)
    done = [run_job(job) for job in jobs]
    real_fetch = eng.q.jobs.fetch_global
    eng.q.jobs.fetch_global = sql.SQL("SELECT 1 / 0")  # type: ignore[assignment]  # fails after the ack ran
    try:
        testing.fetch(eng, Q, 2, cfg, done)
    except Exception as exc:
        assert "division by zero" in str(exc)
    else:
        raise AssertionError("the broken fetch did not fail")
    assert len(done) == 2  # not recorded: the ack went back with the failed transaction
    # The engine ended the transaction itself: the pool got the connection back idle.
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text
    assert set(_states(conn, prefix, [j.id for j in jobs]).values()) == {"executing"}
    eng.q.jobs.fetch_global = real_fetch
    fetched = testing.fetch(eng, Q, 2, cfg, done)
    assert done == [] and len(fetched) == 2
    assert set(_states(conn, prefix, [j.id for j in jobs]).values()) == {"completed"}
