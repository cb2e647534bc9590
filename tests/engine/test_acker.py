"""The acker gathers outcomes for a few milliseconds before it records them, so a node at a small
local limit pays one ack statement for many jobs; a flush, a stop, or an outcome that frees a
global slot is recorded without waiting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

import engine._acker as acker_mod
from engine._acker import Acker


def outcome(job_id: int, queue: str = "q") -> Any:
    return SimpleNamespace(job=SimpleNamespace(id=job_id, queue=queue))


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.called = threading.Event()

    def __call__(self, batch: list[Any]) -> list[Any]:
        self.batches.append([o.job.id for o in batch])
        self.called.set()
        return []


@contextmanager
def running(**kwargs: Any) -> Iterator[tuple[Acker, Recorder]]:
    """An acker started with a recorder, stopped (everything recorded) at the end."""
    record = Recorder()
    acker = Acker(record, lambda stale: None, **kwargs)
    acker.start()
    try:
        yield acker, record
    finally:
        assert acker.stop(timeout=30)


@pytest.fixture
def long_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acker_mod, "GATHER", 600.0)  # only a flush, a stop or a limited queue ends it


def test_outcomes_that_arrive_together_are_recorded_in_one_statement_on_flush(long_gather: None) -> None:
    with running() as (acker, record):
        for job_id in (1, 2, 3):
            acker.add(outcome(job_id))
        assert acker.flush(timeout=30)  # does not wait out the gathering
        assert record.batches == [[1, 2, 3]]


def test_stop_records_what_was_being_gathered(long_gather: None) -> None:
    record = Recorder()
    acker = Acker(record, lambda stale: None)
    acker.start()
    acker.add(outcome(7))
    assert acker.stop(timeout=30)
    assert record.batches == [[7]] and acker.pending() == 0


def test_an_outcome_of_a_globally_limited_queue_is_recorded_at_once(long_gather: None) -> None:
    with running(limited=lambda: {"limited"}) as (acker, record):
        acker.add(outcome(1, "plain"))
        acker.add(outcome(2, "limited"))  # its slot is counted by every node until it is recorded
        assert record.called.wait(30)
        assert record.batches[0][-1] == 2 and sorted(i for b in record.batches for i in b) == [1, 2]


def test_a_full_batch_is_recorded_without_waiting_out_the_gathering(
    long_gather: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While it gathers, the acker is woken by an outcome only when it fills a batch (or ends the
    # gathering otherwise): the outcomes in between wait for the window, without a wake-up each.
    monkeypatch.setattr(acker_mod, "BATCH", 3)
    with running() as (acker, record):
        for job_id in (1, 2, 3):
            acker.add(outcome(job_id))
        assert record.called.wait(30)
        assert record.batches[0] == [1, 2, 3]
