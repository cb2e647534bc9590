"""Unique jobs: race-free by a unique index, conflicts report the existing job, periods by the
database clock, and keys given up when a job leaves the states that count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from engine import InvalidJob, Job, Snooze, Worker, testing
from tests.unique_race import OnlyOnce

ROOT = Path(__file__).resolve().parents[2]


class Mailer(Worker, queue="mail", unique={"period": 120}):
    def perform(self, job: Job) -> str:
        return "sent"


class Sleepy(Worker, queue="mail", unique={"period": None, "states": ["available", "executing"]}):
    def perform(self, job: Job) -> Snooze:
        return Snooze(60)


def _rows(conn: psycopg.Connection, prefix: str) -> int:
    return int(conn.execute(f'SELECT count(*) FROM "{prefix}".lysmore_jobs').fetchone()[0])


def test_a_thousand_concurrent_inserts_from_two_processes_make_one_row(make_engine, conn, database_url, prefix) -> None:  # type: ignore[no-untyped-def]
    make_engine()
    cmd = [sys.executable, "-m", "tests.unique_race", database_url, prefix, "25", "20"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.extend(json.loads(out))
    assert len(results) == 1000
    assert _rows(conn, prefix) == 1
    ids = {job_id for job_id, _ in results}
    assert len(ids) == 1  # every loser got the winner's id
    assert sum(1 for _, conflict in results if not conflict) == 1


def test_rolled_back_winner_leaves_the_key_free(make_engine, conn, database_url, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    with psycopg.connect(database_url) as tx:
        first = eng.insert(OnlyOnce.new({"key": "rb"}), conn=tx)
        assert not first.conflict
        tx.rollback()
    second = eng.insert(OnlyOnce.new({"key": "rb"}))
    assert not second.conflict and second.id != first.id
    assert _rows(conn, prefix) == 1


def test_duplicates_in_one_insert_all_collapse_and_report_per_item(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    before = eng.insert(Mailer.new({"to": "x"}))
    jobs = eng.insert_all([Mailer.new({"to": "a"}), Mailer.new({"to": "a"}), Mailer.new({"to": "x"}),
                           Mailer.new({"to": "b"})])
    assert [j.conflict for j in jobs] == [False, True, True, False]
    assert jobs[0].id == jobs[1].id and jobs[2].id == before.id
    assert _rows(conn, prefix) == 3


def test_period_boundary_is_the_database_clock(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    old = eng.insert(Mailer.new({"to": "p"}))
    conn.execute(f"""UPDATE "{prefix}".lysmore_jobs SET inserted_at = now() - interval '119 seconds' WHERE id = %s""", [old.id])
    assert eng.insert(Mailer.new({"to": "p"})).id == old.id  # still inside the period
    conn.execute(f"""UPDATE "{prefix}".lysmore_jobs SET inserted_at = now() - interval '121 seconds' WHERE id = %s""", [old.id])
    fresh = eng.insert(Mailer.new({"to": "p"}))
    assert not fresh.conflict and fresh.id != old.id


def test_fields_keys_and_states_options(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    by_account = {"period": 60, "fields": ["args"], "keys": ["account"]}
    a = eng.insert(Mailer.new({"account": 1, "n": 1}, unique=by_account))
    b = eng.insert(Mailer.new({"account": 1, "n": 2}, unique=by_account))
    c = eng.insert(Mailer.new({"account": 2, "n": 1}, unique=by_account))
    assert b.conflict and b.id == a.id and not c.conflict
    eng.cancel_job(a.id)  # cancelled does not count by default: the key is free
    assert not eng.insert(Mailer.new({"account": 1, "n": 3}, unique=by_account)).conflict


def test_replace_updates_the_existing_job(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    opts = {"period": 60, "fields": ["worker"], "replace": {"scheduled": ["scheduled_at", "args"]}}
    first = eng.insert(Mailer.new({"v": 1}, schedule_in=600, unique=opts))
    second = eng.insert(Mailer.new({"v": 2}, schedule_in=0, unique=opts))
    assert second.conflict and second.id == first.id
    stored = eng.get_job(first.id)
    assert stored.args == {"v": 2} and stored.state.value == "available"


def test_a_snoozed_job_gives_up_its_key_and_never_stalls(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    """Decision: leaving the counted states gives the key up for good, so a snoozed, retried or
    rescued job coming back never collides with the job that took the key meanwhile."""
    eng = make_engine(queues={"mail": 1})
    first = eng.insert(Sleepy.new({"k": 1}))
    assert testing.drain(eng, "mail") == {"scheduled": 1}  # snoozed: scheduled is not counted here
    second = eng.insert(Sleepy.new({"k": 1}))
    assert not second.conflict
    # Both come back to available together and run: neither stalls staging or fetching.
    assert testing.drain(eng, "mail", with_scheduled=True, limit=3) == {"scheduled": 3}
    jobs = eng.get_jobs([first.id, second.id])
    assert [j.attempt >= 1 for j in jobs] == [True, True]
    assert sum(j.attempt for j in jobs) == 4
    assert all(j.unique_key is None for j in jobs)


def test_bad_unique_options_are_refused_before_sql() -> None:
    with pytest.raises(InvalidJob, match="period"):
        Mailer.new({}, unique={"period": -1})
    with pytest.raises(InvalidJob, match="fields"):
        Mailer.new({}, unique={"fields": ["color"]})
    with pytest.raises(InvalidJob, match="unknown options"):
        Mailer.new({}, unique={"perod": 5})
    with pytest.raises(InvalidJob, match="replace"):
        Mailer.new({}, unique={"replace": {"scheduled": ["state"]}})
