"""Error monitoring that notifies: job failures, discards, stale acks and lost nodes, grouped by
kind + worker + error type, rate-limited per channel, and delivered off the job path.

The engine hands every such happening to ``Reporter.report`` (never blocking: a bounded queue,
dropped and counted when full). One reporter thread groups them: a group's first notice is sent,
repeats within ``window`` seconds are held back and counted, and the next notification of the
group (or a summary once the window ends) says how many there were. Each channel has its own
thread and bounded outbox, so a slow or broken channel delays no other and never a job; at most
``limit`` notifications per ``window`` go out on each channel, the rest are counted and named in
the next one sent. A channel that raises is logged (masked) and its notification recorded as
failed; nothing raises into the engine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue as queue_mod
import smtplib
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

from ._errors import InvalidConfig
from ._events import Event
from ._settings import redact_url

log = logging.getLogger("lysmore.reporter")

REPORTED_KINDS = frozenset({"failure", "discard", "stale_ack", "node_lost"})
DEFAULT_WINDOW = 60.0  # seconds a group's repeats are held back, and the rate limit's window
DEFAULT_LIMIT = 10  # notifications per window per channel
DEFAULT_QUEUE = 1_000  # notices waiting for the reporter thread before new ones are dropped
OUTBOX_SIZE = 100  # notifications waiting for one channel before new ones are dropped
MAX_MESSAGE = 1_000  # characters of an error message kept in a notification


@dataclass(frozen=True, slots=True)
class Notice:
    """One happening worth telling someone about, without job arguments unless opted in."""

    kind: str  # failure (will retry), discard (out of attempts), stale_ack, node_lost
    prefix: str
    node: str
    worker: str
    queue: str
    error_type: str
    message: str
    job_id: int | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    args: dict[str, Any] | None = None

    @property
    def group(self) -> str:
        """What repeats are counted under: kind, worker (the lost node for node_lost), error type."""
        return f"{self.kind}:{self.worker or self.node}:{self.error_type}"


@dataclass(frozen=True, slots=True)
class Notification:
    """What a channel sends: a group's latest notice and how many happenings it stands for."""

    notice: Notice
    count: int  # happenings of the group this notification covers (held-back repeats included)
    first_seen: float  # monotonic, of the first of them
    last_seen: float
    summary: bool = False  # only repeats held back since the group's last notification
    rate_limited: int = 0  # notifications of this channel the rate limit held back before this one

    @property
    def title(self) -> str:
        n = self.notice
        what = {"failure": "job failed", "discard": "job discarded", "stale_ack": "stale ack",
                "node_lost": "node lost"}.get(n.kind, n.kind)
        who = n.worker.rsplit(".", 1)[-1] if n.worker else n.node
        times = f" ({self.count} times)" if self.count > 1 else ""
        return f"[lysmore {n.prefix}] {what}: {who} {n.error_type}{times}"

    def text(self) -> str:
        """A plain-text body for mail and logs."""
        n = self.notice
        lines = [self.title, ""]
        if self.summary:
            lines.append(f"{self.count} more of these since the last notification of this group.")
        elif self.count > 1:
            lines.append(f"{self.count - 1} earlier ones were held back (grouped) before this one.")
        lines += [f"kind:       {n.kind}", f"instance:   {n.prefix}", f"node:       {n.node}"]
        if n.worker:
            lines += [f"worker:     {n.worker}", f"queue:      {n.queue}"]
        if n.job_id is not None:
            lines.append(f"job:        {n.job_id} (attempt {n.attempt} of {n.max_attempts})")
        lines += [f"error:      {n.error_type}", f"message:    {n.message}"]
        if n.args is not None:
            lines.append(f"args:       {json.dumps(n.args, default=str)}")
        if self.rate_limited:
            lines += ["", f"{self.rate_limited} other notifications were not sent (rate limit)."]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """The JSON a webhook receives."""
        return {"title": self.title, "group": self.notice.group, "count": self.count, "summary": self.summary,
                "rate_limited": self.rate_limited, "notice": asdict(self.notice)}


class Channel(Protocol):
    """Where notifications go. ``send`` may block (the channel has its own thread) and may raise
    (logged, recorded as failed); ``name`` is shown in logs and on the dashboard, so it holds no
    secret."""

    name: str

    def send(self, notification: Notification) -> None: ...


# -- channels -------------------------------------------------------------------------------------


