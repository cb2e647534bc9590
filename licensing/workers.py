"""The private instance's workers: the Stripe update job, and the steps of the webhook workflows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import stripe

from engine import Cancel, Discard, Job, Snooze, Worker

from . import accounts, licenses, stripe_ops
from .accounts import Account, AccountError
from .context import app_for
from .db import one
from .keys import hex_key_display, hex_key_for, hex_key_hash
from .mail import farewell_message, message_id, notify_message, welcome_message

if TYPE_CHECKING:
    from .app import LicensingApp

log = logging.getLogger("licensing.workers")

GRANTABLE = ("active", "trialing")


class LicensingWorker(Worker):
    """Base of the app's workers: the app's fixed backoff when one is configured (tests), else the engine's."""

    def backoff(self, job: Job) -> float:
        """Seconds before the next attempt."""
        try:
            fixed = app_for(job).settings.job_backoff
        except RuntimeError:
            fixed = None
        return fixed if fixed is not None else super().backoff(job)


class UpdateWorker(LicensingWorker, queue="default", unique={"period": 120}, max_attempts=20):
    """``{"id", "plan", "seq"}``: attach the card, update the customer, create or update the subscription;
    ``{"id", "info", "seq"}``: update details. ``plan``/``info`` say what was asked (for people reading
    the job); what is sent is the account's wanted state when the job runs. ``seq`` is the account's
    ``plan_seq`` / ``info_seq``: a repeated click has the same one and meets the unique job, a real
    change a new one."""

    def perform(self, job: Job) -> Any:
        """Run the steps that are not done yet, one account at a time."""
        app = app_for(job)
        account_id = job.args.get("id")
        if not isinstance(account_id, int) or isinstance(account_id, bool):
            return Discard(f"args need an integer id, got {account_id!r}")
        with app.account_lock(account_id) as held:
            if not held:
                return Snooze(app.settings.lock_snooze)
            try:
                if "plan" in job.args:
                    return stripe_ops.apply_plan(app, job, account_id)
                if "info" in job.args:
                    return stripe_ops.apply_info(app, job, account_id)
            except stripe.CardError as exc:
                log.warning("account %s: card refused (%s); not retrying", account_id, exc.code)
                return Cancel(f"card refused: {exc.code or 'declined'}")
            except stripe.InvalidRequestError as exc:
                log.error("account %s: Stripe refused the request: %s", account_id, exc.user_message)
                return Discard(f"Stripe refused the request: {exc.user_message}")
            except AccountError as exc:
                return Discard(str(exc))
        return Discard("args must be {id, plan} or {id, info}")


# -- shared by the webhook workflow steps ---------------------------------------------------------


def _event(app: LicensingApp, job: Job) -> dict[str, Any]:
    event_id = job.args["event"]
    with app.engine.connection() as c:
        row = one(c, app.q("SELECT payload FROM {s}.stripe_events WHERE id = %s"), [event_id])
    if row is None:
        raise LookupError(f"event {event_id} is not recorded")
    payload: dict[str, Any] = row["payload"]
    return payload


def _subscription(app: LicensingApp, job: Job) -> dict[str, Any]:
    obj: dict[str, Any] = _event(app, job)["data"]["object"]
    return obj


def _account_for(app: LicensingApp, sub: dict[str, Any]) -> Account:
    """The account a subscription belongs to: by its metadata, else by its customer."""
    meta = sub.get("metadata") or {}
    instance = meta.get(stripe_ops.META_INSTANCE)
    if instance and instance != app.prefix:
        raise Cancel(f"subscription {sub.get('id')} belongs to instance {instance!r}")
    with app.engine.connection() as c:
        acc = None
        ident = meta.get(stripe_ops.META_ACCOUNT)
        if instance == app.prefix and isinstance(ident, str) and ident.isdigit():
            acc = accounts.load(c, app.q, int(ident))
        if acc is None and sub.get("customer"):
            acc = accounts.find_by_customer(c, app.q, str(sub["customer"]))
    if acc is None:
        raise LookupError(f"no account for customer {sub.get('customer')} (yet)")
    return acc


