"""Error monitoring: failures logged and kept in a ring the progress line summarises."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from demo.monitor import ErrorMonitor, Tally
from demo.workers import DemoError, ReceiptMailer, faker
from engine import Event, Job


def failed_job(job_id: int, attempt: int = 1) -> Job:
    now = datetime.now(UTC)
    job = ReceiptMailer.gen(faker(job_id)).saved(job_id, "executing", now, now)
    job.attempt = attempt
    job.attempted_by = ["demo-2", "uuid"]
    return job


def test_failures_are_kept_newest_first_in_a_bounded_ring() -> None:
    monitor = ErrorMonitor(size=3)
    for i in range(1, 6):
        monitor(Event("failure", failed_job(i), 0.1, DemoError(f"SMTP 450 #{i}")))
    assert monitor.total == 5 and len(monitor.recent) == 3
    last = monitor.last(2)
    assert [r.job_id for r in last] == [5, 4]
    assert last[0].worker == "ReceiptMailer" and last[0].node == "demo-2" and last[0].queue == "mailers"
    assert last[0].error == "DemoError: SMTP 450 #5"
    assert monitor.top_workers() == [("ReceiptMailer", 5)]


def test_the_summary_names_the_count_the_discards_and_the_last_error() -> None:
    monitor = ErrorMonitor()
    assert monitor.summary() == "errors 0"
    monitor(Event("failure", failed_job(1), 0.1, DemoError("boom")))
    monitor(Event("discard", failed_job(2, attempt=5), 0.1, DemoError("Something went wrong!")))
    text = monitor.summary(200)
    assert text.startswith("errors 2 (1 discarded) last ReceiptMailer#2 (5/5, demo-2) discarded")
    assert "Something went wrong!" in text
    assert len(monitor.summary(20)) < 60


def test_an_explicit_discard_without_an_exception_is_still_described() -> None:
    monitor = ErrorMonitor()
    monitor(Event("discard", failed_job(3), 0.0, None))
    assert monitor.last(1)[0].error == "discarded by its worker"


def test_failures_and_discards_log_at_info_and_the_reporter_notifies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = ErrorMonitor(clock=lambda: 1000.0)
    with caplog.at_level(logging.INFO, logger="lysmore.demo.errors"):
        monitor(Event("failure", failed_job(1), 0.1, DemoError("one")))
        for i in range(2, 6):
            monitor(Event("discard", failed_job(i), 0.1, DemoError(f"gone {i}")))
    assert [r.levelno for r in caplog.records] == [logging.INFO] * 5  # notifying is demo_reporter's job
    assert "ReceiptMailer#5" in caplog.records[-1].getMessage() and "discarded" in caplog.records[-1].getMessage()


def test_the_tally_counts_attempts_that_ended() -> None:
    tally = Tally()
    job = failed_job(1)
    for kind in ("start", "start", "success", "failure", "snooze"):
        tally(Event(kind, job))
    assert tally.finished() == 3 and tally.snapshot()["start"] == 2