def send_mail(
    message: EmailMessage, *, host: str, port: int, username: str | None = None,
    password: Callable[[], str] | None = None, starttls: bool = False, timeout: float = 10.0,
) -> None:
    """Deliver ``message`` through the SMTP server at ``host``:``port`` on a connection of its own
    (STARTTLS and a login when asked; the password is asked for only then). Raises
    ``smtplib.SMTPException`` or ``OSError``: the caller decides whether to retry."""
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        if starttls:
            smtp.starttls()
        if username and password is not None:
            smtp.login(username, password())
        smtp.send_message(message)


class SmtpChannel:
    """Mail to ``to`` from ``sender``: through ``deliver`` when given (an app's own mailer, e.g.
    ``Mailer.send``), else through smtplib with the same settings an app's mailer takes."""

    def __init__(
        self, sender: str, to: str | Sequence[str], *, host: str = "localhost", port: int = 25,
        username: str | None = None, password: Callable[[], str] | None = None, starttls: bool = False,
        timeout: float = 10.0, deliver: Callable[[EmailMessage], None] | None = None,
    ) -> None:
        recipients = [to] if isinstance(to, str) else list(to)
        if not sender or not recipients or not all(recipients):
            raise InvalidConfig(f"an SMTP channel needs a sender and recipients, got {sender!r} -> {recipients!r}")
        self.sender, self.to = sender, recipients
        self.host, self.port, self.username, self._password = host, int(port), username, password
        self.starttls, self.timeout = starttls, float(timeout)
        self._deliver = deliver
        self.name = f"smtp:{','.join(recipients)}"

    def __repr__(self) -> str:
        return f"SmtpChannel({self.name!r}, host={self.host!r}, port={self.port!r})"

    def message(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = notification.title
        msg["X-Lysmore-Group"] = notification.notice.group
        msg["Message-ID"] = make_msgid("lysmore")
        msg.set_content(notification.text())
        return msg

    def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        if self._deliver is not None:
            self._deliver(msg)
            return
        send_mail(msg, host=self.host, port=self.port, username=self.username, password=self._password,
                  starttls=self.starttls, timeout=self.timeout)


class WebhookChannel:
    """POSTs each notification as JSON to ``url``; with ``secret``, signs it:
    ``X-Lysmore-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""

    def __init__(self, url: str, *, secret: str | Callable[[], str] | None = None, timeout: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidConfig(f"a webhook URL must be http(s)://host/..., got {redact_url(_origin(url))!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidConfig(f"a webhook timeout must be positive seconds, got {timeout!r}")
        self._url = url
        self._secret = secret
        self.timeout = float(timeout)
        self.name = f"webhook:{_origin(url)}"  # no path or query: they may hold a token

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r})"

    def send(self, notification: Notification) -> None:
        body = json.dumps(notification.as_dict(), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "lysmore-reporter"}
        if self._secret is not None:
            secret = self._secret() if callable(self._secret) else self._secret
            stamp = str(int(time.time()))
            digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers["X-Lysmore-Signature"] = f"t={stamp},v1={digest}"
        request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) checked
            response.read()


class SentryChannel:
    """Sends each notification to Sentry through the official ``sentry-sdk`` (the ``monitoring``
    extra), on a client of its own: the application's global Sentry setup is left alone. Events
    carry kind, worker, queue, error type, prefix and node as tags and are fingerprinted by the
    group, so Sentry groups them as the reporter does."""

    def __init__(self, dsn: str | Callable[[], str], *, environment: str | None = None, timeout: float = 5.0) -> None:
        try:
            import sentry_sdk
        except ImportError:
            raise InvalidConfig("the Sentry channel needs sentry-sdk: pip install 'lysmore[monitoring]'") from None
        value = dsn() if callable(dsn) else dsn
        try:
            self._client = sentry_sdk.Client(
                dsn=value, environment=environment, default_integrations=False,
                auto_enabling_integrations=False,
            )
        except Exception as exc:  # BadDsn: its message may quote the key
            raise InvalidConfig(f"the Sentry DSN is not usable ({type(exc).__name__})") from None
        self.timeout = float(timeout)
        host = urllib.parse.urlsplit(value).hostname or "?"
        self.name = f"sentry:{host}"

    def __repr__(self) -> str:
        return f"SentryChannel({self.name!r})"

    def send(self, notification: Notification) -> None:
        n = notification.notice
        event: dict[str, Any] = {
            "level": "error" if n.kind in ("discard", "node_lost") else "warning",
            "logger": "lysmore.reporter",
            "message": notification.title,
            "fingerprint": ["lysmore", n.kind, n.worker or n.node, n.error_type],
            "tags": {"lysmore.kind": n.kind, "lysmore.worker": n.worker or "-", "lysmore.queue": n.queue or "-",
                     "lysmore.error_type": n.error_type, "lysmore.prefix": n.prefix, "lysmore.node": n.node},
            "exception": {"values": [{"type": n.error_type, "value": n.message}]},
            "extra": {"count": notification.count, "summary": notification.summary, "job_id": n.job_id,
                      "attempt": n.attempt, "max_attempts": n.max_attempts,
                      "rate_limited": notification.rate_limited, **({"args": n.args} if n.args is not None else {})},
        }
        self._client.capture_event(event)  # type: ignore[arg-type]  # a plain event dict, as documented
        self._client.flush(timeout=self.timeout)

    def close(self) -> None:
        self._client.close(timeout=self.timeout)


class LogChannel:
    """Logs each notification as a warning (``lysmore.notify``): a channel for demos and tests."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("lysmore.notify")

    def send(self, notification: Notification) -> None:
        self._log.warning("%s: %s", notification.title, notification.notice.message,
                          extra={"group": notification.notice.group, "count": notification.count})


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}"