def _plan_of(app: LicensingApp, sub: dict[str, Any]) -> str:
    items = (sub.get("items") or {}).get("data") or []
    price = items[0]["price"]["id"] if items else None
    with app.engine.connection() as c:
        plan = accounts.plan_of_price(c, app.q, price)
    return plan or str((sub.get("metadata") or {}).get("lysmore_plan") or "custom")


def _mail_sent(app: LicensingApp, event_id: str, step: str) -> bool:
    with app.engine.connection() as c:
        row = one(c, app.q("SELECT 1 AS sent FROM {s}.mails WHERE event_id = %s AND step = %s"), [event_id, step])
    return row is not None


def _record_mail(app: LicensingApp, event_id: str, step: str, to: str, subject: str, msg_id: str) -> None:
    with app.engine.connection() as c:
        c.execute(
            app.q(
                "INSERT INTO {s}.mails (event_id, step, recipient, subject, message_id) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (event_id, step) DO NOTHING"
            ),
            [event_id, step, to, subject, msg_id],
        )


def _send_once(app: LicensingApp, job: Job, step: str, build: Callable[[str], EmailMessage]) -> dict[str, Any]:
    """Send the mail ``build(msg_id)`` makes unless the record says this event's step sent it already."""
    event_id = job.args["event"]
    if _mail_sent(app, event_id, step):
        return {"mail": "already sent"}
    msg_id = message_id(event_id, step, app.prefix, app.settings.mail_from)
    msg = build(msg_id)
    app.mailer.send(msg)
    _record_mail(app, event_id, step, str(msg["To"]), str(msg["Subject"]), msg_id)
    return {"mail": msg_id}


# -- customer.subscription.created ----------------------------------------------------------------


class HexWorker(LicensingWorker, queue="default", max_attempts=20):
    """Issue the subscription's package-repository key (one per subscription, derived, stored hashed)."""

    def perform(self, job: Job) -> Any:
        """Insert the key row unless it exists."""
        app = app_for(job)
        sub = _subscription(app, job)
        if sub.get("status") not in GRANTABLE:
            return Cancel(f"subscription {sub.get('id')} is {sub.get('status')}: no key issued")
        acc = _account_for(app, sub)
        key = hex_key_for(app.hex_secret(), sub["id"])
        with app.engine.connection() as c:
            inserted = one(
                c,
                app.q(
                    "INSERT INTO {s}.hex_keys (account_id, subscription_id, key_hash, key_prefix, created_by_event) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id"
                ),
                [acc.id, sub["id"], hex_key_hash(key), hex_key_display(key), job.args["event"]],
            )
            row = one(c, app.q("SELECT id, revoked_at FROM {s}.hex_keys WHERE subscription_id = %s"), [sub["id"]])
        assert row is not None
        if inserted:
            log.info("issued package key %s for subscription %s", row["id"], sub["id"])
        return {"hex_key": row["id"], "issued": inserted is not None, "revoked": row["revoked_at"] is not None}


def _event_time(app: LicensingApp, job: Job) -> datetime:
    """Stripe's ``created`` time of the job's event: what orders the changes it makes."""
    created = _event(app, job).get("created")
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        raise ValueError(f"event {job.args['event']} has no created time")
    return datetime.fromtimestamp(created, UTC)


def period_end_of(sub: dict[str, Any]) -> datetime:
    """The end of the subscription's current period (on its first item in newer API versions, else on it)."""
    items = (sub.get("items") or {}).get("data") or []
    end = (items[0].get("current_period_end") if items else None) or sub.get("current_period_end")
    if isinstance(end, bool) or not isinstance(end, (int, float)):
        raise ValueError(f"subscription {sub.get('id')} has no current period end")
    return datetime.fromtimestamp(end, UTC)


def seats_of(sub: dict[str, Any]) -> int:
    """How many seats the subscription pays for: its first item's quantity (1 when not given)."""
    items = (sub.get("items") or {}).get("data") or []
    quantity = items[0].get("quantity") if items else None
    return quantity if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0 else 1


