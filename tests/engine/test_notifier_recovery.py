"""Lost connections are retried, never fatal: the LISTEN backend killed (polling covers the gap,
then notifications work again after the reconnect) and the pooled connections killed."""

from __future__ import annotations

import threading
from typing import Any

from engine import JobState, Worker, testing
from tests.engine._support import start_node, wait_end, wait_state
from tests.helpers import wait_for

Q = "recovery"


class Echo(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return job.args["n"]


def _terminate(conn, pids) -> None:  # type: ignore[no-untyped-def]
    for pid in pids:
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])  # wait until gone


def _spy(eng) -> tuple[list[dict[str, Any]], threading.Condition]:  # type: ignore[no-untyped-def]
    """Record every payload the notifier hands to the engine from now on."""
    notifier = eng._notifier
    seen: list[dict[str, Any]] = []
    cond = threading.Condition()
    real = notifier._dispatch

    def dispatch(message: dict[str, Any]) -> None:
        with cond:
            seen.append(message)
            cond.notify_all()
        real(message)

    notifier._dispatch = dispatch
    return seen, cond


def test_jobs_inserted_while_the_listener_is_down_still_run(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2}, poll_interval=0.5)
    notifier = eng._notifier
    assert notifier is not None and notifier.connected.wait(5)
    old_pid = notifier.backend_pid
    _terminate(conn, [old_pid])
    jobs = [eng.insert(Echo.new({"n": i})) for i in range(3)]
    for job in jobs:
        assert wait_end(eng, log, job.id).state is JobState.COMPLETED
    wait_for(lambda: notifier.reconnects >= 1 and notifier.connected.is_set(), what="a reconnect")
    assert notifier.backend_pid != old_pid


def test_notifications_work_again_after_a_reconnect(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    # poll every 30 s: a pickup within seconds can only come from a notification
    eng, log = start_node(make_engine, {Q: 2}, poll_interval=30.0)
    notifier = eng._notifier
    assert notifier is not None and notifier.connected.wait(5)
    seen, cond = _spy(eng)
    for round_ in range(2):  # twice: the second kill hits the connection made by the first reconnect
        old_pid = notifier.backend_pid
        _terminate(conn, [old_pid])
        wait_for(lambda r=round_: notifier.reconnects == r + 1 and notifier.connected.is_set(),  # type: ignore[misc]
                 what="a reconnect")
        assert notifier.backend_pid != old_pid
        with cond:
            seen.clear()
        job = eng.insert(Echo.new({"n": round_}))
        with cond:
            assert cond.wait_for(lambda: {"kind": "insert", "queue": Q} in seen, 5), seen
        row = wait_end(eng, log, job.id, timeout=5)
        assert row.state is JobState.COMPLETED and row.result == round_


def test_killed_pool_connections_are_replaced(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    first = eng.insert(Echo.new({"n": 1}))
    assert wait_end(eng, log, first.id).state is JobState.COMPLETED
    notifier = eng._notifier
    assert notifier is not None
    keep = {notifier.backend_pid, conn.info.backend_pid}
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> ALL(%s)",
        [list(keep)],
    ).fetchall()
    assert rows, "the node should hold pooled connections"
    _terminate(conn, [r[0] for r in rows])
    # the node's own API and its producer, acker, stager and heartbeat all come back
    jobs = [eng.insert(Echo.new({"n": i})) for i in range(2, 6)]
    later = eng.insert(Echo.new({"n": 6}, schedule_in=0.2))
    for job in [*jobs, later]:
        assert wait_state(eng, job.id, JobState.COMPLETED).result == job.args["n"]
    assert notifier.backend_pid in keep  # the listener was left alone
    assert eng._producers[Q]._thread.is_alive()


def test_api_calls_never_get_a_connection_the_server_closed(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    """No background thread here to use up the dead connections first: the caller gets them."""
    eng = make_engine(pool_size=4)
    with eng.connection(), eng.connection(), eng.connection():
        pass  # three connections, now idle in the pool
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s",
        [conn.info.backend_pid],
    ).fetchall()
    assert len(rows) >= 3
    _terminate(conn, [r[0] for r in rows])
    jobs = [eng.insert(Echo.new({"n": i})) for i in range(4)]  # none raises
    assert [j.id for j in eng.get_jobs([j.id for j in jobs])] == [j.id for j in jobs]
    assert testing.drain(eng, Q) == {"completed": 4}


def test_killed_connections_of_a_busy_node(make_engine, conn) -> None:  # type: ignore[no-untyped-def]
    """Connections die while jobs are being fetched and acked: every job still ends completed."""
    eng, log = start_node(make_engine, {Q: 4})
    eng.insert_all([Echo.new({"n": i}) for i in range(200)])
    for _ in range(3):
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s",
            [conn.info.backend_pid],
        ).fetchall()
        _terminate(conn, [r[0] for r in rows])
    more = eng.insert_all([Echo.new({"n": i}) for i in range(200, 220)])
    wait_state(eng, more[-1].id, JobState.COMPLETED, timeout=30)
    wait_for(
        lambda: conn.execute(
            f'SELECT count(*) FROM "{eng.prefix}".lysmore_jobs WHERE state <> %s', ["completed"]
        ).fetchone()[0] == 0,
        timeout=30, what="every job to complete",
    )
