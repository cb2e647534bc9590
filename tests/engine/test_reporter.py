"""The error reporter: a group's first notice notifies, repeats are counted into the next
notification; a rate limit per channel; failures, discards, stale acks and lost nodes reach it
from a running engine and are recorded for the dashboard; a channel that raises or hangs never
slows or fails a job; secrets are masked and job arguments left out unless asked for."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from psycopg import sql

from engine import (
    Discard,
    Engine,
    InvalidConfig,
    JobState,
    Notice,
    Notification,
    Reporter,
    Worker,
    testing,
)
from engine._runner import Outcome
from tests.cluster import Node, create_ledger
from tests.cluster_app import LedgerJob
from tests.engine._support import set_row, wait_state
from tests.helpers import wait_for

Q = "reported"


class Recording:
    """A channel that keeps what it is sent."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.got: list[Notification] = []
        self.cond = threading.Condition()

    def send(self, notification: Notification) -> None:
        with self.cond:
            self.got.append(notification)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 10.0) -> list[Notification]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, timeout), [x.title for x in self.got]
            return list(self.got)


class Raising:
    name = "raising"

    def send(self, notification: Notification) -> None:
        raise ConnectionRefusedError("webhook down, token=hunter2-secret")


class Hanging:
    """A channel whose send blocks until the test ends."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def send(self, notification: Notification) -> None:
        self.entered.set()
        self.release.wait(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def notice(worker: str = "app.Pay", error_type: str = "CardError", message: str = "declined",
           kind: str = "failure") -> Notice:
    return Notice(kind=kind, prefix="p", node="n1", worker=worker, queue="q", error_type=error_type,
                  message=message, job_id=1, attempt=1, max_attempts=3)


def started(reporter: Reporter) -> Reporter:
    reporter.attach("p", "n1", None)
    reporter.start()
    return reporter


def test_a_group_notifies_once_and_counts_its_repeats_into_the_next() -> None:
    clock, channel = Clock(), Recording()
    reporter = started(Reporter([channel], window=60, clock=clock))
    try:
        for _ in range(3):
            reporter.report(notice())
        reporter.report(notice(error_type="Timeout"))  # another error type: its own group
        reporter.report(notice(worker="app.Mail"))  # another worker: its own group
        assert reporter.flush(5)
        assert [(n.notice.worker, n.notice.error_type, n.count) for n in channel.got] == [
            ("app.Pay", "CardError", 1), ("app.Pay", "Timeout", 1), ("app.Mail", "CardError", 1)]
        clock.now += 61  # the window ends: the two held-back repeats are summarized ...
        reporter.report(notice(worker="app.Other"))  # (woken by any notice, or by its own timer)
        assert reporter.flush(5)
        summary = next(n for n in channel.got[3:] if n.notice.worker == "app.Pay")
        assert summary.summary and summary.count == 2
        assert "2 more of these" in summary.text()
        reporter.report(notice())  # ... and a repeat right after the summary is held back again
        assert reporter.flush(5)
        clock.now += 61
        reporter.report(notice())  # past the window: notifies, standing for itself and the held one
        assert reporter.flush(5)
        last = channel.got[-1]
        assert last.notice.worker == "app.Pay" and last.count == 2 and not last.summary
        assert "(2 times)" in last.title
    finally:
        reporter.stop(5)


def test_held_back_repeats_are_summarized_when_the_window_ends_on_its_own() -> None:
    channel = Recording()
    reporter = started(Reporter([channel], window=0.3))  # the real clock: the reporter's timer fires
    try:
        for _ in range(4):
            reporter.report(notice())
        first, summary = channel.wait(2)
        assert (first.count, first.summary) == (1, False)
        assert (summary.count, summary.summary) == (3, True)
    finally:
        reporter.stop(5)


def test_rate_limit_per_channel_holds_back_and_names_the_count_in_the_next() -> None:
    clock, quiet, loud = Clock(), Recording("quiet"), Recording("loud")
    reporter = started(Reporter([quiet], window=60, limit=2, clock=clock))
    other = started(Reporter([loud], window=60, limit=100, clock=clock))
    try:
        for i in range(5):
            reporter.report(notice(worker=f"app.W{i}"))
            other.report(notice(worker=f"app.W{i}"))
        assert reporter.flush(5) and other.flush(5)
        assert [n.notice.worker for n in quiet.got] == ["app.W0", "app.W1"]
        assert len(loud.got) == 5
        clock.now += 61
        reporter.report(notice(worker="app.W9"))
        assert reporter.flush(5)
        assert quiet.got[-1].notice.worker == "app.W9" and quiet.got[-1].rate_limited == 3
        assert "3 other notifications were not sent (rate limit)" in quiet.got[-1].text()
    finally:
        reporter.stop(5)
        other.stop(5)


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    reporter = Reporter([Recording()], queue_size=2)  # not started: nothing takes from the queue
    assert [reporter.report(notice()) for _ in range(5)] == [True, True, False, False, False]
    assert reporter.dropped == 3


def test_bad_settings_are_named() -> None:
    with pytest.raises(InvalidConfig, match="window must be positive"):
        Reporter([], window=0)
    with pytest.raises(InvalidConfig, match="limit must be a whole number"):
        Reporter([], limit=0)
    with pytest.raises(InvalidConfig, match="unknown reporter kinds \\['success'\\]"):
        Reporter([], kinds=["success"])
    with pytest.raises(InvalidConfig, match="needs a name and a send"):
        Reporter([object()])  # type: ignore[list-item]
    running = started(Reporter([Recording()]))
    try:
        with pytest.raises(InvalidConfig, match="give each engine its own"):
            running.attach("other", "n2", None)
    finally:
        running.stop(5)


# -- from a running engine --------------------------------------------------------------------------


class Declined(Exception):
    pass


class Pays(Worker, queue=Q, max_attempts=2):
    def backoff(self, job):  # type: ignore[no-untyped-def]
        return 0

    def perform(self, job):  # type: ignore[no-untyped-def]
        raise Declined(f"card declined for postgresql://shop:pw-in-url@db/x, key {job.args['api_key']}")


class Gives(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return Discard("the customer is gone")


class Quick(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


def _notifications(conn, prefix: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    rows = conn.execute(sql.SQL(
        "SELECT kind, worker, error_type, message, channel, status, count, error, first_seen <= last_seen AS ordered "
        "FROM {}.lysmore_notifications ORDER BY id").format(sql.Identifier(prefix))).fetchall()
    keys = ("kind", "worker", "error_type", "message", "channel", "status", "count", "error", "ordered")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def test_failures_and_discards_notify_masked_and_are_recorded(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    channel = Recording()
    reporter = Reporter([channel, Raising()], secrets=["sk_live_topsecret"])
    eng: Engine = make_engine(queues={Q: 2}, reporter=reporter)
    eng.start()
    pay = eng.insert(Pays.new({"api_key": "sk_live_topsecret"}))
    gone = eng.insert(Gives.new({}))
    wait_state(eng, pay.id, JobState.DISCARDED)
    wait_state(eng, gone.id, JobState.DISCARDED)
    wait_for(lambda: len(channel.got) >= 3, what="three notifications")
    assert reporter.flush(5)
    got = {(n.notice.kind, n.notice.worker.rsplit(".", 1)[-1], n.notice.error_type) for n in channel.got}
    assert got == {("failure", "Pays", "Declined"), ("discard", "Pays", "Declined"), ("discard", "Gives", "Discard")}
    for n in channel.got:
        assert n.notice.prefix == prefix and n.notice.node == eng.node_name and n.notice.args is None
        assert n.notice.job_id in (pay.id, gone.id)
    text = " ".join(n.text() for n in channel.got)
    assert "sk_live_topsecret" not in text and "pw-in-url" not in text and "***" in text
    assert "the customer is gone" in text
    rows = _notifications(conn, prefix)
    assert {(r["channel"], r["status"]) for r in rows} == {("recording", "sent"), ("raising", "failed")}
    assert len(rows) == 6 and all(r["ordered"] and r["count"] == 1 for r in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    assert all(r["error"] == "ConnectionRefusedError: webhook down, token=hunter2-secret" for r in failed)
    assert "sk_live_topsecret" not in str(rows) and "pw-in-url" not in str(rows)
    assert reporter.failed == 3 and reporter.sent == 3
    recent = eng.inspect().notifications(limit=2)
    assert [r.id for r in recent] == sorted((r.id for r in recent), reverse=True) and len(recent) == 2
    assert {r.status for r in eng.inspect().notifications()} == {"sent", "failed"}


def test_job_arguments_are_sent_only_when_asked_for(make_engine) -> None:  # type: ignore[no-untyped-def]
    channel = Recording()
    eng: Engine = make_engine(queues={Q: 1}, reporter=Reporter([channel], include_args=True, kinds=["discard"]))
    eng.start()
    job = eng.insert(Gives.new({"order": 7}))
    (n,) = channel.wait(1)
    assert n.notice.job_id == job.id and n.notice.args == {"order": 7}
    assert '"order": 7' in n.text()


def test_a_raising_or_hanging_channel_never_slows_or_fails_jobs(make_engine) -> None:  # type: ignore[no-untyped-def]
    hanging, recording = Hanging(), Recording()
    eng: Engine = make_engine(queues={Q: 4}, reporter=Reporter([hanging, Raising(), recording], window=0.001,
                                                                   outbox_size=2))
    eng.start()
    try:
        first = eng.insert(Gives.new({}))
        wait_state(eng, first.id, JobState.DISCARDED)
        assert hanging.entered.wait(10)  # the hanging channel is stuck in send from now on
        jobs = eng.insert_all([Gives.new({"n": i}) for i in range(100)] + [Quick.new({"n": i}) for i in range(50)])
        for job in jobs:
            wait_state(eng, job.id, JobState.DISCARDED, JobState.COMPLETED)
        assert testing.flush(eng, 10)
        # the other channels kept going; the hanging one's outbox filled up and dropped the rest
        wait_for(lambda: len(recording.got) >= 2, what="notifications past the hanging channel")
        wait_for(lambda: eng.reporter is not None and eng.reporter.dropped > 0, what="drops counted")
    finally:
        hanging.release.set()


def test_a_stale_ack_notifies(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    channel = Recording()
    eng: Engine = make_engine(reporter=[channel])
    eng.start()
    job = eng.insert(Quick.new({"n": 1}))
    (fetched,) = testing.fetch(eng, Q, 1)
    set_row(conn, prefix, job.id, node_id=uuid.uuid4())  # another node has the attempt now
    eng._acker.add(Outcome(fetched, JobState.COMPLETED))
    (n,) = channel.wait(1)
    assert (n.notice.kind, n.notice.error_type, n.notice.job_id) == ("stale_ack", "StaleAck", job.id)
    assert "was rescued meanwhile" in n.notice.message


@pytest.mark.slow
def test_a_killed_node_is_reported_lost_by_the_leader(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    channel = Recording()
    eng: Engine = make_engine(queues={"elsewhere": 1}, node_ttl=2, leader_lease=2, heartbeat_interval=0.5,
                              reporter=Reporter([channel], kinds=["node_lost"]))
    create_ledger(conn, prefix)
    victim = Node("victim", database_url, prefix, CLUSTER_NODE_TTL="2", CLUSTER_LEASE="2").start()
    nodes.append(victim)
    jobs = eng.insert_all([LedgerJob.new({"ms": [20000, 20000]}) for _ in range(2)])
    wait_for(lambda: all(j.state is JobState.EXECUTING for j in eng.get_jobs([j.id for j in jobs])),
             timeout=20, what="the victim running both jobs")
    eng.start()
    victim.kill()
    (n,) = channel.wait(1, timeout=30)
    assert (n.notice.kind, n.notice.node, n.notice.error_type) == ("node_lost", "victim", "NodeLost")
    assert "2 jobs rescued (2 to run again, 0 discarded)" in n.notice.message
    assert n.notice.group == "node_lost:victim:NodeLost"


def test_old_notifications_are_pruned_with_the_rollups(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    reporter = Reporter([Recording()])
    eng: Engine = make_engine(reporter=reporter)
    eng.start()
    reporter.report(notice(worker="app.Old"))
    reporter.report(notice(worker="app.New"))
    assert reporter.flush(5)
    table = sql.Identifier(prefix, "lysmore_notifications")
    conn.execute(sql.SQL("UPDATE {} SET at = now() - interval '2 hours' WHERE worker = 'app.Old'").format(table))
    eng.store.prune_stats(stats_retention=3600, cron_retention=3600)
    assert [n.worker for n in eng.inspect().notifications()] == ["app.New"]