def issue_license(
    app: LicensingApp, acc: Account, sub: dict[str, Any], *, as_of: datetime, event: str | None
) -> licenses.Issued:
    """(Re)issue the subscription's license for its current plan, seats and period end (plus the grace);
    idempotent, and an older state never replaces a newer one (see ``licenses.issue``)."""
    with app.engine.connection() as c:
        return licenses.issue(
            c, app.q, app.signing_key(), instance=app.prefix, account_id=acc.id, subscription_id=sub["id"],
            license_key=app.license_key_of(sub["id"]), plan=_plan_of(app, sub), seats=seats_of(sub),
            period_end=period_end_of(sub), as_of=as_of, grace_days=app.settings.license_grace_days,
            details={"product": app.settings.product, "account": acc.id, "customer": acc.email, "name": acc.name},
            event=event,
        )


class LicenseWorker(LicensingWorker, queue="default", max_attempts=20):
    """Issue the subscription's self-hosting license, signed with the Ed25519 key (one row per subscription)."""

    def perform(self, job: Job) -> Any:
        """Insert the license row unless it exists and sign it for the current period; repeating it changes nothing."""
        app = app_for(job)
        sub = _subscription(app, job)
        if sub.get("status") not in GRANTABLE:
            return Cancel(f"subscription {sub.get('id')} is {sub.get('status')}: no license issued")
        acc = _account_for(app, sub)
        done = issue_license(app, acc, sub, as_of=_event_time(app, job), event=job.args["event"])
        if done.outcome == "signed":
            log.info("issued license %s for subscription %s", done.row["id"], sub["id"])
        return {"license": done.row["id"], "key_id": app.key_id(), "outcome": done.outcome,
                "revoked": done.row["revoked_at"] is not None}


class WelcomeWorker(LicensingWorker, queue="default", max_attempts=20):
    """Mail the customer their key and license, once per event."""

    def perform(self, job: Job) -> Any:
        """Send the welcome mail unless it was sent for this event."""
        app = app_for(job)
        sub = _subscription(app, job)
        acc = _account_for(app, sub)
        with app.engine.connection() as c:
            hexrow = one(c, app.q("SELECT * FROM {s}.hex_keys WHERE subscription_id = %s"), [sub["id"]])
            lic = one(c, app.q("SELECT * FROM {s}.licenses WHERE subscription_id = %s"), [sub["id"]])
        if hexrow is None or lic is None:
            raise LookupError(f"key or license of {sub['id']} not issued yet")
        if hexrow["revoked_at"] is not None or lic["revoked_at"] is not None:
            return Cancel(f"subscription {sub['id']} was revoked before the welcome mail went out")
        if lic["license"] is None:
            raise LookupError(f"license of {sub['id']} is not signed yet")
        key = hex_key_for(app.hex_secret(), sub["id"])
        if hex_key_hash(key) != hexrow["key_hash"]:
            raise RuntimeError("the package key no longer matches its stored hash: was the hex key secret changed?")

        def build(msg_id: str) -> EmailMessage:
            return welcome_message(
                sender=app.settings.mail_from, to=acc.email, name=acc.name, plan=lic["plan"], hex_key=key,
                license_text=lic["license"], public_key=app.public_key(), msg_id=msg_id,
            )

        return _send_once(app, job, "welcome", build)


class NotifyWorker(LicensingWorker, queue="default", max_attempts=20):
    """Tell the team about a new subscriber, a cancellation or an ended subscription, once per event."""

    def perform(self, job: Job) -> Any:
        """Send the team note unless it was sent for this event."""
        app = app_for(job)
        sub = _subscription(app, job)
        acc = _account_for(app, sub)
        kind = job.args.get("kind", "created")
        titles = {"created": "New subscriber", "cancelled": "Cancellation", "deleted": "Subscription ended"}
        subject = f"{titles.get(kind, kind)}: {acc.email} ({_plan_of(app, sub)})"
        lines = [
            f"account:      {acc.id} {acc.name or ''}".rstrip(),
            f"customer:     {sub.get('customer')}",
            f"subscription: {sub.get('id')} ({sub.get('status')})",
            f"event:        {job.args['event']}",
        ]

        def build(msg_id: str) -> EmailMessage:
            return notify_message(
                sender=app.settings.mail_from, to=app.settings.team_email, subject=subject, lines=lines, msg_id=msg_id
            )

        return _send_once(app, job, "notify", build)


