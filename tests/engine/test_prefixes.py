"""Two instances (prefixes) side by side in one database never see each other's jobs or
notifications: not inserts, not cancels of a job with the same id."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from engine import JobState, Worker
from tests.engine._support import count_jobs, start_node, wait_end

Q = "shared"
DONE: dict[str, threading.Event] = {}
CANCELLED: dict[str, bool] = {}


class Echo(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return job.args["n"]


class Cooperative(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        key = job.args["key"]
        CANCELLED[key] = job.wait_cancelled(10)
        DONE.setdefault(key, threading.Event()).set()
        return "stopped"


def _spy(eng) -> tuple[list[dict[str, Any]], threading.Condition]:  # type: ignore[no-untyped-def]
    seen: list[dict[str, Any]] = []
    cond = threading.Condition()
    real = eng._notifier._dispatch

    def dispatch(message: dict[str, Any]) -> None:
        with cond:
            seen.append(message)
            cond.notify_all()
        real(message)

    eng._notifier._dispatch = dispatch
    return seen, cond


def _flush_notifications(eng, seen, cond) -> None:  # type: ignore[no-untyped-def]
    """Send a sentinel on ``eng``'s own channel and wait for it: notifications arrive in commit
    order, so anything committed before it on a channel this node hears has arrived too."""
    marker = f"sentinel-{uuid.uuid4().hex[:8]}"
    eng.insert(Echo.new({"n": 0}, queue=marker))
    with cond:
        assert cond.wait_for(lambda: {"kind": "insert", "queue": marker} in seen, 5)


def _two_nodes(make_engine, prefix):  # type: ignore[no-untyped-def]
    a, log_a = start_node(make_engine, {Q: 2}, node="node-a")
    b, log_b = start_node(make_engine, {Q: 2}, node="node-b", prefix=f"{prefix}_b")
    for eng in (a, b):
        assert eng._notifier is not None and eng._notifier.connected.wait(5)
    assert a.prefix != b.prefix and a.channel != b.channel
    return a, log_a, b, log_b


def test_jobs_run_only_on_their_own_prefix(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    a, log_a, b, log_b = _two_nodes(make_engine, prefix)
    seen_b, cond_b = _spy(b)
    job_a = a.insert(Echo.new({"n": 1}))
    row = wait_end(a, log_a, job_a.id)
    assert row.state is JobState.COMPLETED and row.attempted_by == ["node-a", str(a.node_id)]
    _flush_notifications(b, seen_b, cond_b)
    assert not [m for m in seen_b if m.get("queue") == Q], seen_b  # A's insert was never heard
    assert log_b.events == []  # and nothing ran on B
    assert count_jobs(conn, f"{prefix}_b") == 1  # only B's sentinel
    job_b = b.insert(Echo.new({"n": 2}))
    row = wait_end(b, log_b, job_b.id)
    assert row.attempted_by == ["node-b", str(b.node_id)] and row.result == 2
    assert all(e.job.args["n"] != 2 for e in log_a.events)
    assert count_jobs(conn, prefix) == 1


def test_cancel_on_one_prefix_leaves_the_same_id_running_on_the_other(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    a, log_a, b, log_b = _two_nodes(make_engine, prefix)
    seen_b, cond_b = _spy(b)
    key_a, key_b = uuid.uuid4().hex, uuid.uuid4().hex
    job_a = a.insert(Cooperative.new({"key": key_a}))
    job_b = b.insert(Cooperative.new({"key": key_b}))
    assert job_a.id == job_b.id  # fresh schemas: the same id on both sides
    for eng_log, job in ((log_a, job_a), (log_b, job_b)):
        eng_log.wait(lambda evs, j=job: any(e.kind == "start" and e.job.id == j.id for e in evs))
    assert a.cancel_job(job_a.id)
    assert DONE.setdefault(key_a, threading.Event()).wait(2) and CANCELLED[key_a] is True
    _flush_notifications(b, seen_b, cond_b)
    assert not [m for m in seen_b if m.get("kind") == "cancel"]
    assert key_b not in CANCELLED  # still running
    assert b.get_job(job_b.id).state is JobState.EXECUTING
    assert b.cancel_job(job_b.id)
    assert DONE.setdefault(key_b, threading.Event()).wait(2) and CANCELLED[key_b] is True


def test_control_of_a_queue_stays_in_its_prefix(make_engine, prefix) -> None:  # type: ignore[no-untyped-def]
    a, log_a, b, log_b = _two_nodes(make_engine, prefix)
    result = a.pause_queue(Q, wait=30)
    assert result.acked == ["node-a"]
    assert a._producers[Q].paused
    job_b = b.insert(Echo.new({"n": 3}))
    assert wait_end(b, log_b, job_b.id).state is JobState.COMPLETED  # B's queue never paused
    assert not b._producers[Q].paused
