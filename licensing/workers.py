"""The private instance's workers: the Stripe update job, and the steps of the webhook workflows."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import stripe

from engine import Cancel, Discard, Job, Snooze, Worker

from . import accounts, licenses, stripe_ops
from .accounts import Account, AccountError
from .context import app_for
from .db import one
from .keys import hex_key_display, hex_key_for, hex_key_hash
from .mail import (
    action_required_message,
    cancelled_after_charge_message,
    dunning_message,
    farewell_message,
    message_id,
    money,
    notify_message,
    renewal_message,
    welcome_message,
)

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
    ``{"id", "plan", "seq", "cancel": bool}``: a cancel / un-cancel, which only updates a live
    subscription and never creates one; ``{"id", "info", "seq"}``: update details. ``plan``/``info``
    say what was asked (for people reading the job); what is sent is the account's wanted state when
    the job runs. ``seq`` is the account's ``plan_seq`` / ``info_seq``: a repeated click has the same
    one and meets the unique job, a real change a new one. Jobs from before ``cancel`` existed have
    none and run as plan changes did then."""

    def perform(self, job: Job) -> Any:
        """Run the steps that are not done yet, one account at a time."""
        app = app_for(job)
        account_id = job.args.get("id")
        if not isinstance(account_id, int) or isinstance(account_id, bool):
            return Discard(f"args need an integer id, got {account_id!r}")
        with app.account_lock(account_id) as held:
            if not held:
                return Snooze(app.settings.lock_snooze)
            cancel = job.args.get("cancel")
            if cancel is not None and not isinstance(cancel, bool):
                return Discard(f"args' cancel must be true or false, got {cancel!r}")
            try:
                if "plan" in job.args:
                    return stripe_ops.apply_plan(app, job, account_id, cancel=cancel)
                if "info" in job.args:
                    return stripe_ops.apply_info(app, job, account_id)
            except stripe_ops.NotCreated as exc:
                log.warning("%s", exc)
                return Cancel(str(exc))
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


def _send_once(
    app: LicensingApp, job: Job, step: str, build: Callable[[str], EmailMessage], *, key: str | None = None
) -> dict[str, Any]:
    """Send the mail ``build(msg_id)`` makes unless the record says this event's step sent it already
    (``key`` instead of the event: one mail per that, e.g. per charge, whichever event sends it)."""
    event_id = key or job.args["event"]
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
        if kind == "deleted" and cancelled_after(sub) is not None:
            return {"mail": "not sent: the app cancelled it after a refund or dispute, and told the team then"}
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
            if job.args.get("kind") == "deleted":
                # The account says so too (a cancel, un-cancel or plan change is judged by it). The
                # event's copy is enough here: a deleted subscription never comes back.
                status = sub.get("status")
                accounts.record_subscription_ended(c, app.q, acc.id, sub["id"],
                                                   status if status in stripe_ops.ENDED else "canceled",
                                                   _event_time(app, job))
        return {"license": row["id"], "ends_at": row["ends_at"].isoformat() if row["ends_at"] else None}


class FarewellWorker(LicensingWorker, queue="default", max_attempts=20):
    """Tell the customer their subscription ends and their key and license with it, once per event; when
    the app itself cancelled it after a full refund or a dispute, say so instead (a mail of its own)."""

    def perform(self, job: Job) -> Any:
        """Send the farewell mail unless it was sent for this event."""
        app = app_for(job)
        sub = _subscription(app, job)
        acc = _account_for(app, sub)
        if job.args.get("kind") == "cancelled" and cancel_time(stripe_subscription(app, sub["id"])) is None:
            return {"mail": "not sent: un-cancelled since"}
        because = cancelled_after(sub) if job.args.get("kind") == "deleted" else None
        if because is not None:
            charge = stripe_ops.plain(app.stripe.v1.charges.retrieve(because[1]))
            paid_on = datetime.fromtimestamp(charge["created"], UTC).strftime("%Y-%m-%d")

            def cancelled(msg_id: str) -> EmailMessage:
                return cancelled_after_charge_message(
                    sender=app.settings.mail_from, to=acc.email, name=acc.name, disputed=because[0] == "dispute",
                    amount=money(charge.get("amount"), charge.get("currency")), paid_on=paid_on, msg_id=msg_id,
                )

            return _send_once(app, job, "farewell", cancelled)
        ends = _ends_at(job)
        when = datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%d") if ends else None

        def build(msg_id: str) -> EmailMessage:
            return farewell_message(sender=app.settings.mail_from, to=acc.email, name=acc.name, ends=when, msg_id=msg_id)

        return _send_once(app, job, "farewell", build)


