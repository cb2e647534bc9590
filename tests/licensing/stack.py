"""The licensing app wired for tests: real PostgreSQL, the Stripe sandbox, an SMTP sink with auth, uvicorn."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import stripe
from aiosmtpd.smtp import AuthResult, LoginPassword
from psycopg import sql
from psycopg.rows import dict_row

from licensing.app import LicensingApp
from licensing.keys import generate_signing_key
from licensing.mail import SinkHandler, SmtpSink, SunkMail
from licensing.sandbox import StripeSandbox
from licensing.serve import WebServer
from licensing.settings import LicensingSettings
from licensing.webhooks import EVENT_TYPES

from ..helpers import wait_for

SMTP_USER = "lysmore-mailer"


def fresh_secrets() -> dict[str, str]:
    """A new set of secrets for one test (each distinctive enough to grep for)."""
    return {
        "stripe_api_key": "sk_test_" + secrets.token_hex(16),
        "webhook_secret": "whsec_" + secrets.token_hex(20),
        "license_signing_key": generate_signing_key(),
        "hex_key_secret": "hexsecret-" + secrets.token_hex(16),
        "smtp_password": "smtp-" + secrets.token_hex(12),
    }


def make_settings(
    database_url: str, prefix: str, secret: dict[str, str], *, stripe_api_base: str | None = None,
    smtp_host: str | None = None, smtp_port: int = 25, **over: Any,
) -> LicensingSettings:
    """Settings for a test instance: short intervals and backoff, the test's secrets."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "prefix": prefix,
        "stripe_api_base": stripe_api_base,
        "smtp_host": smtp_host,
        "smtp_port": smtp_port,
        "smtp_username": SMTP_USER,
        "job_backoff": 0.05,
        "lock_snooze": 0.1,
        "poll_interval": 0.2,
        "stage_interval": 0.1,
        "heartbeat_interval": 0.2,
        "node_ttl": 3.0,
        "leader_lease": 1.0,
        **secret,
        **over,
    }
    return LicensingSettings(**values)


def auth_sink(password: str, handler: SinkHandler | None = None) -> SmtpSink:
    """An SMTP sink that checks our login (counted in ``sink.logins``), so the SMTP password is really used."""
    logins: list[bool] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode() and (
            auth_data.password == password.encode()
        )
        logins.append(ok)
        return AuthResult(success=ok)

    sink = SmtpSink(handler=handler, authenticator=authenticate, auth_require_tls=False)
    sink.logins = logins  # type: ignore[attr-defined]
    return sink


@dataclass
class Stack:
    """Everything one test runs: app, sandbox, sink, web server."""

    app: LicensingApp
    sandbox: StripeSandbox
    sink: SmtpSink
    server: WebServer
    secret: dict[str, str]
    client: stripe.StripeClient
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hook_url(self) -> str:
        """The webhook endpoint's URL."""
        return f"{self.server.url}/webhooks/stripe"

    def payment_method(self, token: str = "tok_visa") -> str:
        """A payment method made the way Stripe.js would, before sign-up."""
        pm = self.client.v1.payment_methods.create(params={"type": "card", "card": {"token": token}})
        return str(pm.id)

    def rows(self, table: str, where: str = "TRUE", params: Any = None) -> list[dict[str, Any]]:
        """Rows of an app table."""
        return select(self.app.engine.database_url, sql.SQL("SELECT * FROM {}.{} WHERE " + where).format(
            sql.Identifier(self.app.schema), sql.Identifier(table)), params)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job row of the private instance."""
        return select(self.app.engine.database_url, sql.SQL("SELECT * FROM {}.lysmore_jobs ORDER BY id").format(
            sql.Identifier(self.app.prefix)))

    def mails(self, subject_prefix: str) -> list[SunkMail]:
        """Mails the sink kept whose subject starts with ``subject_prefix``."""
        return [m for m in self.sink.messages if m.subject.startswith(subject_prefix)]

    def wait_workflows_done(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``count`` workflows exist and every step of every workflow is finished."""

        def done() -> list[dict[str, Any]]:
            steps = [j for j in self.jobs() if j["workflow_id"] is not None]
            if len({j["workflow_id"] for j in steps}) < count:
                return []
            if any(j["state"] not in ("completed", "cancelled", "discarded") for j in steps):
                return []
            return steps

        return wait_for(done, timeout, f"{count} finished workflow(s)")

    def wait_completed(self, job_id: int, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the job ``job_id`` completed; returns its row."""

        def done() -> dict[str, Any]:
            return next((j for j in self.jobs() if j["id"] == job_id and j["state"] == "completed"), {})

        return wait_for(done, timeout, f"job {job_id} completed")


def select(url: str, query: Any, params: Any = None) -> list[dict[str, Any]]:
    """Run one query on a fresh connection; rows as dicts."""
    with psycopg.connect(url, autocommit=True) as c, c.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


@contextmanager
def licensing_stack(
    database_url: str, prefix: str, sandbox: StripeSandbox, *, start_node: bool = True,
    max_network_retries: int = 2, sink_handler: SinkHandler | None = None, **over: Any,
) -> Iterator[Stack]:
    """Start sink, app (migrated; its node if ``start_node``) and web server; register the endpoint."""
    secret = fresh_secrets()
    with ExitStack() as stack:
        sink = auth_sink(secret["smtp_password"], sink_handler).start()
        stack.callback(sink.stop)
        settings = make_settings(
            database_url, prefix, secret, stripe_api_base=sandbox.url, smtp_host=sink.host, smtp_port=sink.port,
            stripe_max_network_retries=max_network_retries, **over,
        )
        app = LicensingApp(settings)
        app.migrate()
        stack.callback(app.stop, 2.0)
        server = WebServer(app.web_app()).start()
        stack.callback(server.stop)
        client = sandbox.client(secret["stripe_api_key"])
        built = Stack(app, sandbox, sink, server, secret, client)
        sandbox.add_webhook_endpoint(built.hook_url, secret=secret["webhook_secret"], enabled_events=EVENT_TYPES)
        if start_node:
            app.start()
        yield built
