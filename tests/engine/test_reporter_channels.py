"""The reporter's channels against real receivers: mail into an aiosmtpd sink, a JSON webhook
(signed) into a local HTTP server, and Sentry through sentry-sdk into a local endpoint that
records envelopes; a receiver that refuses is logged masked and never raises."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine import (
    Engine,
    InvalidConfig,
    Notice,
    Notification,
    Reporter,
    SentryChannel,
    SmtpChannel,
    WebhookChannel,
    Worker,
)
from licensing.mail import SmtpSink

Q = "channels"


class Recorder(ThreadingHTTPServer):
    """A local HTTP server that keeps every POST (path, headers, body) and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.cond = threading.Condition()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def wait(self, n: int, timeout: float = 10.0) -> list[tuple[str, dict[str, str], bytes]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.posts) >= n, timeout), self.posts
            return list(self.posts)


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        elif self.headers.get("Content-Encoding") == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        with self.server.cond:
            self.server.posts.append((self.path, dict(self.headers), body))
            self.server.cond.notify_all()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


NOTICE = Notice(kind="discard", prefix="private", node="n1", worker="licensing.workers.ChargeWorker",
                queue="stripe", error_type="CardError", message="Your card was declined.", job_id=42,
                attempt=5, max_attempts=5)


def deliver(channel: Any, notification: Notification) -> Reporter:
    """Send ``notification``'s notice through a started reporter with only ``channel``."""
    reporter = Reporter([channel])
    reporter.attach("private", "n1", None)
    reporter.start()
    reporter.report(notification.notice)
    assert reporter.flush(10)
    reporter.stop(5)
    return reporter


def test_smtp_channel_mails_the_notification() -> None:
    with SmtpSink() as sink:
        channel = SmtpChannel("lysmore@example.com", "team@example.com", host=sink.host, port=sink.port)
        deliver(channel, Notification(NOTICE, 1, 0.0, 0.0))
        (mail,) = sink.wait_for(lambda m: len(m) == 1)
    assert mail.recipients == ("team@example.com",)
    assert mail.subject == "[lysmore private] job discarded: ChargeWorker CardError"
    body = mail.text()
    assert "job:        42 (attempt 5 of 5)" in body and "Your card was declined." in body
    assert mail.message["X-Lysmore-Group"] == "discard:licensing.workers.ChargeWorker:CardError"


def test_smtp_channel_can_deliver_through_an_apps_mailer() -> None:
    sent: list[Any] = []
    channel = SmtpChannel("a@example.com", ["b@example.com", "c@example.com"], deliver=sent.append)
    reporter = deliver(channel, Notification(NOTICE, 1, 0.0, 0.0))
    assert reporter.sent == 1
    (msg,) = sent
    assert msg["To"] == "b@example.com, c@example.com" and "CardError" in msg["Subject"]


def test_webhook_channel_posts_signed_json(recorder: Recorder) -> None:
    channel = WebhookChannel(f"http://127.0.0.1:{recorder.port}/hooks/lysmore?token=abc", secret="s3cret")
    assert channel.name == f"webhook:http://127.0.0.1:{recorder.port}"  # no path or token in the name
    deliver(channel, Notification(NOTICE, 1, 0.0, 0.0))
    ((path, headers, body),) = recorder.wait(1)
    assert path == "/hooks/lysmore?token=abc"
    payload = json.loads(body)
    assert payload["group"] == "discard:licensing.workers.ChargeWorker:CardError" and payload["count"] == 1
    assert payload["notice"]["job_id"] == 42 and payload["notice"]["args"] is None
    stamp, digest = (part.split("=", 1)[1] for part in headers["X-Lysmore-Signature"].split(","))
    expected = hmac.new(b"s3cret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(digest, expected)


def test_a_refusing_webhook_is_logged_masked_and_recorded_failed(make_engine, conn, prefix, caplog) -> None:  # type: ignore[no-untyped-def]
    server = Recorder(status=500)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.port}/x?token=pa55word"
        reporter = Reporter([WebhookChannel(url)], kinds=["discard"])
        eng: Engine = make_engine(queues={Q: 1}, reporter=reporter)
        eng.start()
        eng.insert(Refused.new({}))
        server.wait(1)
        assert reporter.flush(10)
        (row,) = eng.inspect().notifications()
        assert (row.status, row.channel, row.count) == ("failed", f"webhook:http://127.0.0.1:{server.port}", 1)
        assert row.error is not None and "500" in row.error
        assert "pa55word" not in caplog.text and "notification channel webhook" in caplog.text
    finally:
        server.shutdown()
        server.server_close()


class Refused(Worker, queue=Q, max_attempts=1):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise PermissionError("no")


def test_webhook_url_is_checked() -> None:
    with pytest.raises(InvalidConfig, match="must be http"):
        WebhookChannel("ftp://user:secretpw@example.com/")
    try:
        WebhookChannel("ftp://user:secretpw@example.com/")
    except InvalidConfig as exc:
        assert "secretpw" not in str(exc)


def test_sentry_channel_sends_an_envelope_with_tags_and_fingerprint(recorder: Recorder) -> None:
    channel = SentryChannel(f"http://publickey@127.0.0.1:{recorder.port}/1", environment="test")
    assert channel.name == "sentry:127.0.0.1"
    deliver(channel, Notification(NOTICE, 1, 0.0, 0.0))
    posts = recorder.wait(1)
    path, headers, body = posts[0]
    assert path == "/api/1/envelope/"
    assert "sentry_key=publickey" in headers.get("X-Sentry-Auth", "")
    items = [json.loads(line) for line in body.split(b"\n") if line.strip()]
    events = [item for item in items if item.get("fingerprint")]
    (event,) = events
    assert event["fingerprint"] == ["lysmore", "discard", "licensing.workers.ChargeWorker", "CardError"]
    assert event["tags"]["lysmore.worker"] == "licensing.workers.ChargeWorker"
    assert event["tags"]["lysmore.error_type"] == "CardError" and event["tags"]["lysmore.prefix"] == "private"
    assert event["exception"]["values"][0] == {"type": "CardError", "value": "Your card was declined."}
    assert event["environment"] == "test" and event["level"] == "error"


def test_a_bad_sentry_dsn_is_named_without_its_key() -> None:
    with pytest.raises(InvalidConfig, match="Sentry DSN is not usable") as caught:
        SentryChannel("not a dsn with secretkey")
    assert "secretkey" not in str(caught.value)
