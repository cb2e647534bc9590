"""The demo's nodes notify: a discarded job becomes a warning on ``lysmore.demo.notify`` and a JSON
POST to the demo's notify URL; retried failures are only counted, not notified."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from demo.monitor import NOTIFY_KINDS, demo_reporter
from demo.runner import DemoOptions
from engine import Discard, Engine, JobState, Worker
from tests.engine._support import wait_state
from tests.engine.test_reporter_channels import Recorder

Q = "demo_notify"


class GivesUp(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return Discard("the export's bucket is gone")


def test_a_discard_in_the_demo_is_logged_and_posted(make_engine, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="lysmore.demo.notify")
    hook = Recorder()
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        reporter = demo_reporter(f"http://127.0.0.1:{hook.port}/demo")
        assert [c.name for c in reporter.channels] == ["log", f"webhook:http://127.0.0.1:{hook.port}"]
        assert reporter.kinds == set(NOTIFY_KINDS)
        eng: Engine = make_engine(queues={Q: 1}, reporter=reporter)
        eng.start()
        job = eng.insert(GivesUp.new({}))
        wait_state(eng, job.id, JobState.DISCARDED)
        ((path, _, body),) = hook.wait(1)
        assert path == "/demo" and json.loads(body)["notice"]["job_id"] == job.id
        assert reporter.flush(5)
        (record,) = [r for r in caplog.records if r.name == "lysmore.demo.notify"]
        assert "job discarded: GivesUp Discard" in record.getMessage()
        assert "the export's bucket is gone" in record.getMessage()
    finally:
        hook.shutdown()
        hook.server_close()


def test_the_notify_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LYSMORE_DEMO_NOTIFY_URL", "http://127.0.0.1:9/hook")
    assert DemoOptions().notify_url == "http://127.0.0.1:9/hook"
    monkeypatch.delenv("LYSMORE_DEMO_NOTIFY_URL")
    assert DemoOptions().notify_url is None
