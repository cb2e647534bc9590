"""Backoff: the default curve with its jitter, a worker's own curve, and the stored retry time
counted from the database clock at the moment of the ack."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import pytest

from engine import JobState, Worker, default_backoff, testing
from tests.engine._support import db_now, start_node, wait_end

Q = "backoff"


class Flaky(Worker, queue=Q, max_attempts=5):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise RuntimeError("flaky")


class Linear(Worker, queue=Q, max_attempts=5):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise RuntimeError("linear")

    def backoff(self, job):  # type: ignore[no-untyped-def]
        return 100 * job.attempt


class BrokenBackoff(Worker, queue=Q, max_attempts=5):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise RuntimeError("broken")

    def backoff(self, job):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("bad curve")


class InfiniteBackoff(Worker, queue=Q, max_attempts=5):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise RuntimeError("inf")

    def backoff(self, job):  # type: ignore[no-untyped-def]
        return math.inf


@pytest.mark.parametrize("attempt", [1, 2, 5, 10, 20])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_default_backoff_is_15_plus_2_pow_attempt_with_jitter(attempt: int, seed: int) -> None:
    base = 15 + 2**attempt
    expected_rng = random.Random(seed)
    expected = base + expected_rng.uniform(-0.1, 0.1) * base
    assert default_backoff(attempt, random.Random(seed)) == pytest.approx(expected)
    assert base * 0.9 <= default_backoff(attempt, random.Random(seed)) <= base * 1.1


def test_default_backoff_jitter_spreads_both_ways() -> None:
    rng = random.Random(7)
    values = [default_backoff(3, rng) for _ in range(500)]
    assert min(values) < 23 < max(values)  # 15 + 2**3
    assert 23 * 0.9 <= min(values) and max(values) <= 23 * 1.1
    assert len(set(values)) > 400  # really random, not a constant


def test_default_backoff_stays_finite_for_huge_attempts() -> None:
    value = default_backoff(10_000, random.Random(1))
    assert math.isfinite(value) and value > 0


def _retry_delay(row) -> float:  # type: ignore[no-untyped-def]
    at = datetime.fromisoformat(row.errors[-1]["at"])
    return (row.scheduled_at - at).total_seconds()


def test_retry_time_is_database_now_at_ack_plus_backoff(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 1})
    before = db_now(conn)
    job = eng.insert(Linear.new({}))
    row = wait_end(eng, log, job.id)
    after = db_now(conn)
    assert row.state is JobState.RETRYABLE
    # the error's "at" is the ack statement's now(): the retry is exactly 100 s after it
    assert _retry_delay(row) == 100.0
    assert before + timedelta(seconds=100) <= row.scheduled_at <= after + timedelta(seconds=100)


def test_worker_backoff_is_called_with_the_failed_attempt(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Linear.new({}))
    testing.drain(eng, Q)
    assert _retry_delay(eng.get_job(job.id)) == 100.0
    testing.drain(eng, Q, with_scheduled=True, limit=1)
    row = eng.get_job(job.id)
    assert row.attempt == 2
    assert _retry_delay(row) == 200.0


def test_default_backoff_is_used_by_a_plain_worker(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Flaky.new({}))
    testing.drain(eng, Q)
    testing.drain(eng, Q, with_scheduled=True, limit=1)
    row = eng.get_job(job.id)
    assert row.attempt == 2 and row.state is JobState.RETRYABLE
    assert 19 * 0.9 <= _retry_delay(row) <= 19 * 1.1  # 15 + 2**2


@pytest.mark.parametrize("worker", [BrokenBackoff, InfiniteBackoff])
def test_a_broken_backoff_falls_back_to_the_default(make_engine, worker) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(worker.new({}))
    assert testing.drain(eng, Q) == {"retryable": 1}
    row = eng.get_job(job.id)
    assert row.state is JobState.RETRYABLE
    assert 17 * 0.9 <= _retry_delay(row) <= 17 * 1.1
