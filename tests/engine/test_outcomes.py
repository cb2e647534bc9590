"""Every way a perform can end, as recorded in the job row on a running node (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from engine import Cancel, Discard, JobState, Snooze, Worker, testing
from tests.engine._support import db_now, events_of, start_node, wait_end

Q = "outcomes"


class Returns(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return {"n": job.args["n"], "items": [1, "two", None]}


class ReturnsNothing(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


class ReturnsUnstorable(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return {1, 2, 3}


class Raises(Worker, queue=Q, max_attempts=3):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise ValueError(f"boom {job.args.get('n')}")


class RaisesNul(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise ValueError("bad\x00byte \ud800")


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class RaisesUnprintable(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise BadStr()


class SnoozeReturned(Worker, queue=Q, max_attempts=1):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return Snooze(120)


class SnoozeRaised(Worker, queue=Q, max_attempts=1):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise Snooze(120)


class SnoozeNan(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return Snooze(float("nan"))


class CancelReturned(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return Cancel("no longer wanted")


class CancelRaised(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise Cancel("no longer wanted")


class DiscardReturned(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return Discard("bad payload")


class DiscardRaised(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise Discard("bad payload")


class AsyncReturns(Worker, queue=Q):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return {"async": job.args["n"]}


class AsyncRaises(Worker, queue=Q, max_attempts=2):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        raise KeyError("async-missing")


class AsyncSnoozes(Worker, queue=Q, max_attempts=1):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        return Snooze(30)


def _at(entry: dict) -> datetime:  # type: ignore[type-arg]
    return datetime.fromisoformat(entry["at"])


def test_return_completes_and_stores_value(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    before = db_now(conn)
    job = eng.insert(Returns.new({"n": 3}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.COMPLETED
    assert row.result == {"n": 3, "items": [1, "two", None]}
    assert row.errors == []
    assert row.attempt == 1
    assert row.completed_at is not None and before <= row.completed_at <= db_now(conn)
    assert row.node_id == eng.node_id
    (success,) = events_of(log, job.id, ["success"])
    assert success.result == {"n": 3, "items": [1, "two", None]}
    assert success.error is None


def test_return_none_completes_with_no_result(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(ReturnsNothing.new({}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.COMPLETED
    assert row.result is None


def test_unstorable_return_still_completes_and_says_why(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(ReturnsUnstorable.new({}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.COMPLETED
    assert row.result is None
    assert "not stored" in row.meta["result_error"]


def test_raise_is_retryable_with_backoff_and_error_entry(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    before = db_now(conn)
    job = eng.insert(Raises.new({"n": 1}))
    row = wait_end(eng, log, job.id)
    after = db_now(conn)
    assert row.state is JobState.RETRYABLE
    assert row.attempt == 1 and row.max_attempts == 3
    (entry,) = row.errors
    assert set(entry) == {"attempt", "at", "error", "traceback", "node", "started_at"}
    assert entry["node"] == row.attempted_by[0] and entry["started_at"] == row.attempted_at.isoformat()
    assert entry["attempt"] == 1
    assert entry["error"] == "ValueError: boom 1"
    assert "Traceback" in entry["traceback"] and "ValueError: boom 1" in entry["traceback"]
    assert "in perform" in entry["traceback"]
    at = _at(entry)
    assert before <= at <= after
    # default backoff after attempt 1: 15 + 2 = 17 s, +-10%, counted from the ack's now()
    delay = (row.scheduled_at - at).total_seconds()
    assert 17 * 0.9 <= delay <= 17 * 1.1
    (failure,) = events_of(log, job.id, ["failure"])
    assert isinstance(failure.error, ValueError) and str(failure.error) == "boom 1"


def test_raise_on_last_attempt_discards(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Raises.new({"n": 9}, max_attempts=1))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.DISCARDED
    assert row.discarded_at is not None
    assert [e["error"] for e in row.errors] == ["ValueError: boom 9"]
    assert events_of(log, job.id, ["discard"]) and not events_of(log, job.id, ["failure"])


def test_every_failed_attempt_appends_an_error(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Raises.new({"n": 5}))  # max_attempts=3
    counts = testing.drain(eng, Q, with_scheduled=True)
    assert counts == {"retryable": 2, "discarded": 1}
    row = eng.get_job(job.id)
    assert row.state is JobState.DISCARDED
    assert [e["attempt"] for e in row.errors] == [1, 2, 3]
    assert all(e["error"] == "ValueError: boom 5" for e in row.errors)
    ats = [_at(e) for e in row.errors]
    assert ats == sorted(ats)


def test_error_text_postgres_cannot_store_is_made_safe(make_engine) -> None:  # type: ignore[no-untyped-def]
    """A NUL or a lone surrogate in an error must not poison the ack batch of every other job."""
    eng, log = start_node(make_engine, {Q: 4})
    bad = eng.insert(RaisesNul.new({}))
    good = eng.insert(Returns.new({"n": 1}))
    assert wait_end(eng, log, good.id).state is JobState.COMPLETED
    row = wait_end(eng, log, bad.id)
    assert row.state is JobState.RETRYABLE
    assert row.errors[0]["error"].startswith("ValueError: bad")
    assert "\x00" not in row.errors[0]["error"]


def test_exception_whose_str_raises_still_fails_the_job(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(RaisesUnprintable.new({}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.RETRYABLE
    assert row.errors[0]["error"].startswith("BadStr:")


@pytest.mark.parametrize("worker", [SnoozeReturned, SnoozeRaised, AsyncSnoozes])
def test_snooze_reschedules_without_using_an_attempt(make_engine, conn, worker) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    before = db_now(conn)  # before the insert: the job may be done before the next line runs
    job = eng.insert(worker.new({}))  # max_attempts=1: a used-up attempt would discard it
    row = wait_end(eng, log, job.id)
    after = db_now(conn)
    seconds = 30 if worker is AsyncSnoozes else 120
    assert row.state is JobState.SCHEDULED
    assert row.attempt == 1
    assert row.max_attempts == 2
    assert row.meta["snoozed"] == 1
    assert row.errors == []
    assert before + timedelta(seconds=seconds) <= row.scheduled_at <= after + timedelta(seconds=seconds)
    assert events_of(log, job.id, ["snooze"])


def test_snooze_twice_counts_and_keeps_the_attempts_left(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(SnoozeReturned.new({}))
    assert testing.drain(eng, Q) == {"scheduled": 1}
    assert testing.drain(eng, Q, with_scheduled=True, limit=1) == {"scheduled": 1}
    row = eng.get_job(job.id)
    assert row.state is JobState.SCHEDULED
    assert (row.attempt, row.max_attempts, row.meta["snoozed"]) == (2, 3, 2)


def test_snooze_with_nan_is_a_failure_not_a_poisoned_ack(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(SnoozeNan.new({}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.RETRYABLE
    assert "Snooze" in row.errors[0]["error"]


@pytest.mark.parametrize("worker", [CancelReturned, CancelRaised])
def test_cancel_outcome(make_engine, worker) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(worker.new({}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.CANCELLED
    assert row.cancelled_at is not None
    assert row.errors[-1]["error"] == "cancelled: no longer wanted"
    assert row.result is None
    assert events_of(log, job.id, ["cancel"])


@pytest.mark.parametrize("worker", [DiscardReturned, DiscardRaised])
def test_discard_outcome(make_engine, worker) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(worker.new({}))  # 20 attempts left: discard is final anyway
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.DISCARDED
    assert row.discarded_at is not None
    assert row.attempt == 1
    assert row.errors[-1]["error"] == "discarded: bad payload"
    assert events_of(log, job.id, ["discard"])


def test_async_perform_returns(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(AsyncReturns.new({"n": 4}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.COMPLETED
    assert row.result == {"async": 4}


def test_async_perform_raises(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(AsyncRaises.new({}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.RETRYABLE
    assert row.errors[0]["error"] == "KeyError: 'async-missing'"