# -- customer.subscription.deleted and cancellation -----------------------------------------------


def _ends_at(job: Job) -> float | None:
    ends = job.args.get("ends_at")
    return float(ends) if isinstance(ends, (int, float)) and not isinstance(ends, bool) else None


class RevokeHexWorker(LicensingWorker, queue="default", max_attempts=20):
    """Revoke the subscription's package key (from ``ends_at``, else now); leaves a revoked row if none was issued."""

    def perform(self, job: Job) -> Any:
        """Mark the key revoked; repeating it changes nothing."""
        app = app_for(job)
        sub = _subscription(app, job)
        acc = _account_for(app, sub)
        key = hex_key_for(app.hex_secret(), sub["id"])
        with app.engine.connection() as c:
            row = one(
                c,
                app.q(
                    "INSERT INTO {s}.hex_keys AS k (account_id, subscription_id, key_hash, key_prefix, "
                    "revoked_at, ends_at, revoked_by_event) "
                    "VALUES (%(account)s, %(sub)s, %(hash)s, %(prefix)s, now(), "
                    "coalesce(to_timestamp(%(ends)s::double precision), now()), %(event)s) "
                    "ON CONFLICT (subscription_id) DO UPDATE SET "
                    "revoked_at = coalesce(k.revoked_at, excluded.revoked_at), "
                    "ends_at = least(coalesce(k.ends_at, excluded.ends_at), excluded.ends_at), "
                    "revoked_by_event = coalesce(k.revoked_by_event, excluded.revoked_by_event) "
                    "RETURNING id, ends_at"
                ),
                {"account": acc.id, "sub": sub["id"], "hash": hex_key_hash(key), "prefix": hex_key_display(key),
                 "ends": _ends_at(job), "event": job.args["event"]},
            )
        assert row is not None
        return {"hex_key": row["id"], "ends_at": row["ends_at"].isoformat()}


class RevokeLicenseWorker(LicensingWorker, queue="default", max_attempts=20):
    """Revoke the subscription's license (from ``ends_at``, else now); leaves a revoked row if none was issued."""

    def perform(self, job: Job) -> Any:
        """Mark the license revoked; repeating it changes nothing."""
        app = app_for(job)
        sub = _subscription(app, job)
        acc = _account_for(app, sub)
        ends = _ends_at(job)
        with app.engine.connection() as c:
            row = licenses.revoke(
                c, app.q, account_id=acc.id, subscription_id=sub["id"], plan=_plan_of(app, sub),
                ends_at=datetime.fromtimestamp(ends, UTC) if ends is not None else None,
                as_of=_event_time(app, job), final=job.args.get("kind") == "deleted", event=job.args["event"],
            )
        return {"license": row["id"], "ends_at": row["ends_at"].isoformat() if row["ends_at"] else None}


class FarewellWorker(LicensingWorker, queue="default", max_attempts=20):
    """Tell the customer their subscription ends and their key and license with it, once per event."""

    def perform(self, job: Job) -> Any:
        """Send the farewell mail unless it was sent for this event."""
        app = app_for(job)
        sub = _subscription(app, job)
        acc = _account_for(app, sub)
        ends = _ends_at(job)
        when = datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%d") if ends else None

        def build(msg_id: str) -> EmailMessage:
            return farewell_message(sender=app.settings.mail_from, to=acc.email, name=acc.name, ends=when, msg_id=msg_id)

        return _send_once(app, job, "farewell", build)
