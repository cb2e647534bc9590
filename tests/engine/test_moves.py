"""A row moving between the live and finished sides of the jobs table under a statement that waits
for it: PostgreSQL refuses that statement (SQLSTATE 40001) rather than follow the row, and the
engine runs its compare-and-set again, deciding on the row as it is now."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from engine import Job, JobState, Worker, testing
from engine._runner import Outcome

from ._support import wait_for


class Move(Worker, queue="moves"):
    def perform(self, job: Job) -> None:
        return None


def _blocked_behind(conn: psycopg.Connection, prefix: str, job_id: int, call: Callable[[], Any],
                    then_state: str) -> Any:
    """Run ``call`` in a thread while another transaction holds job ``job_id``'s row, wait until
    ``call`` waits on that lock, then move the row to ``then_state`` and commit. Returns what
    ``call`` returned (or raises what it raised)."""
    result: dict[str, Any] = {}
    jobs = sql.Identifier(prefix, "lysmore_jobs")
    with psycopg.connect(conn.info.dsn) as holder:
        holder.execute(sql.SQL("SELECT id FROM {} WHERE id = %s FOR UPDATE").format(jobs), [job_id])
        holder_pid = holder.info.backend_pid

        def run() -> None:
            try:
                result["value"] = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                result["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        wait_for(lambda: conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [holder_pid]
        ).fetchone()[0] > 0, what="the call to wait on the row lock")  # type: ignore[index]
        holder.execute(sql.SQL("UPDATE {} SET state = %s WHERE id = %s").format(jobs), [then_state, job_id])
        holder.commit()
    thread.join(10)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_an_ack_behind_a_cancel_that_moved_the_row_is_refused_as_stale(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"moves": 1})
    eng.insert(Move.new())
    (job,) = testing.fetch(eng, "moves", 1)
    stale = _blocked_behind(conn, prefix, job.id, lambda: testing.record(eng, [Outcome(job, JobState.COMPLETED)]),
                            "cancelled")
    assert [o.job.id for o in stale] == [job.id]  # ran again, found it cancelled: nothing written
    assert eng.get_job(job.id).state is JobState.CANCELLED


def test_a_cancel_behind_an_ack_that_moved_the_row_finds_it_finished(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"moves": 1})
    eng.insert(Move.new())
    (job,) = testing.fetch(eng, "moves", 1)
    cancelled = _blocked_behind(conn, prefix, job.id, lambda: eng.cancel_jobs([job.id]), "completed")
    assert cancelled == []
    assert eng.get_job(job.id).state is JobState.COMPLETED


def test_a_delete_behind_a_move_back_to_live_deletes_it_there(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"moves": 1})
    job = eng.insert(Move.new())
    eng.cancel_job(job.id)
    deleted = _blocked_behind(conn, prefix, job.id, lambda: eng.delete_jobs([job.id]), "available")
    assert deleted == [job.id]  # deleted where it is now: an available job is deletable too
    assert eng.get_jobs([job.id]) == []


class Replacing(Worker, queue="moves", unique={"period": 120, "replace": {"executing": ["meta"]}}):
    def perform(self, job: Job) -> None:
        return None


def test_a_unique_insert_behind_its_holder_moving_finds_it_finished(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"moves": 1})
    first = eng.insert(Replacing.new({"k": 1}))
    (held,) = testing.fetch(eng, "moves", 1)
    assert held.id == first.id
    again = _blocked_behind(conn, prefix, first.id, lambda: eng.insert(Replacing.new({"k": 1}, meta={"n": 2})),
                            "completed")
    assert again.conflict and again.id == first.id  # its key held on, and it was not replaced
    assert again.state is JobState.COMPLETED and again.meta == {}
