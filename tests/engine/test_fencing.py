"""Fencing by lease: a node whose heartbeats fail stops taking work before a rescuer could take it
for dead, and takes work again once a heartbeat gets through."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from engine import InvalidConfig, Job, JobState, Worker
from tests.engine._support import start_node, wait_end, wait_state
from tests.helpers import wait_for

Q = "fenced"


class Quick(Worker, queue=Q):
    def perform(self, job: Job) -> Any:
        return {"ok": True}


def test_a_node_that_cannot_renew_its_lease_fetches_nothing_until_it_can(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2}, node_ttl=2.0, heartbeat_interval=0.2)
    assert wait_end(eng, log, eng.insert(Quick.new({})).id).state is JobState.COMPLETED
    healthy = eng._beat
    broken = threading.Event()

    def failing_beat() -> None:
        broken.set()
        raise ConnectionError("heartbeat cannot reach the database")

    eng._beat = failing_beat  # type: ignore[method-assign]
    assert broken.wait(5)
    wait_for(lambda: not eng._lease_held(), timeout=5, what="the lease to lapse on the node's own clock")
    producer = eng._producers[Q]
    waiting = eng.insert(Quick.new({}))
    skipped = producer.fenced_skips
    producer.wake()
    wait_for(lambda: producer.fenced_skips > skipped, timeout=5, what="a fetch skipped while fenced")
    assert eng.get_job(waiting.id).state is JobState.AVAILABLE
    eng._beat = healthy  # type: ignore[method-assign]
    assert wait_state(eng, waiting.id, JobState.COMPLETED, timeout=10).state is JobState.COMPLETED


def test_a_heartbeat_slower_than_half_the_ttl_is_refused(make_engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match="heartbeat_interval"):
        make_engine(node_ttl=2.0, heartbeat_interval=1.5)
