"""The licensing app: the private Engine instance, its tables, Stripe, mail and keys, wired from settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import psycopg
import stripe
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette

from engine import (
    Channel,
    Engine,
    InvalidConfig,
    Job,
    Reporter,
    SentryChannel,
    SmtpChannel,
    WebhookChannel,
)

from . import accounts, context, db, licenses
from .accounts import Account, AccountError
from .keys import (
    hex_key_for,
    hex_key_hash,
    key_id,
    license_key_for,
    load_signing_key,
    public_key_text,
)
from .mail import Mailer, SmtpConfig
from .settings import LicensingSettings, load_licensing_settings
from .stripe_ops import make_stripe_client
from .workers import UpdateWorker

log = logging.getLogger("licensing.app")


class LicensingApp:
    """One licensing instance: ``migrate()``, ``start()`` its node, ``web_app()`` for webhooks, ``sign_up(...)``."""

    def __init__(
        self,
        settings: LicensingSettings | None = None,
        *,
        stripe_client: stripe.StripeClient | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.settings = settings or load_licensing_settings()
        s = self.settings
        self.prefix = s.prefix
        self.schema = s.app_schema
        self.q = db.Sql(self.schema)
        self.engine = Engine(
            s.database_url.get_secret_value() if s.database_url else None,
            prefix=s.prefix,
            node=s.node,
            queues={"default": s.queue_limit},
            poll_interval=s.poll_interval,
            stage_interval=s.stage_interval,
            heartbeat_interval=s.heartbeat_interval,
            pool_size=s.pool_size,
            node_ttl=s.node_ttl,
            leader_lease=s.leader_lease,
            prune_max_age=None,  # the private instance keeps its history for troubleshooting
            reporter=self._reporter(),
        )
        self._stripe = stripe_client
        self._mailer = mailer
        self._signing_key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()
        context.register(self)

    def __repr__(self) -> str:
        return f"<LicensingApp prefix={self.prefix!r} schema={self.schema!r}>"

    def _reporter(self) -> Reporter | None:
        """The error reporter of this instance (``monitor_*`` settings): mail to the team through
        this app's mailer, and a webhook and Sentry when configured; every secret masked."""
        s = self.settings
        channels: list[Channel] = []
        if s.monitor_mail:
            channels.append(SmtpChannel(s.mail_from, s.monitor_mail_to or s.team_email,
                                        deliver=lambda message: self.mailer.send(message)))
        if s.monitor_webhook_url is not None:
            hook_secret = s.monitor_webhook_secret
            channels.append(WebhookChannel(s.monitor_webhook_url.get_secret_value(),
                                           secret=hook_secret.get_secret_value if hook_secret else None))
        if s.monitor_sentry_dsn is not None:
            channels.append(SentryChannel(s.monitor_sentry_dsn.get_secret_value))
        if not channels:
            return None
        kinds = ["discard", "stale_ack", "node_lost"] + (["failure"] if s.monitor_failures else [])
        return Reporter(channels, window=s.monitor_window, limit=s.monitor_limit, kinds=kinds,
                        secrets=s.secret_values())

    # -- services, made on first use ------------------------------------------------------------
    @property
    def stripe(self) -> stripe.StripeClient:
        """The Stripe client (the real API, or the sandbox named by ``stripe_api_base``)."""
        with self._lock:
            if self._stripe is None:
                self._stripe = make_stripe_client(self.settings)
            return self._stripe

    @property
    def mailer(self) -> Mailer:
        """The SMTP mailer."""
        with self._lock:
            if self._mailer is None:
                s = self.settings
                if not s.smtp_host:
                    raise InvalidConfig("no SMTP server: set LYSMORE_LICENSING_SMTP_HOST (or run `lysmore licensing serve`)")
                password = s.smtp_password
                self._mailer = Mailer(
                    SmtpConfig(
                        host=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
                        password=password.get_secret_value if password is not None else None,
                        starttls=s.smtp_starttls, timeout=s.smtp_timeout,
                    )
                )
            return self._mailer

    def signing_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key licenses are signed with."""
        with self._lock:
            if self._signing_key is None:
                secret = self.settings.license_signing_key
                if secret is None:
                    raise InvalidConfig("no license signing key: set LYSMORE_LICENSING_LICENSE_SIGNING_KEY")
                try:
                    self._signing_key = load_signing_key(secret.get_secret_value())
                except ValueError as exc:
                    raise InvalidConfig(f"LYSMORE_LICENSING_LICENSE_SIGNING_KEY: {exc}") from None
            return self._signing_key

    def public_key(self) -> str:
        """The public half of the signing key, to publish for offline license checks."""
        return public_key_text(self.signing_key())

    def key_id(self) -> str:
        """The fingerprint of the signing key written into licenses."""
        return key_id(self.signing_key())

    def hex_secret(self) -> str:
        """The secret package keys are derived with."""
        secret = self.settings.hex_key_secret
        if secret is None or not secret.get_secret_value():
            raise InvalidConfig("no package key secret: set LYSMORE_LICENSING_HEX_KEY_SECRET")
        return secret.get_secret_value()

    def webhook_secret(self) -> str:
        """The webhook signing secret."""
        secret = self.settings.webhook_secret
        if secret is None or not secret.get_secret_value():
            raise InvalidConfig("no webhook secret: set LYSMORE_LICENSING_WEBHOOK_SECRET")
        return secret.get_secret_value()

    def check_ready(self) -> None:
        """Raise ``InvalidConfig`` naming what a node needs and lacks (Stripe key, SMTP, signing key, key secret)."""
        _ = self.stripe, self.mailer, self.signing_key(), self.hex_secret()

    # -- lifecycle ------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create or upgrade the engine schema and the app schema; idempotent."""
        self.engine.migrate()
        with self.engine.connection() as c:
            db.migrate(c, self.schema, self.settings.plans)

    def start(self) -> LicensingApp:
        """Start this process's node of the private instance (queue ``default``)."""
        self.check_ready()
        self.engine.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop the node (if started) and close connections."""
        self.engine.stop(grace)
        context.unregister(self)

    def web_app(self) -> Starlette:
        """The Starlette app with the webhook endpoint."""
        from .webhooks import build_web_app

        return build_web_app(self)

    @contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """Hold a transaction-scoped advisory lock named ``name`` in this app's schema, if free; yields
        whether it was taken."""
        with self.engine.atomic() as c:
            row = c.execute(
                "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [f"{self.schema}:{name}"]
            ).fetchone()
            yield bool(row and row[0])

    def account_lock(self, account_id: int) -> AbstractContextManager[bool]:
        """Hold a transaction-scoped advisory lock on one account, if free; yields whether it was taken."""
        return self.try_lock(f"account:{account_id}")

    def job_meta(self) -> dict[str, Any]:
        """The meta every job of this app carries: the instance it belongs to."""
        return {context.META_KEY: self.prefix}

    # -- accounts -------------------------------------------------------------------------------
    def sign_up(
        self, *, email: Any, name: Any = None, plan: Any, payment_method: Any = None,
        conn: psycopg.Connection | None = None,
    ) -> tuple[Account, Job]:
        """Create an account and its update job in one transaction; the job does the Stripe work."""
        email = accounts.check_email(email)
        if plan not in self.settings.plans:
            raise AccountError(f"unknown plan {plan!r}; plans: {sorted(self.settings.plans)}")
        if name is not None and (not isinstance(name, str) or len(name) > 254):
            raise AccountError("name must be a string of at most 254 characters")
        if payment_method is not None and (not isinstance(payment_method, str) or not payment_method.startswith("pm_")):
            raise AccountError("payment_method must be a Stripe payment method id (pm_...)")
        with self.engine.atomic(conn) as c:
            account = accounts.insert_account(c, self.q, email=email, name=name, plan=plan, payment_method=payment_method)
            job = self.engine.insert(
                UpdateWorker.new({"id": account.id, "plan": plan, "seq": account.plan_seq}, meta=self.job_meta()),
                conn=c,
            )
        log.info("account %s signed up for %s; update job %s", account.id, plan, job.id)
        return account, job

    def change_plan(
        self, account_id: int, plan: str, *, payment_method: str | None = None, conn: psycopg.Connection | None = None
    ) -> Job:
        """Record a plan change (and maybe a new card) and enqueue the update job, in one transaction.

        A repeated request (nothing changes) meets the update job of the same change for 120 s; a real
        change gets a job of its own, and the last change wins (see the README). On an account whose
        subscription has ended it subscribes again (a new subscription, charged at once), unless a
        dispute ended it and no person has allowed it since (``allow_resubscribe``): then
        ``AccountError`` and nothing is written."""
        if plan not in self.settings.plans:
            raise AccountError(f"unknown plan {plan!r}")
        if payment_method is not None and (not isinstance(payment_method, str) or not payment_method.startswith("pm_")):
            raise AccountError("payment_method must be a Stripe payment method id (pm_...)")
        with self.engine.atomic(conn) as c:
            acc = self._locked_account(c, account_id)
            ended = acc.subscription_id is not None and not acc.has_live_subscription
            if not acc.has_live_subscription:
                hold = accounts.open_hold(c, self.q, account_id)
                if hold is not None:
                    raise AccountError(f"account {account_id} may not subscribe again: {accounts.hold_text(hold)}: "
                                       "a person must re-allow it (LicensingApp.allow_resubscribe)")
            acc = accounts.set_plan(c, self.q, account_id, plan, payment_method, resubscribe=ended)
            return self.engine.insert(
                UpdateWorker.new({"id": account_id, "plan": plan, "seq": acc.plan_seq}, meta=self.job_meta()), conn=c
            )

    def update_info(self, account_id: int, info: dict[str, Any], *, conn: psycopg.Connection | None = None) -> Job:
        """Record changed details (email, name) and enqueue the update job, in one transaction."""
        clean = accounts.check_info(info)
        with self.engine.atomic(conn) as c:
            acc = accounts.set_info(c, self.q, account_id, clean)
            return self.engine.insert(
                UpdateWorker.new({"id": account_id, "info": clean, "seq": acc.info_seq}, meta=self.job_meta()), conn=c
            )

    def set_cancel_at_period_end(
        self, account_id: int, cancel: bool, *, conn: psycopg.Connection | None = None
    ) -> Job:
        """Record that the customer wants the subscription to end at the period end (or no longer
        wants it to: un-cancel) and enqueue the update job that tells Stripe, in one transaction.

        Only for a live subscription: with none recorded, or one that has ended (``canceled``,
        ``incomplete_expired``), ``AccountError`` and nothing is written. The job (``"cancel"`` in its
        args) never creates a subscription either, should it have ended by the time it runs."""
        if not isinstance(cancel, bool):
            raise AccountError(f"cancel must be true or false, got {cancel!r}")
        what = "cancel" if cancel else "un-cancel"
        with self.engine.atomic(conn) as c:
            acc = self._locked_account(c, account_id)
            if acc.subscription_id is None:
                raise AccountError(f"account {account_id} has no subscription to {what}")
            if not acc.has_live_subscription:
                raise AccountError(
                    f"account {account_id} cannot {what}: its subscription {acc.subscription_id} has ended "
                    f"({acc.subscription_status}); a plan change subscribes again"
                )
            acc = accounts.set_cancel(c, self.q, account_id, cancel)
            if acc.plan is None:
                raise AccountError(f"account {account_id} has no plan to {what}")
            return self.engine.insert(
                UpdateWorker.new({"id": account_id, "plan": acc.plan, "seq": acc.plan_seq, "cancel": cancel},
                                 meta=self.job_meta()),
                conn=c,
            )

    def allow_resubscribe(self, account_id: int, *, conn: psycopg.Connection | None = None) -> list[str]:
        """A person's decision: let an account whose subscription a dispute ended subscribe again
        (``change_plan``). Lifts every hold on it, writes an audit row, and returns the charges whose
        holds were lifted; ``AccountError`` when there is no such account or nothing holds it."""
        with self.engine.atomic(conn) as c:
            self._locked_account(c, account_id)
            lifted = accounts.lift_holds(c, self.q, account_id)
            if not lifted:
                raise AccountError(f"account {account_id} is not held from subscribing again: nothing to allow")
            charges = [str(row["charge_id"]) for row in lifted]
            self.engine.record_audit(
                "licensing", "allow_resubscribe", targets=[account_id], outcome="allowed",
                detail={"charges": charges, "subscriptions": sorted({str(r["subscription_id"]) for r in lifted})},
                conn=c,
            )
        log.warning("account %s may subscribe again (held after charge(s) %s)", account_id, ", ".join(charges))
        return charges

    def _locked_account(self, conn: psycopg.Connection, account_id: int) -> Account:
        """The account, its row locked until the transaction ends (requests on it are judged one at a time)."""
        if not isinstance(account_id, int) or isinstance(account_id, bool):
            raise AccountError(f"an account id is an integer, got {account_id!r}")
        acc = accounts.load(conn, self.q, account_id, for_update=True)
        if acc is None:
            raise AccountError(f"no account {account_id}")
        return acc

    def account(self, account_id: int) -> Account | None:
        """The account as stored now."""
        with self.engine.connection() as c:
            return accounts.load(c, self.q, account_id)

    def hex_key_valid(self, key: str) -> bool:
        """Whether a package key is issued and not past the end of a revocation (what a repository asks)."""
        with self.engine.connection() as c:
            row = db.one(
                c,
                self.q(
                    "SELECT 1 AS ok FROM {s}.hex_keys WHERE key_hash = %s "
                    "AND (revoked_at IS NULL OR ends_at > now())"
                ),
                [hex_key_hash(key)],
            )
        return row is not None

    def license_key_of(self, subscription_id: str) -> str:
        """The key a subscription's license is checked online by (derived, the same on every re-issue)."""
        return license_key_for(self.hex_secret(), subscription_id)

    def license_status(self, key: str, *, now: datetime | None = None) -> dict[str, Any] | None:
        """``{"status": valid|expired|revoked, "expires_at", "ends_at"}`` of a license key, or None if unknown."""
        with self.engine.connection() as c:
            return licenses.status(c, self.q, key, now=now)

    def hex_key_of(self, subscription_id: str) -> str:
        """The package key of a subscription (derived again; it is never stored)."""
        return hex_key_for(self.hex_secret(), subscription_id)


def make_engine() -> Engine:
    """The private instance's Engine for ``lysmore worker --app licensing.app:make_engine`` (settings from env)."""
    app = LicensingApp()
    app.check_ready()
    app.migrate()
    return app.engine
