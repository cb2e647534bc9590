"""Mail through SMTP (smtplib), the messages the workflows send, and a local SMTP sink (aiosmtpd)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any

from aiosmtpd.controller import Controller

from engine import send_mail

log = logging.getLogger("licensing.mail")


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to deliver mail (the password stays a callable so it is never stored in a repr)."""

    host: str
    port: int
    username: str | None = None
    password: Callable[[], str] | None = None
    starttls: bool = False
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"SmtpConfig(host={self.host!r}, port={self.port!r}, username={self.username!r})"


class Mailer:
    """Sends ``EmailMessage`` objects through one SMTP connection per message."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; raises ``smtplib.SMTPException`` or ``OSError`` so the job retries."""
        cfg = self.config
        send_mail(message, host=cfg.host, port=cfg.port, username=cfg.username, password=cfg.password,
                  starttls=cfg.starttls, timeout=cfg.timeout)
        log.info("sent mail %s to %s: %s", message["Message-ID"], message["To"], message["Subject"])


def message_id(event_id: str, step: str, instance: str, sender: str) -> str:
    """A Message-ID fixed by event and step, so a resent mail is recognisable as the same mail."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "lysmore.invalid"
    return f"<{event_id}.{step}.{instance}@{domain}>"


def _base(sender: str, to: str, subject: str, msg_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = msg_id
    return msg


def welcome_message(
    *, sender: str, to: str, name: str | None, plan: str | None, hex_key: str, license_text: str,
    public_key: str, msg_id: str,
) -> EmailMessage:
    """The welcome mail: the package-repository key and the signed license file."""
    msg = _base(sender, formataddr((name or "", to)), "Welcome to Lysmore Pro", msg_id)
    msg.set_content(
        f"Hello{' ' + name if name else ''},\n\n"
        f"thank you for subscribing to Lysmore Pro ({plan or 'custom'} plan).\n\n"
        f"Your package repository key:\n\n    {hex_key}\n\n"
        "Your self-hosting license is attached (lysmore.license). It is signed with Ed25519 and can\n"
        f"be checked offline against our public key:\n\n    {public_key}\n\n"
        "-- The Lysmore team\n"
    )
    msg.add_attachment(license_text.encode("utf-8"), maintype="text", subtype="plain", filename="lysmore.license")
    return msg


def notify_message(*, sender: str, to: str, subject: str, lines: list[str], msg_id: str) -> EmailMessage:
    """A short note to the team."""
    msg = _base(sender, to, subject, msg_id)
    msg.set_content("\n".join(lines) + "\n")
    return msg


def farewell_message(
    *, sender: str, to: str, name: str | None, ends: str | None, msg_id: str
) -> EmailMessage:
    """The mail telling a customer their subscription ends and what that means for key and license."""
    when = f"on {ends}" if ends else "now"
    msg = _base(sender, formataddr((name or "", to)), "Your Lysmore Pro subscription", msg_id)
    msg.set_content(
        f"Hello{' ' + name if name else ''},\n\n"
        f"your Lysmore Pro subscription ends {when}. From then on your package repository key and\n"
        "your self-hosting license are revoked. You can subscribe again at any time.\n\n"
        "-- The Lysmore team\n"
    )
    return msg


def cancelled_after_charge_message(
    *, sender: str, to: str, name: str | None, disputed: bool, amount: str, paid_on: str, msg_id: str
) -> EmailMessage:
    """The mail when the app cancelled a subscription because its payment was refunded in full or disputed."""
    msg = _base(sender, formataddr((name or "", to)), "Your Lysmore Pro subscription was cancelled", msg_id)
    if disputed:
        why = (f"your bank told us that you disputed your payment of {amount} from {paid_on}, so we have\n"
               "cancelled your Lysmore Pro subscription at once")
        after = "If the dispute was a mistake, please reply to this mail and we will sort it out with you.\n\n"
    else:
        why = (f"your payment of {amount} from {paid_on} was refunded to you in full, so we have cancelled\n"
               "your Lysmore Pro subscription at once")
        after = "If you did not expect this, please reply to this mail. You can subscribe again at any time.\n\n"
    msg.set_content(
        f"Hello{' ' + name if name else ''},\n\n"
        f"{why}: no further payments will be taken. Your package repository key and your\n"
        "self-hosting license are revoked as of now.\n\n"
        f"{after}"
        "-- The Lysmore team\n"
    )
    return msg


def renewal_message(
    *, sender: str, to: str, name: str | None, plan: str | None, expires: str, license_text: str, msg_id: str
) -> EmailMessage:
    """The mail after a paid renewal: the re-issued license file with its new expiry."""
    msg = _base(sender, formataddr((name or "", to)), f"Renewed: Lysmore Pro until {expires}", msg_id)
    msg.set_content(
        f"Hello{' ' + name if name else ''},\n\n"
        f"thank you: your Lysmore Pro subscription ({plan or 'custom'} plan) was renewed.\n\n"
        f"Your self-hosting license now runs until {expires}; the renewed file is attached\n"
        "(lysmore.license). Replace the old one before it expires.\n\n"
        "-- The Lysmore team\n"
    )
    msg.add_attachment(license_text.encode("utf-8"), maintype="text", subtype="plain", filename="lysmore.license")
    return msg


def dunning_message(*, sender: str, to: str, name: str | None, amount: str, url: str, msg_id: str) -> EmailMessage:
    """The mail after a failed payment: what is due and the hosted invoice page to pay it on."""
    msg = _base(sender, formataddr((name or "", to)), "Payment failed: Lysmore Pro", msg_id)
    msg.set_content(
        f"Hello{' ' + name if name else ''},\n\n"
        f"we could not collect {amount} for your Lysmore Pro subscription. We will try again in a few\n"
        "days; you can also pay now, or use another card, here:\n\n"
        f"    {url}\n\n"
        "If it stays unpaid, your package repository key and self-hosting license are suspended.\n\n"
        "-- The Lysmore team\n"
    )
    return msg


def action_required_message(
    *, sender: str, to: str, name: str | None, amount: str, url: str, msg_id: str
) -> EmailMessage:
    """The mail when the bank asks the customer to confirm a payment (3-D Secure): the link to do it."""
    msg = _base(sender, formataddr((name or "", to)), "Action needed: confirm your Lysmore Pro payment", msg_id)
    msg.set_content(
        f"Hello{' ' + name if name else ''},\n\n"
        f"your bank asks you to confirm the payment of {amount} for Lysmore Pro. Please finish it here:\n\n"
        f"    {url}\n\n"
        "Your subscription starts (or continues) as soon as the payment is confirmed.\n\n"
        "-- The Lysmore team\n"
    )
    return msg


def money(amount: object, currency: object) -> str:
    """An amount in the smallest currency unit as people write it (``1900, "usd"`` -> ``19.00 USD``)."""
    cents = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
    return f"{cents // 100}.{cents % 100:02d} {str(currency or '').upper()}".rstrip()


# -- a local SMTP sink ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SunkMail:
    """One message the sink accepted."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        """The message's subject."""
        return str(self.message["Subject"] or "")

    @property
    def message_id(self) -> str:
        """The message's Message-ID header."""
        return str(self.message["Message-ID"] or "")

    def text(self) -> str:
        """The plain-text body."""
        body = self.message.get_body(preferencelist=("plain",))
        return body.get_content() if body is not None else ""

    def attachments(self) -> dict[str, str]:
        """Attachments by file name, as text."""
        out: dict[str, str] = {}
        for part in self.message.iter_attachments():
            content = part.get_content()
            out[part.get_filename() or ""] = content.decode() if isinstance(content, bytes) else content
        return out


