"""The demo workers: fake args from gen(), the seed's queues, speed, failures and cancellation."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from demo import workers
from demo.workers import (
    QUEUES,
    WORKERS,
    DemoError,
    DemoWorker,
    ImageResizer,
    ReceiptMailer,
    ReportExporter,
    WelcomeMailer,
    faker,
)
from engine import Cancel, Discard, Job, JobSpec, Snooze, default_backoff


def as_job(spec: JobSpec, attempt: int = 1) -> Job:
    """The job ``spec`` would be once fetched: executing, at ``attempt``."""
    now = datetime.now(UTC)
    job = spec.saved(1, "executing", now, now)
    job.attempt = attempt
    return job


def test_queues_are_the_seeds_smart_engine_config_exactly() -> None:
    assert QUEUES == {
        "analysis": 20, "default": 30, "events": 15, "exports": 8,
        "mailers": {"local_limit": 10, "rate_limit": {"allowed": 20, "period": 30}},
        "media": {"global_limit": 10},
    }


def test_the_workers_cover_every_queue_of_the_seed() -> None:
    assert {w.queue for w in WORKERS} == set(QUEUES)
    names = {w.__name__ for w in WORKERS}
    assert {"WelcomeMailer", "ReceiptMailer", "ImageResizer", "VideoTranscoder", "ReportExporter",
            "EventIngester", "DataAnalysis"} <= names


@pytest.mark.parametrize("worker", list(WORKERS), ids=lambda w: w.__name__)
def test_gen_builds_a_valid_job_with_fake_args(worker: type[DemoWorker]) -> None:
    spec = worker.gen(faker(7))
    assert isinstance(spec, JobSpec)
    assert spec.worker == worker.name and spec.queue == worker.queue
    assert spec.args and all(v not in (None, "") for v in spec.args.values())
    assert spec.unique is None and spec.scheduled_at is None
    # the same seed makes the same args; another seed other args
    assert worker.gen(faker(7)).args == spec.args
    assert worker.gen(faker(8)).args != spec.args


def test_gen_passes_options_through_like_new() -> None:
    spec = WelcomeMailer.gen(faker(1), schedule_in=30, priority=0, tags=["urgent"])
    assert spec.schedule_in == 30 and spec.priority == 0 and spec.tags == ["urgent"]
    assert WelcomeMailer.gen(faker(1)).priority == 1 and WelcomeMailer.gen(faker(1)).tags == ["email"]


def test_the_fake_data_looks_like_what_it_claims() -> None:
    fake = faker(3)
    for _ in range(50):
        welcome = WelcomeMailer.gen(fake).args
        assert "@" in welcome["email"] and welcome["homepage"].startswith("http") and welcome["username"]
        receipt = ReceiptMailer.gen(fake).args
        assert "@" in receipt["email"] and isinstance(receipt["amount"], float) and receipt["amount"] > 0
        assert round(receipt["amount"], 2) == receipt["amount"] and receipt["invoice"].startswith("INV-")
        image = ImageResizer.gen(fake).args
        assert image["filename"].endswith("." + image["format"]) and image["url"].startswith("http")
        assert len(image["sizes"]) == 3
        export = ReportExporter.gen(fake).args
        assert 1 <= export["account_id"] <= 60 and "@" in export["email"]


def test_unique_options_name_the_args_that_make_jobs_the_same() -> None:
    spec = ReportExporter.new(ReportExporter.unique_args(faker(1)), unique=ReportExporter.unique_opts(60))
    assert spec.unique is not None
    assert spec.unique["keys"] == ["account_id", "report"] and spec.unique["period"] == 60


def test_speed_scales_work_backoff_and_snoozes() -> None:
    workers.set_speed(10)
    assert workers.scaled(60) == 6.0
    rng = random.Random(1)
    assert all(0.01 <= workers.work_seconds(rng) <= 6.0 for _ in range(1000))
    job = as_job(WelcomeMailer.gen(faker(1)), attempt=3)
    base = 15 + 2**3
    assert all(base * 0.9 / 10 <= WelcomeMailer().backoff(job) <= base * 1.1 / 10 for _ in range(100))
    assert default_backoff(3) >= base * 0.9  # the engine's own curve is untouched
    with pytest.raises(ValueError):
        workers.set_speed(0)


def test_perform_fails_about_15_percent_of_the_time_and_otherwise_stores_a_result() -> None:
    workers.set_speed(100_000)  # at most 0.6 ms of work each
    random.seed(12345)
    outcomes: Counter[str] = Counter()
    fake = faker(5)
    for worker in (WelcomeMailer, ReceiptMailer, ReportExporter, ImageResizer):
        for _ in range(400):
            spec = worker.gen(fake)
            try:
                value = worker().perform(as_job(spec))
            except DemoError:
                outcomes["failed"] += 1
                continue
            if isinstance(value, (Snooze, Cancel, Discard)):
                outcomes[type(value).__name__] += 1
            else:
                assert isinstance(value, dict)
                outcomes["completed"] += 1
    attempts = sum(outcomes.values()) - outcomes["Discard"] - outcomes["Cancel"]
    assert 0.11 <= outcomes["failed"] / attempts <= 0.19, outcomes
    assert outcomes["Discard"] > 0 and outcomes["Cancel"] > 0  # unsupported images, unwanted reports


def test_unsupported_images_are_discarded_without_working() -> None:
    spec = ImageResizer.new({**ImageResizer.fake_args(faker(1)), "format": "tiff"})
    value = ImageResizer().perform(as_job(spec))
    assert isinstance(value, Discard) and "tiff" in value.reason


def test_a_long_job_stops_at_once_when_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    workers.set_speed(1)
    working = threading.Event()

    def sixty_seconds(rng: Any = None) -> float:
        working.set()
        return 60.0

    monkeypatch.setattr(workers, "work_seconds", sixty_seconds)
    job = as_job(WelcomeMailer.gen(faker(1)))
    raised: list[BaseException] = []

    def run() -> None:
        try:
            WelcomeMailer().perform(job)
        except BaseException as exc:  # noqa: B036 - the test looks at what perform raised
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert working.wait(10)
    job._interrupt()  # what the engine does on cancel_job, timeout or stop
    thread.join(10)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], Cancel)