# -- the reporter ---------------------------------------------------------------------------------

Record = Callable[[dict[str, Any]], None]


@dataclass
class _Group:
    last_sent: float
    held: int = 0
    first_held: float = 0.0
    last_seen: float = 0.0
    latest: Notice | None = None


@dataclass
class _Outbox:
    channel: Channel
    items: queue_mod.Queue[Notification | None]
    sent_at: deque[float] = field(default_factory=deque)
    rate_limited: int = 0
    thread: threading.Thread | None = None


class Reporter:
    """Turns job failures, discards, stale acks and lost nodes into notifications on ``channels``.

    ``window``: seconds a group's repeats are held back (and summarized after), and the window of
    the rate limit; ``limit``: notifications per window per channel; ``queue_size``: notices that
    may wait before new ones are dropped (counted in ``dropped``), ``outbox_size`` the same per
    channel; ``include_args``: put job arguments in notifications (off: they may hold secrets);
    ``secrets``: literal values masked in every message (besides passwords in URLs); ``kinds``:
    which of failure, discard, stale_ack, node_lost to report. Give it to one
    ``Engine(reporter=...)``: it names that engine's instance and node in what it sends.
    """

    def __init__(
        self, channels: Iterable[Channel], *, window: float = DEFAULT_WINDOW, limit: int = DEFAULT_LIMIT,
        queue_size: int = DEFAULT_QUEUE, outbox_size: int = OUTBOX_SIZE, include_args: bool = False,
        secrets: Iterable[str] = (), kinds: Iterable[str] = REPORTED_KINDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channels = list(channels)
        for channel in self.channels:
            if not callable(getattr(channel, "send", None)) or not isinstance(getattr(channel, "name", None), str):
                raise InvalidConfig(f"a reporter channel needs a name and a send(notification), got {channel!r}")
        if not isinstance(window, (int, float)) or isinstance(window, bool) or window <= 0:
            raise InvalidConfig(f"reporter window must be positive seconds, got {window!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidConfig(f"reporter limit must be a whole number of notifications of at least 1, got {limit!r}")
        for label, size in (("queue_size", queue_size), ("outbox_size", outbox_size)):
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise InvalidConfig(f"reporter {label} must be a whole number of at least 1, got {size!r}")
        self.kinds = frozenset(kinds)
        if self.kinds - REPORTED_KINDS:
            raise InvalidConfig(f"unknown reporter kinds {sorted(self.kinds - REPORTED_KINDS)}; "
                                f"known: {sorted(REPORTED_KINDS)}")
        self.window, self.limit, self.include_args = float(window), limit, include_args
        self.secrets = tuple(s for s in secrets if s)
        self._clock = clock
        self._intake: queue_mod.Queue[Notice | None] = queue_mod.Queue(maxsize=queue_size)
        self._groups: dict[str, _Group] = {}
        self._outboxes = [_Outbox(c, queue_mod.Queue(maxsize=outbox_size)) for c in self.channels]
        self._record: Record | None = None
        self.prefix, self.node = "", ""
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.dropped = 0  # notices or notifications dropped because a queue was full
        self.sent = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"Reporter({[c.name for c in self.channels]}, window={self.window:g}, limit={self.limit})"

    # -- wiring (by the engine) ---------------------------------------------------------------------
    def attach(self, prefix: str, node: str, record: Record | None) -> None:
        """Name the instance and node notices come from, and where delivered notifications are
        recorded (the engine's notifications table)."""
        if self._thread is not None:
            raise InvalidConfig("this Reporter is already running for another engine; give each engine its own")
        self.prefix, self.node, self._record = prefix, node, record

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="lysmore-reporter", daemon=True)
        self._thread.start()
        for box in self._outboxes:
            box.thread = threading.Thread(target=self._deliver, args=(box,), name=f"lysmore-notify-{box.channel.name}",
                                          daemon=True)
            box.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what waits (held-back repeats as summaries) for up to ``timeout`` seconds, then end."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        self._offer(None, force=True)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        for box in self._outboxes:
            try:
                box.items.put(None, timeout=max(0.01, deadline - time.monotonic()))
            except queue_mod.Full:
                pass
        for box in self._outboxes:
            if box.thread is not None:
                box.thread.join(max(0.01, deadline - time.monotonic()))
            close = getattr(box.channel, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    log.warning("closing notification channel %s failed: %s", box.channel.name, self.mask(str(exc)))
        self._thread = None

    def flush(self, timeout: float) -> bool:
        """Wait until every notice reported so far has been delivered or dropped (tests)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._intake.unfinished_tasks or any(b.items.unfinished_tasks for b in self._outboxes):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    # -- the producers' side: never blocks ----------------------------------------------------------
    def report(self, notice: Notice) -> bool:
        """Queue ``notice``; False (and counted in ``dropped``) when the queue is full."""
        if notice.kind not in self.kinds:
            return False
        return self._offer(notice)

    def _offer(self, notice: Notice | None, force: bool = False) -> bool:
        try:
            if force:
                self._intake.put(notice, timeout=1.0)
            else:
                self._intake.put_nowait(notice)
            return True
        except queue_mod.Full:
            with self._lock:
                self.dropped += 1
            return False

    def on_event(self, event: Event) -> None:
        """An ``Events`` subscriber: failure, discard and stale_ack events become notices."""
        job = event.job
        if job is None or event.kind not in self.kinds:
            return
        detail = event.detail or {}
        if event.kind == "stale_ack":
            error_type = "StaleAck"
            message = (f"the outcome of attempt {job.attempt} ({detail.get('state', '?')}) was refused: "
                       f"the attempt was {detail.get('reason', '?')} meanwhile")
        elif event.error is not None:
            error_type = type(event.error).__name__
            try:
                message = str(event.error)
            except Exception:
                message = "<str() of the exception failed>"
        else:  # a worker's Discard (or a missing worker): the reason is in its error entry
            error_type = "Discard"
            message = str(detail.get("error") or "discarded by its worker").removeprefix("discarded: ")
        self.report(Notice(
            kind=event.kind, prefix=self.prefix, node=self.node, worker=job.worker, queue=job.queue,
            error_type=error_type, message=message, job_id=job.id, attempt=job.attempt,
            max_attempts=job.max_attempts, args=dict(job.args) if self.include_args else None,
        ))

    def nodes_lost(self, rescued: Sequence[tuple[str | None, int, int]]) -> None:
        """The lifeline rescued jobs: (lost node name or None for orphans, jobs made available,
        jobs discarded) per node."""
        for node, available, discarded in rescued:
            what = f"{available + discarded} jobs rescued ({available} to run again, {discarded} discarded)"
            self.report(Notice(
                kind="node_lost", prefix=self.prefix, node=node or "(none)", worker="", queue="",
                error_type="NodeLost" if node else "OrphanedJobs",
                message=(f"node {node} was lost (heartbeat expired): {what}" if node
                         else f"no live node or producer ran some jobs: {what}"),
            ))

    def mask(self, text: str) -> str:
        """``text`` with passwords and the configured secrets masked, cut to ``MAX_MESSAGE``."""
        text = redact_url(text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + f"… ({len(text):,} characters)"

    # -- the reporter thread: grouping --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            due = self._next_due()
            try:
                notice = self._intake.get(timeout=None if due is None else max(0.0, due - self._clock()))
                taken, stopping = True, notice is None
            except queue_mod.Empty:
                notice, taken, stopping = None, False, False
            try:
                if notice is not None:
                    self._group(notice)
                self._summaries(final=stopping)
            except Exception:  # never lose the thread
                log.exception("reporter failed on a notice")
            finally:
                if taken:
                    self._intake.task_done()
                    self._settled()
            if stopping:
                return

    def _next_due(self) -> float | None:
        held = [g.last_sent + self.window for g in self._groups.values() if g.held]
        return min(held) if held else None

    def _group(self, notice: Notice) -> None:
        notice = _masked(notice, self.mask)
        now = self._clock()
        group = self._groups.get(notice.group)
        if group is None or now - group.last_sent >= self.window:
            held = group.held if group else 0
            first = group.first_held if group and group.held else now
            self._groups[notice.group] = _Group(last_sent=now)
            self._fan_out(Notification(notice, 1 + held, first, now))
            return
        if not group.held:
            group.first_held = now
        group.held += 1
        group.last_seen = now
        group.latest = notice

    def _summaries(self, final: bool = False) -> None:
        now = self._clock()
        for key, group in list(self._groups.items()):
            if group.held and group.latest is not None and (final or now - group.last_sent >= self.window):
                self._fan_out(Notification(group.latest, group.held, group.first_held, group.last_seen, summary=True))
                group.held, group.last_sent, group.latest = 0, now, None
            elif not group.held and now - group.last_sent >= 10 * self.window:
                del self._groups[key]  # quiet for long: forget it, so the table stays small

    def _fan_out(self, notification: Notification) -> None:
        for box in self._outboxes:
            try:
                box.items.put_nowait(notification)
            except queue_mod.Full:
                with self._lock:
                    self.dropped += 1
                log.warning("notification channel %s is behind; dropped a notification of %s",
                            box.channel.name, notification.notice.group)

    # -- one thread per channel: rate limit, send, record -------------------------------------------
    def _deliver(self, box: _Outbox) -> None:
        while True:
            notification = box.items.get()
            try:
                if notification is None:
                    return
                self._deliver_one(box, notification)
            except Exception:
                log.exception("notification channel %s failed unexpectedly", box.channel.name)
            finally:
                box.items.task_done()
                self._settled()

    def _settled(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def _deliver_one(self, box: _Outbox, notification: Notification) -> None:
        now = self._clock()
        while box.sent_at and now - box.sent_at[0] >= self.window:
            box.sent_at.popleft()
        if len(box.sent_at) >= self.limit:
            box.rate_limited += 1
            self._store(box, notification, "rate_limited", None)
            return
        box.sent_at.append(now)
        if box.rate_limited:
            notification = Notification(**{**_fields(notification), "rate_limited": box.rate_limited})
        try:
            box.channel.send(notification)
        except BaseException as exc:  # noqa: B036 - a channel must never take the reporter down
            error = self.mask(f"{type(exc).__name__}: {exc}")
            log.warning("notification channel %s failed: %s", box.channel.name, error,
                        extra={"group": notification.notice.group})
            with self._lock:
                self.failed += 1
            self._store(box, notification, "failed", error)
            return
        box.rate_limited = 0
        with self._lock:
            self.sent += 1
        self._store(box, notification, "sent", None)

    def _store(self, box: _Outbox, notification: Notification, status: str, error: str | None) -> None:
        if self._record is None:
            return
        n, now = notification.notice, self._clock()
        row = {
            "group_key": n.group, "kind": n.kind, "worker": n.worker, "queue": n.queue,
            "error_type": n.error_type, "message": n.message, "node": n.node, "job_id": n.job_id,
            "channel": box.channel.name, "status": status, "count": notification.count,
            "first_age": max(0.0, now - notification.first_seen), "last_age": max(0.0, now - notification.last_seen),
            "error": error,
        }
        try:
            self._record(row)
        except Exception as exc:
            log.warning("could not record a notification of %s: %s", n.group, self.mask(str(exc)))


def _fields(notification: Notification) -> dict[str, Any]:
    return {f: getattr(notification, f) for f in Notification.__dataclass_fields__}


def _masked(notice: Notice, mask: Callable[[str], str]) -> Notice:
    values = {f: getattr(notice, f) for f in Notice.__dataclass_fields__}
    values["message"] = mask(notice.message)
    return Notice(**values)