class SinkHandler:
    """aiosmtpd handler that keeps every message in memory and logs where it went (never its body)."""

    def __init__(self) -> None:
        self.messages: list[SunkMail] = []
        self.cond = threading.Condition()

    def accept(self, envelope: Any) -> SunkMail:
        """Parse and keep one message."""
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        mail = SunkMail(envelope.mail_from, tuple(envelope.rcpt_tos), parsed)
        with self.cond:
            self.messages.append(mail)
            self.cond.notify_all()
        log.info("SMTP sink kept mail to %s: %s (not delivered anywhere)", ", ".join(mail.recipients), mail.subject)
        return mail

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        """Accept the message."""
        self.accept(envelope)
        return "250 Message accepted for delivery"


class _AnyPortController(Controller):
    """aiosmtpd's Controller, able to bind port 0 and report the port it got."""

    def _create_server(self) -> Any:
        async def serve() -> asyncio.AbstractServer:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return serve()


class SmtpSink:
    """A local SMTP server (aiosmtpd in a thread) that keeps mail instead of delivering it."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, handler: SinkHandler | None = None, **smtp_options: Any
    ) -> None:
        self.handler = handler or SinkHandler()
        self._controller = _AnyPortController(self.handler, hostname=host, port=port, **smtp_options)

    @property
    def host(self) -> str:
        """The address the sink listens on."""
        return str(self._controller.hostname)

    @property
    def port(self) -> int:
        """The port the sink listens on (known once started)."""
        return int(self._controller.port)

    @property
    def messages(self) -> list[SunkMail]:
        """Every message accepted so far."""
        with self.handler.cond:
            return list(self.handler.messages)

    def start(self) -> SmtpSink:
        """Start serving; returns self."""
        quiet = logging.getLogger("mail.log")  # aiosmtpd: every DATA line (keys, licenses) at DEBUG, chatter at INFO
        if quiet.level < logging.WARNING:
            quiet.setLevel(logging.WARNING)
        self._controller.start()
        log.info("SMTP sink listening on %s:%d; mail is logged here, not delivered", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._controller.stop(no_assert=True)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[list[SunkMail]], bool], timeout: float = 20.0) -> list[SunkMail]:
        """Block until ``predicate(messages)`` holds; raises ``TimeoutError`` otherwise."""
        with self.handler.cond:
            if not self.handler.cond.wait_for(lambda: predicate(self.handler.messages), timeout):
                raise TimeoutError(f"mail never arrived; have {[m.subject for m in self.handler.messages]}")
            return list(self.handler.messages)