# -- the lifecycle: every handler reads the objects' current state from Stripe ---------------------

#: Statuses in which the customer keeps access (past_due: Stripe is still retrying the payment).
ACCESS = ("active", "trialing", "past_due")


def stripe_subscription(app: LicensingApp, subscription_id: str) -> dict[str, Any]:
    """The subscription as Stripe has it now (not as an event, maybe old or repeated, showed it)."""
    return stripe_ops.plain(app.stripe.v1.subscriptions.retrieve(subscription_id))


def subscription_of_invoice(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills (on the invoice, or under ``parent`` in newer API versions)."""
    sub = invoice.get("subscription")
    if not sub:
        sub = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    return str(sub) if sub else None


def cancel_time(sub: dict[str, Any]) -> datetime | None:
    """When a subscription that is set to end will end (``cancel_at``, else its period end), or None."""
    at = sub.get("cancel_at")
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return datetime.fromtimestamp(at, UTC)
    return period_end_of(sub) if sub.get("cancel_at_period_end") else None


def _revoke_hex(app: LicensingApp, acc: Account, sub_id: str, ends: datetime | None, event: str | None) -> None:
    key = hex_key_for(app.hex_secret(), sub_id)
    with app.engine.connection() as c:
        c.execute(
            app.q(
                "INSERT INTO {s}.hex_keys AS k (account_id, subscription_id, key_hash, key_prefix, "
                "revoked_at, ends_at, revoked_by_event) "
                "VALUES (%(account)s, %(sub)s, %(hash)s, %(prefix)s, now(), coalesce(%(ends)s, now()), %(event)s) "
                "ON CONFLICT (subscription_id) DO UPDATE SET "
                "revoked_at = coalesce(k.revoked_at, excluded.revoked_at), "
                "ends_at = least(coalesce(k.ends_at, excluded.ends_at), excluded.ends_at), "
                "revoked_by_event = coalesce(k.revoked_by_event, excluded.revoked_by_event)"
            ),
            {"account": acc.id, "sub": sub_id, "hash": hex_key_hash(key), "prefix": hex_key_display(key),
             "ends": ends, "event": event},
        )


def revoke_access(
    app: LicensingApp, acc: Account, sub: dict[str, Any], *, ends: datetime | None, as_of: datetime,
    final: bool, event: str | None,
) -> dict[str, Any]:
    """Revoke the subscription's package key and license from ``ends`` (None: now); idempotent."""
    _revoke_hex(app, acc, sub["id"], ends, event)
    with app.engine.connection() as c:
        return licenses.revoke(c, app.q, account_id=acc.id, subscription_id=sub["id"], plan=_plan_of(app, sub),
                               ends_at=ends, as_of=as_of, final=final, event=event)


def restore_access(app: LicensingApp, sub_id: str, *, as_of: datetime, event: str | None) -> bool:
    """Lift a revocation that was not final (un-cancel, an unpaid subscription paid); returns whether
    the license is unrevoked now. The package key follows the license."""
    with app.engine.connection() as c:
        row = licenses.restore(c, app.q, subscription_id=sub_id, as_of=as_of, event=event)
        if row is None or row["revoked_at"] is not None:
            return row is None
        c.execute(app.q("UPDATE {s}.hex_keys SET revoked_at = NULL, ends_at = NULL, revoked_by_event = NULL "
                        "WHERE subscription_id = %s AND revoked_at IS NOT NULL"), [sub_id])
    return True


def _stamp(app: LicensingApp, sub_id: str, as_of: datetime) -> datetime:
    """The time to record a reconciliation at: its event's, or just after the license's last change when
    that is as late (Stripe's times are whole seconds, and a test clock stamps a burst of changes with one).
    The state written was read from Stripe under the account's lock, so it is the newest known."""
    with app.engine.connection() as c:
        row = one(c, app.q("SELECT state_at FROM {s}.licenses WHERE subscription_id = %s"), [sub_id])
    last = row["state_at"] if row else None
    return last + timedelta(seconds=1) if last is not None and last >= as_of else as_of


def reconcile_access(
    app: LicensingApp, job: Job, acc: Account, sub: dict[str, Any], *, as_of: datetime, event: str | None
) -> dict[str, Any]:
    """Bring key and license to what the subscription's current state says; every step idempotent.

    Ended (canceled, incomplete_expired): revoked for good. Unpaid: suspended now (paying restores).
    Active, trialing or past_due and set to end: revoked from that time, with a scheduled job then.
    Active, trialing or past_due otherwise: a lifted revocation, and the license (re)issued for the
    current plan, seats and period. Incomplete: nothing yet (the first payment is not done)."""
    status = sub.get("status")
    plan = _plan_of(app, sub)
    as_of = _stamp(app, sub["id"], as_of)
    with app.engine.connection() as c:
        accounts.record_subscription_state(
            c, app.q, acc.id, subscription_id=sub["id"], status=status, plan=plan,
            period_end=period_end_of(sub) if status in ACCESS else None,
            cancel_at_period_end=bool(sub.get("cancel_at_period_end")), seen_at=as_of,
        )
    if status in stripe_ops.ENDED:
        row = revoke_access(app, acc, sub, ends=None, as_of=as_of, final=True, event=event)
        return {"status": status, "access": "ended", "license": row["id"]}
    if status == "unpaid":
        row = revoke_access(app, acc, sub, ends=None, as_of=as_of, final=False, event=event)
        return {"status": status, "access": "suspended", "license": row["id"]}
    if status not in ACCESS:
        return {"status": status, "access": "waiting"}
    ends = cancel_time(sub)
    if ends is not None:
        row = revoke_access(app, acc, sub, ends=ends, as_of=as_of, final=False, event=event)
        end_job = app.engine.insert(EndAccessWorker.new(
            {"subscription": sub["id"], "ends_at": int(ends.timestamp())}, meta=app.job_meta(), scheduled_at=ends,
        ))
        return {"status": status, "access": "ends", "ends_at": ends.isoformat(), "end_job": end_job.id,
                "license": row["id"]}
    restored = restore_access(app, sub["id"], as_of=as_of, event=event)
    done = issue_license(app, acc, sub, as_of=as_of, event=event)
    return {"status": status, "access": "granted" if restored else "revoked", "license": done.row["id"],
            "outcome": done.outcome, "plan": done.row["plan"],
            "expires_at": done.row["expires_at"].isoformat() if done.row["expires_at"] else None}


class SyncWorker(LicensingWorker, queue="default", max_attempts=20):
    """``customer.subscription.updated`` and ``invoice.paid``: read the subscription from Stripe and
    reconcile key and license with it (renew, re-issue on a plan change, un-cancel, suspend, end)."""

    def perform(self, job: Job) -> Any:
        """Reconcile under the account's lock, so two events' steps never interleave their read and write."""
        app = app_for(job)
        sub = stripe_subscription(app, job.args["subscription"])
        acc = _account_for(app, sub)
        with app.account_lock(acc.id) as held:
            if not held:
                return Snooze(app.settings.lock_snooze)
            sub = stripe_subscription(app, sub["id"])  # read again under the lock: the newest state wins
            return reconcile_access(app, job, acc, sub, as_of=_event_time(app, job), event=job.args["event"])


class EndAccessWorker(LicensingWorker, queue="default", max_attempts=20, unique={"period": None}):
    """Scheduled for the time a cancelled subscription ends (visible in the dashboard): re-reads the
    subscription then, and does nothing if it was un-cancelled meanwhile."""

    def perform(self, job: Job) -> Any:
        """End access if the subscription ended; leave everything alone if it continues."""
        app = app_for(job)
        sub = stripe_subscription(app, job.args["subscription"])
        acc = _account_for(app, sub)
        at = datetime.fromtimestamp(job.args["ends_at"], UTC)
        with app.account_lock(acc.id) as held:
            if not held:
                return Snooze(app.settings.lock_snooze)
            sub = stripe_subscription(app, sub["id"])
            if sub.get("status") in stripe_ops.ENDED or sub.get("status") == "unpaid":
                return reconcile_access(app, job, acc, sub, as_of=at, event=None)
            if cancel_time(sub) is None:
                return {"status": sub.get("status"), "access": "continues: un-cancelled"}
            return {"status": sub.get("status"), "access": f"ends {cancel_time(sub).isoformat()}"}  # type: ignore[union-attr]


def _invoice(app: LicensingApp, job: Job) -> dict[str, Any]:
    return stripe_ops.plain(app.stripe.v1.invoices.retrieve(job.args["invoice"]))


def _payment_intent(app: LicensingApp, invoice: dict[str, Any]) -> dict[str, Any] | None:
    pi = invoice.get("payment_intent")
    if isinstance(pi, dict):
        pi = pi.get("id")
    return stripe_ops.plain(app.stripe.v1.payment_intents.retrieve(pi)) if pi else None


class RenewalMailWorker(LicensingWorker, queue="default", max_attempts=20):
    """``invoice.paid`` for a renewal: mail the re-issued license, once per event."""

    def perform(self, job: Job) -> Any:
        """Send the renewal mail unless the invoice is the first one (the welcome mail covers it) or access is revoked."""
        app = app_for(job)
        invoice = _invoice(app, job)
        if invoice.get("billing_reason") == "subscription_create":
            return {"mail": "not sent: the first invoice (the welcome mail carries the license)"}
        sub = stripe_subscription(app, job.args["subscription"])
        acc = _account_for(app, sub)
        with app.engine.connection() as c:
            lic = one(c, app.q("SELECT * FROM {s}.licenses WHERE subscription_id = %s"), [sub["id"]])
        if lic is None or lic["license"] is None or lic["revoked_at"] is not None:
            return {"mail": "not sent: no license in force"}
        expires = lic["expires_at"].astimezone(UTC).strftime("%Y-%m-%d")

        def build(msg_id: str) -> EmailMessage:
            return renewal_message(sender=app.settings.mail_from, to=acc.email, name=acc.name, plan=lic["plan"],
                                   expires=expires, license_text=lic["license"], msg_id=msg_id)

        return _send_once(app, job, "renewal", build)


class DunningWorker(LicensingWorker, queue="default", max_attempts=20):
    """``invoice.payment_failed``: mail the customer the hosted invoice link, once per event; not when
    the invoice was paid meanwhile, nor for a 3-D Secure challenge (the action mail covers that)."""

    def perform(self, job: Job) -> Any:
        """Send the dunning mail if the invoice is still open and its payment failed outright."""
        app = app_for(job)
        invoice = _invoice(app, job)
        if invoice.get("status") != "open":
            return {"mail": f"not sent: the invoice is {invoice.get('status')}"}
        pi = _payment_intent(app, invoice)
        if pi is not None and pi.get("status") == "requires_action":
            return {"mail": "not sent: the payment waits for 3-D Secure"}
        acc = _account_for(app, stripe_subscription(app, job.args["subscription"]))

        def build(msg_id: str) -> EmailMessage:
            return dunning_message(sender=app.settings.mail_from, to=acc.email, name=acc.name,
                                   amount=money(invoice.get("amount_due"), invoice.get("currency")),
                                   url=str(invoice.get("hosted_invoice_url")), msg_id=msg_id)

        return _send_once(app, job, "dunning", build)


class ActionMailWorker(LicensingWorker, queue="default", max_attempts=20):
    """``invoice.payment_action_required`` (3-D Secure): mail the link to finish the payment, once per event."""

    def perform(self, job: Job) -> Any:
        """Send the mail while the payment still waits for the customer."""
        app = app_for(job)
        invoice = _invoice(app, job)
        pi = _payment_intent(app, invoice)
        if invoice.get("status") != "open" or pi is None or pi.get("status") != "requires_action":
            return {"mail": "not sent: nothing to confirm any more"}
        redirect = ((pi.get("next_action") or {}).get("redirect_to_url") or {}).get("url")
        acc = _account_for(app, stripe_subscription(app, job.args["subscription"]))

        def build(msg_id: str) -> EmailMessage:
            return action_required_message(sender=app.settings.mail_from, to=acc.email, name=acc.name,
                                           amount=money(invoice.get("amount_due"), invoice.get("currency")),
                                           url=str(redirect or invoice.get("hosted_invoice_url")), msg_id=msg_id)

        return _send_once(app, job, "action", build)


# -- charge.refunded, charge.dispute.created / .closed ----------------------------------------------

#: What the app writes into ``cancellation_details.comment`` when it cancels a subscription after a
#: charge: people read it in Stripe's dashboard, and the ``customer.subscription.deleted`` handler
#: reads it to mail the customer why (and not the plain farewell).
CANCEL_COMMENT = "Cancelled by Lysmore after {why} of charge {charge}"
_CANCEL_COMMENT = re.compile(r"^Cancelled by Lysmore after (a full refund|a dispute) of charge (ch_[A-Za-z0-9_]+)$")


def cancelled_after(sub: dict[str, Any]) -> tuple[str, str] | None:
    """``("refund"|"dispute", charge id)`` when the app cancelled ``sub`` after that charge, else None."""
    comment = (sub.get("cancellation_details") or {}).get("comment")
    found = _CANCEL_COMMENT.match(comment) if isinstance(comment, str) else None
    if found is None:
        return None
    return ("refund" if found.group(1) == "a full refund" else "dispute"), found.group(2)


@dataclass(frozen=True)
class ChargeCase:
    """A refunded or disputed charge as Stripe has it now, and the subscription its invoice billed."""

    charge: dict[str, Any]
    dispute: dict[str, Any] | None
    subscription_id: str | None

    @property
    def ends_access(self) -> bool:
        """A dispute, or a refund of the whole charge (Stripe's ``refunded``: one refund or parts adding up)."""
        return self.dispute is not None or bool(self.charge.get("refunded"))

    @property
    def why(self) -> str:
        """What happened, for logs and job results."""
        if self.dispute is not None:
            return f"dispute {self.dispute['id']} ({self.dispute.get('reason')})"
        return "refund" if self.ends_access else "partial refund"


def charge_case(app: LicensingApp, job: Job) -> ChargeCase:
    """Read the job's dispute (if any), its charge and the charge's invoice from Stripe."""
    dispute = None
    if job.args.get("dispute"):
        dispute = stripe_ops.plain(app.stripe.v1.disputes.retrieve(job.args["dispute"]))
        charge_id = dispute["charge"]
    else:
        charge_id = job.args["charge"]
    charge = stripe_ops.plain(app.stripe.v1.charges.retrieve(charge_id))
    invoice_id = charge.get("invoice")
    invoice = stripe_ops.plain(app.stripe.v1.invoices.retrieve(invoice_id)) if invoice_id else {}
    return ChargeCase(charge, dispute, subscription_of_invoice(invoice))


class ChargeRevokeWorker(LicensingWorker, queue="default", max_attempts=20):
    """``charge.refunded`` (in full) and ``charge.dispute.created``: revoke the subscription's key and
    license for good; a partial refund changes nothing."""

    def perform(self, job: Job) -> Any:
        """Read the charge (and dispute) from Stripe, find its subscription, revoke."""
        app = app_for(job)
        case = charge_case(app, job)
        charge_id = case.charge["id"]
        if not case.ends_access:
            return {"access": "kept: partial refund", "amount_refunded": case.charge.get("amount_refunded")}
        if case.subscription_id is None:
            return Cancel(f"charge {charge_id} pays no subscription: nothing to revoke")
        sub = stripe_subscription(app, case.subscription_id)
        acc = _account_for(app, sub)
        row = revoke_access(app, acc, sub, ends=None, as_of=_event_time(app, job), final=True, event=job.args["event"])
        log.warning("subscription %s: key and license revoked after a %s of charge %s",
                    case.subscription_id, case.why, charge_id)
        return {"access": "revoked", "because": case.why, "subscription": case.subscription_id, "license": row["id"]}


def cancel_key(app: LicensingApp, charge_id: str, subscription_id: str) -> str:
    """The idempotency key of cancelling ``subscription_id`` after ``charge_id``: the same for every
    event about that charge and every attempt."""
    return f"lysmore-{app.prefix}-{charge_id}-cancel-{subscription_id}"


class ChargeCancelWorker(LicensingWorker, queue="default", max_attempts=20):
    """After a full refund or a dispute: cancel the subscription in Stripe at once (not at the period
    end), so the card is not charged again; nothing if it already ended or the refund was partial."""

    def perform(self, job: Job) -> Any:
        """Read the subscription under the account's lock; cancel it unless it ended; record what Stripe says."""
        app = app_for(job)
        case = charge_case(app, job)
        if not case.ends_access:
            return {"subscription": "kept: partial refund"}
        if case.subscription_id is None:
            return Cancel(f"charge {case.charge['id']} pays no subscription: nothing to cancel")
        sub = stripe_subscription(app, case.subscription_id)
        acc = _account_for(app, sub)
        reason = "dispute" if case.dispute is not None else "refund"
        with app.account_lock(acc.id) as held:
            if not held:
                return Snooze(app.settings.lock_snooze)
            # Recorded first, under the lock an update job takes too: from here on no job subscribes
            # the account again after a dispute until a person allows it (once per charge and reason,
            # so a replay never puts back a hold that was lifted).
            with app.engine.connection() as c:
                accounts.record_charge_end(c, app.q, account_id=acc.id, subscription_id=sub["id"],
                                           charge_id=case.charge["id"], reason=reason)
            sub = stripe_subscription(app, sub["id"])
            if sub.get("status") in stripe_ops.ENDED:
                done = f"already {sub.get('status')}"
            else:
                sub, done = self._cancel(app, case, sub)
            # Records the ended state on the account and keeps the revocation final (idempotent).
            reconcile_access(app, job, acc, sub, as_of=_event_time(app, job), event=job.args["event"])
        return {"subscription": sub["id"], "cancel": done, "status": sub.get("status"), "because": case.why,
                "resubscribe": "held" if accounts.CHARGE_REASONS[reason] else "allowed"}

    @staticmethod
    def _cancel(app: LicensingApp, case: ChargeCase, sub: dict[str, Any]) -> tuple[dict[str, Any], str]:
        why = "a full refund" if case.dispute is None else "a dispute"
        comment = CANCEL_COMMENT.format(why=why, charge=case.charge["id"])
        try:
            ended = stripe_ops.plain(app.stripe.v1.subscriptions.cancel(
                sub["id"], params={"cancellation_details": {"comment": comment}},
                options={"idempotency_key": cancel_key(app, case.charge["id"], sub["id"])},
            ))
        except stripe.InvalidRequestError:
            # Cancelling an ended subscription is refused: an earlier attempt (or the SDK's retry of a
            # request whose answer was lost) did it. Anything else is a real refusal.
            again = stripe_subscription(app, sub["id"])
            if again.get("status") not in stripe_ops.ENDED:
                raise
            return again, f"already {again.get('status')}"
        log.warning("subscription %s cancelled in Stripe after %s of charge %s", sub["id"], why, case.charge["id"])
        return ended, "cancelled"


def _team_lines(app: LicensingApp, case: ChargeCase) -> tuple[str, list[str]]:
    """Who the charge's subscription belongs to (read now: it says whether the cancel went through)."""
    sub = stripe_subscription(app, case.subscription_id) if case.subscription_id else None
    acc = _account_for(app, sub) if sub is not None else None
    who = f"{acc.email} ({_plan_of(app, sub)})" if acc is not None and sub is not None else str(case.charge.get("customer"))
    lines = []
    if acc is not None:
        lines.append(f"account:      {acc.id} {acc.name or ''}".rstrip())
    lines.append(f"customer:     {case.charge.get('customer')}")
    if sub is not None:
        status = str(sub.get("status"))
        if case.ends_access and status not in stripe_ops.ENDED:
            status += ": NOT cancelled, the app could not; cancel it in Stripe"
        lines.append(f"subscription: {sub['id']} ({status})")
    else:
        lines.append("subscription: none (the charge pays no subscription)")
    charge = case.charge
    paid = datetime.fromtimestamp(charge["created"], UTC).strftime("%Y-%m-%d")
    lines.append(f"charge:       {charge['id']}, {money(charge.get('amount'), charge.get('currency'))} of {paid}")
    return who, lines


class ChargeNotifyWorker(LicensingWorker, queue="default", max_attempts=20):
    """Tell the team about a refund or a dispute: the subscription, the charge, the amount, and for a
    dispute its reason and the time its evidence is due. One note per charge for a full refund (several
    partial refunds that add up make several events), per event otherwise."""

    def perform(self, job: Job) -> Any:
        """Send the note unless it was sent."""
        app = app_for(job)
        case = charge_case(app, job)
        charge = case.charge
        who, lines = _team_lines(app, case)
        key = None
        if case.dispute is not None:
            dispute = case.dispute
            due = (dispute.get("evidence_details") or {}).get("due_by")
            due_text = datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%d %H:%M UTC") if due else "unknown"
            subject = f"Dispute: {who}"
            lines += [
                f"dispute:      {dispute['id']}, {money(dispute.get('amount'), dispute.get('currency'))}, "
                f"reason {dispute.get('reason')}, status {dispute.get('status')}",
                f"evidence due: {due_text}",
                "access:       package key and license revoked for good; subscription cancelled at once",
                "subscribing:  held: the account cannot subscribe again until a person allows it "
                "(allow_resubscribe, licensing/README.md)",
                "to do:        answer the dispute in Stripe (evidence, or accept it) before the evidence is due",
            ]
        elif case.ends_access:
            subject = f"Refunded in full: {who}"
            key = charge["id"]
            lines += [
                f"refunded:     {money(charge.get('amount_refunded'), charge.get('currency'))} (in full)",
                "access:       package key and license revoked for good; subscription cancelled at once",
                "subscribing:  allowed: the customer may subscribe again (a plan change)",
                "to do:        nothing; to keep the customer, re-grant by hand (licensing/README.md)",
            ]
        else:
            subject = f"Partial refund: {who}"
            lines += [
                f"refunded:     {money(charge.get('amount_refunded'), charge.get('currency'))} so far, "
                f"of {money(charge.get('amount'), charge.get('currency'))}",
                "access:       kept; the subscription continues and renews",
            ]
        lines.append(f"event:        {job.args['event']}")

        def build(msg_id: str) -> EmailMessage:
            return notify_message(
                sender=app.settings.mail_from, to=app.settings.team_email, subject=subject, lines=lines, msg_id=msg_id
            )

        if key is None:
            return _send_once(app, job, "notify", build)
        # Another event's step may send the same note right now: one at a time per charge.
        with app.try_lock(f"mail:{key}") as held:
            if not held:
                return Snooze(app.settings.lock_snooze)
            return _send_once(app, job, "notify", build, key=key)


class DisputeClosedWorker(LicensingWorker, queue="default", max_attempts=20):
    """``charge.dispute.closed``: tell the team whether it was won or lost; access stays as it is
    (revoked when the dispute opened): re-granting after a won dispute is a person's decision."""

    def perform(self, job: Job) -> Any:
        """Read the dispute from Stripe and send the note unless it was sent."""
        app = app_for(job)
        case = charge_case(app, job)
        assert case.dispute is not None
        dispute = case.dispute
        status = str(dispute.get("status"))
        who, lines = _team_lines(app, case)
        lines.append(f"dispute:      {dispute['id']}, {money(dispute.get('amount'), dispute.get('currency'))}, "
                     f"reason {dispute.get('reason')}, status {status}")
        if status == "won":
            subject = f"Dispute won: {who}"
            lines += ["money:        the disputed amount comes back to us",
                      "access:       stays revoked until a person re-grants it (licensing/README.md); "
                      "subscribing again stays held until a person allows it (allow_resubscribe)"]
        elif status == "lost":
            subject = f"Dispute lost: {who}"
            lines += ["money:        the disputed amount stays with the card holder",
                      "access:       stays revoked; nothing to do"]
        else:
            subject = f"Dispute closed ({status}): {who}"
            lines += ["access:       stays revoked until a person re-grants it (licensing/README.md)"]
        lines.append(f"event:        {job.args['event']}")

        def build(msg_id: str) -> EmailMessage:
            return notify_message(
                sender=app.settings.mail_from, to=app.settings.team_email, subject=subject, lines=lines, msg_id=msg_id
            )

        return _send_once(app, job, "notify", build)
