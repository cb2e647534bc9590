"""Error monitoring on the private instance: a discarded payment job mails the team within seconds
(through the app's mailer, into the SMTP sink) and posts to the configured webhook, with no secret
in either; the monitor settings are checked and masked."""

from __future__ import annotations

import json
import threading

import pytest

from engine import InvalidConfig
from licensing.app import LicensingApp
from licensing.sandbox import StripeSandbox
from licensing.settings import load_licensing_settings

from ..engine.test_reporter_channels import Recorder
from ..helpers import wait_for
from .stack import fresh_secrets, licensing_stack, make_settings


def test_a_discarded_payment_job_notifies_the_team_and_the_webhook(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    hook = Recorder()
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.port}/alerts?token=hook-token-123"
        with licensing_stack(database_url, prefix, sandbox, monitor_webhook_url=url,
                             monitor_webhook_secret="hook-signing-secret") as stack:
            _, job = stack.app.sign_up(email="ivy@example.com", plan="monthly", payment_method="pm_doesnotexist")
            (mail,) = stack.sink.wait_for(lambda ms: any("job discarded" in m.subject for m in ms), timeout=15)
            assert mail.recipients == ("team@lysmore.dev",)
            assert mail.subject == f"[lysmore {prefix}] job discarded: UpdateWorker Discard"
            body = mail.text()
            assert f"job:        {job.id} (attempt 1 of 20)" in body and "Stripe refused the request" in body
            assert "queue:      default" in body
            ((_, headers, raw),) = hook.wait(1)
            payload = json.loads(raw)
            assert payload["notice"]["job_id"] == job.id and payload["notice"]["kind"] == "discard"
            assert "X-Lysmore-Signature" in headers
            wait_for(lambda: len(stack.app.engine.inspect().notifications()) == 2, what="both notifications recorded")
            rows = stack.app.engine.inspect().notifications()
            assert {(r.channel, r.status) for r in rows} == {
                ("smtp:team@lysmore.dev", "sent"), (f"webhook:http://127.0.0.1:{hook.port}", "sent")}
            everything = mail.message.as_string() + raw.decode() + repr(rows)
            for name, value in stack.secret.items():
                assert value not in everything, f"{name} leaked into a notification"
            assert "hook-token-123" not in repr(rows)
    finally:
        hook.shutdown()
        hook.server_close()


def test_monitor_settings_are_secret_and_checked(database_url: str, prefix: str) -> None:
    secret = fresh_secrets()
    settings = make_settings(database_url, prefix, secret, monitor_webhook_url="https://hooks.example.com/x?t=tok-9",
                             monitor_sentry_dsn="https://sentrykey@o1.ingest.example.com/7")
    assert "tok-9" not in repr(settings) and "sentrykey" not in repr(settings)
    assert {"https://hooks.example.com/x?t=tok-9", "https://sentrykey@o1.ingest.example.com/7"} <= set(
        settings.secret_values())  # masked in every notification, as the other secrets are
    app = LicensingApp(settings)
    try:
        reporter = app.engine.reporter
        assert reporter is not None
        assert [c.name for c in reporter.channels] == [
            "smtp:team@lysmore.dev", "webhook:https://hooks.example.com", "sentry:o1.ingest.example.com"]
        assert reporter.kinds == {"discard", "stale_ack", "node_lost"}
    finally:
        app.stop()
    off = LicensingApp(make_settings(database_url, prefix, secret, monitor_mail=False))
    try:
        assert off.engine.reporter is None
    finally:
        off.stop()
    with pytest.raises(InvalidConfig, match="monitor_limit") as caught:
        load_licensing_settings(monitor_limit=0, monitor_webhook_url="https://x.example.com/?t=tok-10")
    assert "tok-10" not in str(caught.value)
    with pytest.raises(InvalidConfig, match="webhook URL must be http"):
        LicensingApp(make_settings(database_url, prefix, secret, monitor_webhook_url="ftp://h/x"))
