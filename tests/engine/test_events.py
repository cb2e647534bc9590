"""Monitoring events: start, success, failure (with the exception), discard, cancel and snooze
reach subscribers; a subscriber that raises never breaks a job; kinds filter and unsubscribe."""

from __future__ import annotations

import pytest

from engine import Cancel, Event, JobState, Snooze, Worker
from tests.engine._support import events_of, start_node, wait_end, wait_state
from tests.helpers import EventLog

Q = "events"


class Ok(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return {"ok": job.args["n"]}


class Fails(Worker, queue=Q, max_attempts=2):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise LookupError(f"missing {job.args['n']}")


class Cancels(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return Cancel("enough")


class Snoozes(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise Snooze(60)


def test_each_outcome_emits_its_event(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 4})
    ok = eng.insert(Ok.new({"n": 1}))
    fail = eng.insert(Fails.new({"n": 2}))
    last = eng.insert(Fails.new({"n": 3}, max_attempts=1))
    cancel = eng.insert(Cancels.new({}))
    snooze = eng.insert(Snoozes.new({}))
    expected = {ok.id: "success", fail.id: "failure", last.id: "discard", cancel.id: "cancel",
                snooze.id: "snooze"}
    for job_id, kind in expected.items():
        wait_end(eng, log, job_id)
        assert [e.kind for e in events_of(log, job_id)] == ["start", kind]
        end = events_of(log, job_id, [kind])[0]
        assert end.duration is not None and end.duration >= 0
        assert end.job.id == job_id
    (success,) = events_of(log, ok.id, ["success"])
    assert success.result == {"ok": 1} and success.error is None
    (failure,) = events_of(log, fail.id, ["failure"])
    assert isinstance(failure.error, LookupError) and failure.error.args == ("missing 2",)
    (discard,) = events_of(log, last.id, ["discard"])
    assert isinstance(discard.error, LookupError)
    (start,) = events_of(log, ok.id, ["start"])
    assert start.job.attempt == 1 and start.job.state is JobState.EXECUTING


def test_a_raising_subscriber_breaks_nothing(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={Q: 2})
    calls: list[str] = []

    def bad(event: Event) -> None:
        calls.append(event.kind)
        raise RuntimeError("subscriber bug")

    eng.subscribe(bad)
    log = EventLog()
    eng.subscribe(log)  # subscribed after the bad one: still hears everything
    eng.start()
    ok = eng.insert(Ok.new({"n": 5}))
    fail = eng.insert(Fails.new({"n": 6}))
    assert wait_end(eng, log, ok.id).state is JobState.COMPLETED
    assert wait_end(eng, log, fail.id).state is JobState.RETRYABLE
    assert calls.count("start") == 2 and "success" in calls and "failure" in calls


def test_kinds_filter_and_unsubscribe(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={Q: 1})
    failures = EventLog()
    everything = EventLog()
    eng.subscribe(failures, kinds=["failure"])
    unsubscribe = eng.subscribe(everything)
    eng.start()
    ok = eng.insert(Ok.new({"n": 1}))
    fail = eng.insert(Fails.new({"n": 2}))
    failures.wait(lambda evs: len(evs) == 1)
    wait_end(eng, everything, ok.id)
    assert [e.kind for e in failures.events] == ["failure"] and failures.events[0].job.id == fail.id
    unsubscribe()
    heard = len(everything.events)
    late = eng.insert(Ok.new({"n": 3}))
    wait_state(eng, late.id, JobState.COMPLETED)
    assert len(everything.events) == heard
    with pytest.raises(ValueError, match="unknown event kinds"):
        eng.subscribe(failures, kinds=["finish"])


def test_a_subscriber_added_while_jobs_run_hears_the_next_ones(make_engine) -> None:  # type: ignore[no-untyped-def]
    # With no one listening the job path makes no Event at all; one subscribed later is heard
    # from the next job on, and one unsubscribed stops the kinds only it wanted.
    eng = make_engine(queues={Q: 1})
    eng.start()
    first = eng.insert(Ok.new({"n": 1}))
    wait_state(eng, first.id, JobState.COMPLETED)
    log = EventLog()
    unsubscribe = eng.subscribe(log, kinds=["start", "success"])
    second = eng.insert(Ok.new({"n": 2}))
    wait_end(eng, log, second.id)
    assert [e.kind for e in events_of(log, second.id)] == ["start", "success"]
    assert events_of(log, first.id) == []
    unsubscribe()
    assert not {"start", "success"} & eng.events.wanted
