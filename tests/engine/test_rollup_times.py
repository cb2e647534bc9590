"""Execution times in the per-minute rollups: per queue and per worker, summed across flushes
(as across nodes), read back as p50/p95; migration 8 over populated rollups; pruning."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from engine import Engine, Job, JobState, Worker, apply_migrations, testing
from engine._runner import Outcome
from engine._schema import current_version, migrations
from engine._sql import Queries
from engine._timings import BUCKETS, bucket_bounds, bucket_of, merged, percentile


class Fast(Worker, queue="timed"):
    def perform(self, job: Job) -> None:
        return None


class Slow(Worker, queue="timed"):
    def perform(self, job: Job) -> None:
        time.sleep(0.3)


class Other(Worker, queue="other"):
    def perform(self, job: Job) -> None:
        return None


def _db_minute(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT date_trunc('minute', now())").fetchone()
    assert row is not None
    return row[0]


def _window(conn: psycopg.Connection) -> datetime:
    """The start of a ten-minute slot that holds every minute this test writes."""
    return _db_minute(conn) - timedelta(minutes=5)


# -- the histogram itself ------------------------------------------------------------------------

def test_buckets_are_log_spaced_and_cover_every_duration() -> None:
    assert bucket_of(0.0) == 0 and bucket_of(-1.0) == 0 and bucket_of(float("nan")) == 0
    assert bucket_of(0.0009) == 0
    assert bucket_of(0.001) == 1  # 1 ms starts bucket 1
    assert bucket_of(0.0015) == 2  # past √2 ms
    assert bucket_of(10**9) == BUCKETS - 1 and bucket_of(float("inf")) == BUCKETS - 1
    for seconds in (0.0004, 0.003, 0.02, 0.25, 1.7, 42.0, 900.0):
        low, high = bucket_bounds(bucket_of(seconds))
        assert low <= seconds and (high is None or seconds < high)
    with pytest.raises(ValueError, match="bucket 48 does not exist"):
        bucket_bounds(BUCKETS)


def test_percentiles_come_from_the_summed_buckets() -> None:
    fast, slow = [0] * BUCKETS, [0] * BUCKETS
    fast[bucket_of(0.010)] = 90
    slow[bucket_of(2.0)] = 10
    both = merged([fast, None, slow])
    p50, p95 = percentile(both, 0.5), percentile(both, 0.95)
    assert p50 is not None and p95 is not None
    low, high = bucket_bounds(bucket_of(0.010))
    assert low <= p50 < high
    low, high = bucket_bounds(bucket_of(2.0))
    assert low <= p95 < high
    assert percentile([0] * BUCKETS, 0.5) is None and percentile(None, 0.5) is None
    with pytest.raises(ValueError, match="a percentile is a share from 0 to 1, not 95"):
        percentile(both, 95)


# -- recorded outcomes ---------------------------------------------------------------------------

def test_recorded_outcomes_add_their_times_per_queue_and_per_worker(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine(queues={"timed": 5, "other": 5})
    eng.insert_all([Fast.new() for _ in range(9)] + [Slow.new()] + [Other.new() for _ in range(2)])
    jobs = testing.fetch(eng, "timed", 10) + testing.fetch(eng, "other", 10)
    assert len(jobs) == 12
    durations = {"tests.engine.test_rollup_times.Fast": 0.012, "tests.engine.test_rollup_times.Slow": 3.0,
                 "tests.engine.test_rollup_times.Other": 0.0005}
    outcomes = [Outcome(j, JobState.COMPLETED, duration=durations[j.worker]) for j in jobs]
    # Two flushes into the same minute, as two nodes would add theirs: the buckets add up.
    assert testing.record(eng, outcomes[:5]) == []
    eng._path.flush_rollups()
    failed = outcomes[5]
    outcomes[5] = Outcome(failed.job, JobState.RETRYABLE, delay=60, error={"error": "boom"}, duration=failed.duration)
    assert testing.record(eng, outcomes[5:]) == []
    eng._path.flush_rollups()

    inspector = eng.inspect()
    start = _window(conn)
    everything = inspector.rollups(start, 1, 600).slots[0]
    assert (everything.completed, everything.failed, everything.executions) == (11, 1, 12)

    timed = inspector.rollups(start, 1, 600, queue="timed").slots[0]
    assert (timed.completed, timed.failed) == (9, 1)
    assert timed.buckets[bucket_of(0.012)] == 9 and timed.buckets[bucket_of(3.0)] == 1
    p50, p95 = timed.percentile(0.5), timed.percentile(0.95)
    assert p50 is not None and p95 is not None
    assert bucket_of(p50) == bucket_of(0.012) and bucket_of(p95) == bucket_of(3.0)

    slow = inspector.rollups(start, 1, 600, worker="tests.engine.test_rollup_times.Slow").slots[0]
    assert slow.completed + slow.failed == 1 and slow.buckets[bucket_of(3.0)] == 1
    fast = inspector.rollups(start, 1, 600, worker="tests.engine.test_rollup_times.Fast", queue="timed").slots[0]
    assert fast.executions == 9 and bucket_of(fast.percentile(0.95) or 0) == bucket_of(0.012)
    assert inspector.rollups(start, 1, 600, worker="tests.engine.test_rollup_times.Fast", queue="other") \
        .slots[0].executions == 0

    queues, workers = inspector.rollup_names(start)
    assert queues == ["other", "timed"]
    assert workers == sorted(durations)


def test_real_jobs_record_how_long_they_ran(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine(queues={"timed": 1})
    eng.insert_all([Fast.new() for _ in range(18)] + [Slow.new() for _ in range(2)])
    assert testing.drain(eng, "timed") == {"completed": 20}
    inspector = eng.inspect()
    start = _window(conn)
    queue = inspector.rollups(start, 1, 600, queue="timed").total()
    assert queue.executions == 20
    p50, p95 = queue.percentile(0.5), queue.percentile(0.95)
    assert p50 is not None and p95 is not None
    assert p50 < 0.2 <= p95  # 18 jobs return at once, 2 sleep 0.3 s: the slowest 10% are the slow ones
    slow = inspector.rollups(start, 1, 600, worker="tests.engine.test_rollup_times.Slow").total()
    assert slow.executions == 2 and (slow.percentile(0.5) or 0) >= 0.3 / 2**0.5


def test_slots_split_a_window_by_minute(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine(queues={"timed": 1})
    start = datetime.fromisoformat("2030-01-15T11:00:00+00:00")
    buckets = [0] * BUCKETS
    buckets[bucket_of(0.05)] = 4
    conn.execute(
        sql.SQL("INSERT INTO {} (queue, minute, completed, failed, discarded, exec_buckets) VALUES"
                " ('timed', %s, 4, 0, 1, %s), ('timed', %s, 2, 1, 0, NULL), ('timed', %s, 7, 0, 0, %s)").format(
            sql.Identifier(prefix, "lysmore_stats_minutely")),
        (start, buckets, start + timedelta(minutes=3), start + timedelta(minutes=60), buckets),
    )
    series = eng.inspect().rollups(start, 6, 600, queue="timed")  # an hour, 10 minutes a slot
    assert [s.completed for s in series.slots] == [6, 0, 0, 0, 0, 0]  # 12:00 is past the window
    assert (series.slots[0].failed, series.slots[0].discarded, series.slots[0].executions) == (1, 1, 4)
    assert series.slots[1].buckets == () and series.slots[1].percentile(0.5) is None
    with pytest.raises(ValueError, match="a slot is a whole number of minutes, not 90"):
        eng.inspect().rollups(start, 6, 90)
    with pytest.raises(ValueError, match="slots must be from 1 to 10000, not 0"):
        eng.inspect().rollups(start, 0, 60)


def test_the_stats_round_prunes_worker_rollups_too(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine(queues={"timed": 1}, stats_retention=86_400)
    workers = sql.Identifier(prefix, "lysmore_stats_workers")
    conn.execute(sql.SQL("INSERT INTO {} (worker, queue, minute, completed) VALUES"
                         " ('W', 'timed', date_trunc('minute', now()) - interval '25 hours', 1),"
                         " ('W', 'timed', date_trunc('minute', now()) - interval '23 hours', 2)").format(workers))
    assert eng._leader is not None
    eng._leader.elect()
    testing.run_round(eng, "stats")
    left = conn.execute(sql.SQL("SELECT completed FROM {}").format(workers)).fetchall()
    assert left == [(2,)]  # the day view's minutes stay


def test_migration_8_keeps_populated_rollups_and_adds_times_to_them(database_url: str, conn: psycopg.Connection,
                                                                   prefix: str) -> None:
    q = Queries(prefix)
    before = [(v, q.compose(f"migrations/{name}")) for v, name in migrations() if v < 8]
    apply_migrations(conn, prefix, before, table="lysmore_migrations", lock="lysmore.migrate")
    assert current_version(conn, prefix) == 7
    minutely = sql.Identifier(prefix, "lysmore_stats_minutely")
    conn.execute(sql.SQL("INSERT INTO {} (queue, minute, completed, failed)"
                         " SELECT 'q' || (g % 5), date_trunc('minute', now()) - make_interval(mins => g / 5), 3, g % 2"
                         " FROM generate_series(0, 4999) AS g").format(minutely))
    conn.execute(sql.SQL("INSERT INTO {} (queue, minute, completed) VALUES"
                         " ('timed', date_trunc('minute', now()), 5)").format(minutely))
    before_rows = conn.execute(sql.SQL("SELECT queue, minute, completed, failed FROM {} ORDER BY 1, 2")
                               .format(minutely)).fetchall()

    eng = Engine(database_url, prefix=prefix)
    try:
        assert 8 in eng.migrate()
        after = conn.execute(sql.SQL("SELECT queue, minute, completed, failed, exec_buckets FROM {} ORDER BY 1, 2")
                             .format(minutely)).fetchall()
        assert [r[:4] for r in after] == before_rows and all(r[4] is None for r in after)
        # A node adds outcomes with times to a minute that had counts only.
        eng.insert_all([Fast.new() for _ in range(3)])
        assert testing.drain(eng, "timed") == {"completed": 3}
        total = eng.inspect().rollups(_window(conn), 1, 600, queue="timed").total()
        assert total.completed == 8  # the 5 counted before the upgrade (no times) and 3 with times
        assert total.executions == 3
    finally:
        eng.stop()
