"""No poison job, no poisoned node: whatever goes wrong after ``perform``, the attempt ends, and an
outcome PostgreSQL refuses is found and recorded as a failure while the others land."""

from __future__ import annotations

from typing import Any

from engine import Job, JobState, Snooze, Worker, testing
from engine._runner import Outcome
from tests.engine._support import start_node, wait_end, wait_state

Q = "poison"


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


class Deep(Worker, queue=Q, max_attempts=3):
    def perform(self, job: Job) -> Any:
        return _deep(100_000)


class Big(Worker, queue=Q):
    def perform(self, job: Job) -> Any:
        return {"blob": "x" * job.args["size"]}


class Sleepy(Worker, queue=Q, max_attempts=1):
    def perform(self, job: Job) -> Any:
        return Snooze(60)


class Quick(Worker, queue=Q):
    def perform(self, job: Job) -> Any:
        return {"n": job.args["n"]}


def test_a_result_nested_too_deep_ends_the_attempt(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Deep.new({}))
    row = wait_end(eng, log, job.id)
    # The return value is not stored, and the attempt is recorded: the job completed, once.
    assert row.state is JobState.COMPLETED and row.attempt == 1
    assert row.result is None
    assert "nested too deeply" in row.meta["result_error"]


def test_a_result_over_the_cap_is_not_stored_and_the_node_goes_on(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2}, max_json_bytes=4096)
    big = eng.insert(Big.new({"size": 10_000}))
    small = eng.insert(Big.new({"size": 100}))
    row = wait_end(eng, log, big.id)
    assert row.state is JobState.COMPLETED and row.result is None
    assert "over the cap of 4096 bytes" in row.meta["result_error"]
    assert wait_end(eng, log, small.id).result == {"blob": "x" * 100}


def test_snooze_with_a_broken_count_in_meta_still_snoozes(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Sleepy.new({}, meta={"snoozed": "lots"}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.SCHEDULED
    assert row.meta["snoozed"] == 1 and row.max_attempts == 2


def test_an_outcome_that_cannot_be_made_is_a_failure_with_a_higher_attempt_next(make_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken_decide(*args: Any, **kwargs: Any) -> Outcome:
        raise RecursionError("maximum recursion depth exceeded while deciding")

    monkeypatch.setattr("engine._runner.decide", broken_decide)
    eng, log = start_node(make_engine, {Q: 2})
    job = eng.insert(Quick.new({"n": 1}, max_attempts=2))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.RETRYABLE and row.attempt == 1
    assert "could not be recorded: RecursionError" in row.errors[-1]["error"]


def test_a_batch_postgres_refuses_is_split_and_only_the_bad_outcome_fails(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    eng.insert_all([Quick.new({"n": n}) for n in range(40)])
    jobs = testing.fetch(eng, Q, 40)
    assert len(jobs) == 40
    outcomes = [Outcome(job, JobState.COMPLETED, result={"n": job.args["n"]}) for job in jobs]
    bad = outcomes[23]
    bad.stored = (None, '{"not": json', None)  # text PostgreSQL refuses as jsonb, as a 280 MB string would be
    eng._acker.start()
    for outcome in outcomes:
        eng._acker.add(outcome)
    assert eng._acker.flush(10)
    for outcome in outcomes:
        row = eng.get_job(outcome.job.id)
        if outcome is bad:
            assert row.state is JobState.RETRYABLE and row.attempt == 1
            assert "could not be recorded" in row.errors[-1]["error"]
            assert "json" in row.errors[-1]["error"]
        else:
            assert row.state is JobState.COMPLETED and row.result == {"n": outcome.job.args["n"]}
    assert eng.counters["acked"] == 40
    # ... and the node records what comes next at once.
    later = eng.insert(Quick.new({"n": 99}))
    (fetched,) = testing.fetch(eng, Q, 1)
    assert fetched.id == later.id
    eng._acker.add(Outcome(fetched, JobState.COMPLETED, result={"n": 99}))
    assert eng._acker.flush(5)
    assert wait_state(eng, later.id, JobState.COMPLETED).result == {"n": 99}


def test_a_subscriber_that_exits_on_start_does_not_stop_the_attempt(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})

    def rude(event: Any) -> None:
        raise SystemExit("a subscriber that exits")

    eng.subscribe(rude, kinds=["start", "success"])
    job = eng.insert(Quick.new({"n": 5}))
    row = wait_end(eng, log, job.id)
    assert row.state is JobState.COMPLETED and row.result == {"n": 5} and row.attempt == 1
