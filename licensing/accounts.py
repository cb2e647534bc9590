"""Accounts (users with email, plan, Stripe customer, payment method and subscription) and their rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .db import Sql, all_rows, one

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
INFO_FIELDS = ("email", "name")
#: Subscription statuses that never come back: a subscription in one is over.
ENDED = ("canceled", "incomplete_expired")


class AccountError(ValueError):
    """A sign-up or change that cannot be accepted (unknown plan, bad email, taken email, no account)."""


@dataclass(frozen=True)
class Account:
    """One customer account as stored: what the customer wants (``plan``, ``payment_method``, ``email``,
    ``name``, ``cancel_at_period_end``; every real change takes the next ``change_seq``, and ``plan_seq``
    / ``info_seq`` keep the number of the last subscription / details change), how far Stripe was
    brought to it (``synced_seq``), and what Stripe was last seen to say (``subscription_*``)."""

    id: int
    email: str
    name: str | None
    plan: str | None
    payment_method: str | None
    customer_request: dict[str, Any] | None
    stripe_customer_id: str | None
    subscription_id: str | None
    subscription_status: str | None
    change_seq: int
    plan_seq: int
    info_seq: int
    synced_seq: int
    cancel_at_period_end: bool
    subscription_plan: str | None
    subscription_period_end: datetime | None
    subscription_cancel_at_period_end: bool | None
    subscription_seen_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Account:
        """Build an Account from a ``dict_row`` of the accounts table."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def has_live_subscription(self) -> bool:
        """Whether a subscription is recorded and was last seen in a status that is not over."""
        return self.subscription_id is not None and self.subscription_status not in ENDED


def check_email(email: object) -> str:
    """Return ``email`` if it looks like an address, else raise ``AccountError``."""
    if not isinstance(email, str) or len(email) > 254 or not EMAIL.match(email):
        raise AccountError(f"not an e-mail address: {email!r}")
    return email


def check_info(info: object) -> dict[str, str]:
    """Validate an ``info`` change: a non-empty dict of ``email`` and/or ``name`` strings."""
    if not isinstance(info, dict) or not info or set(info) - set(INFO_FIELDS):
        raise AccountError(f"info takes {INFO_FIELDS}, got {info!r}")
    out: dict[str, str] = {}
    for key, value in info.items():
        if not isinstance(value, str) or not value or len(value) > 254:
            raise AccountError(f"info[{key!r}] must be a non-empty string")
        out[key] = check_email(value) if key == "email" else value
    return out


def insert_account(
    conn: psycopg.Connection, q: Sql, *, email: str, name: str | None, plan: str, payment_method: str | None
) -> Account:
    """Insert a new account row (in the caller's transaction)."""
    try:
        with conn.transaction():
            row = one(
                conn,
                q("INSERT INTO {s}.accounts (email, name, plan, payment_method) VALUES (%s, %s, %s, %s) RETURNING *"),
                [email, name, plan, payment_method],
            )
    except psycopg.errors.UniqueViolation:
        raise AccountError(f"an account with e-mail {email!r} exists already") from None
    assert row is not None
    return Account.from_row(row)


def load(conn: psycopg.Connection, q: Sql, account_id: int, *, for_update: bool = False) -> Account | None:
    """The account with ``account_id``, or None."""
    lock = " FOR UPDATE" if for_update else ""
    row = one(conn, q("SELECT * FROM {s}.accounts WHERE id = %s" + lock), [account_id])
    return Account.from_row(row) if row else None


def find_by_customer(conn: psycopg.Connection, q: Sql, customer_id: str) -> Account | None:
    """The account whose Stripe customer is ``customer_id``, or None."""
    row = one(conn, q("SELECT * FROM {s}.accounts WHERE stripe_customer_id = %s"), [customer_id])
    return Account.from_row(row) if row else None


def set_plan(
    conn: psycopg.Connection, q: Sql, account_id: int, plan: str, payment_method: str | None, *,
    resubscribe: bool = False,
) -> Account:
    """Record a wanted plan (and a new payment method, if given); a real change takes the next ``change_seq``.

    ``resubscribe`` (the account's subscription has ended): always a real change, even to the same
    plan, as a new subscription is wanted; and it starts un-cancelled (a cancel wish was about the
    subscription that ended)."""
    changed = "(%(resub)s OR plan IS DISTINCT FROM %(plan)s OR payment_method IS DISTINCT FROM coalesce(%(pm)s, payment_method))"
    row = one(
        conn,
        q(
            "UPDATE {s}.accounts SET plan = %(plan)s, payment_method = coalesce(%(pm)s, payment_method), "
            f"change_seq = change_seq + CASE WHEN {changed} THEN 1 ELSE 0 END, "
            f"plan_seq = CASE WHEN {changed} THEN change_seq + 1 ELSE plan_seq END, "
            "cancel_at_period_end = cancel_at_period_end AND NOT %(resub)s, "
            "updated_at = now() WHERE id = %(id)s RETURNING *"
        ),
        {"plan": plan, "pm": payment_method, "id": account_id, "resub": resubscribe},
    )
    if row is None:
        raise AccountError(f"no account {account_id}")
    return Account.from_row(row)


def set_info(conn: psycopg.Connection, q: Sql, account_id: int, info: dict[str, str]) -> Account:
    """Record changed details in our table; a real change takes the next ``change_seq``."""
    try:
        with conn.transaction():
            row = one(
                conn,
                q(
                    "UPDATE {s}.accounts SET email = coalesce(%(email)s, email), name = coalesce(%(name)s, name), "
                    "change_seq = change_seq + CASE WHEN email IS DISTINCT FROM coalesce(%(email)s, email) OR name IS DISTINCT FROM coalesce(%(name)s, name) THEN 1 ELSE 0 END, "
                    "info_seq = CASE WHEN email IS DISTINCT FROM coalesce(%(email)s, email) OR name IS DISTINCT FROM coalesce(%(name)s, name) THEN change_seq + 1 ELSE info_seq END, "
                    "updated_at = now() WHERE id = %(id)s RETURNING *"
                ),
                {"email": info.get("email"), "name": info.get("name"), "id": account_id},
            )
    except psycopg.errors.UniqueViolation:
        raise AccountError(f"another account has e-mail {info.get('email')!r}") from None
    if row is None:
        raise AccountError(f"no account {account_id}")
    return Account.from_row(row)


def set_cancel(conn: psycopg.Connection, q: Sql, account_id: int, at_period_end: bool) -> Account:
    """Record whether the customer wants the subscription to end at the period end; a change takes the next ``change_seq``."""
    row = one(
        conn,
        q(
            "UPDATE {s}.accounts SET cancel_at_period_end = %(cancel)s, "
            "change_seq = change_seq + CASE WHEN cancel_at_period_end IS DISTINCT FROM %(cancel)s THEN 1 ELSE 0 END, "
            "plan_seq = CASE WHEN cancel_at_period_end IS DISTINCT FROM %(cancel)s THEN change_seq + 1 "
            "ELSE plan_seq END, "
            "updated_at = now() WHERE id = %(id)s RETURNING *"
        ),
        {"cancel": at_period_end, "id": account_id},
    )
    if row is None:
        raise AccountError(f"no account {account_id}")
    return Account.from_row(row)


def record_synced(conn: psycopg.Connection, q: Sql, account_id: int, seq: int) -> None:
    """Record that Stripe holds everything the account wanted up to change ``seq`` (never moves back)."""
    conn.execute(
        q("UPDATE {s}.accounts SET synced_seq = greatest(synced_seq, %s) WHERE id = %s"), [seq, account_id]
    )


def remember_customer_request(conn: psycopg.Connection, q: Sql, account_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """Store the customer-create parameters once; every retry sends exactly what was stored first."""
    row = one(
        conn,
        q(
            "UPDATE {s}.accounts SET customer_request = coalesce(customer_request, %s) "
            "WHERE id = %s RETURNING customer_request"
        ),
        [Jsonb(params), account_id],
    )
    if row is None:
        raise AccountError(f"no account {account_id}")
    stored: dict[str, Any] = row["customer_request"]
    return stored


def forget_customer_request(conn: psycopg.Connection, q: Sql, account_id: int) -> None:
    """Drop a stored customer request that Stripe refused (while no customer is recorded)."""
    conn.execute(
        q("UPDATE {s}.accounts SET customer_request = NULL WHERE id = %s AND stripe_customer_id IS NULL"),
        [account_id],
    )


def record_customer(conn: psycopg.Connection, q: Sql, account_id: int, customer_id: str) -> None:
    """Record the Stripe customer right after Stripe answered (first one wins)."""
    conn.execute(
        q(
            "UPDATE {s}.accounts SET stripe_customer_id = %s, updated_at = now() "
            "WHERE id = %s AND stripe_customer_id IS NULL"
        ),
        [customer_id, account_id],
    )


def record_payment_method(conn: psycopg.Connection, q: Sql, account_id: int, old: str, new: str) -> None:
    """Replace a payment method id by the id Stripe gave it when attaching (test magic ids)."""
    conn.execute(
        q("UPDATE {s}.accounts SET payment_method = %s, updated_at = now() WHERE id = %s AND payment_method = %s"),
        [new, account_id, old],
    )


def record_subscription(
    conn: psycopg.Connection, q: Sql, account_id: int, subscription_id: str, status: str | None, plan: str | None
) -> None:
    """Record the subscription, its status and the plan it is on (as just read from Stripe); the
    wanted ``plan`` is the customer's and is never written from Stripe's side."""
    conn.execute(
        q(
            "UPDATE {s}.accounts SET subscription_id = %s, subscription_status = %s, "
            "subscription_plan = coalesce(%s, subscription_plan), updated_at = now() WHERE id = %s"
        ),
        [subscription_id, status, plan, account_id],
    )


def record_subscription_state(
    conn: psycopg.Connection, q: Sql, account_id: int, *, subscription_id: str, status: str | None,
    plan: str | None, period_end: datetime | None, cancel_at_period_end: bool | None, seen_at: datetime,
) -> bool:
    """Record what a webhook says about the subscription unless a later one (by Stripe's ``created``
    time ``seen_at``) was recorded already; returns whether it was written.

    Only about the subscription the account has, or one that takes its place: a subscription that
    is not the recorded one replaces it only when none is recorded, or the recorded one has ended
    and this one has not (the account subscribed again). An event about an older subscription (a
    refund of one of its charges, months later) is newer than anything the current one said, but
    it is history: it never makes the account point back to the old subscription."""
    row = one(
        conn,
        q(
            "UPDATE {s}.accounts SET subscription_id = %(sub)s, subscription_status = %(status)s, "
            "subscription_plan = coalesce(%(plan)s, subscription_plan), subscription_period_end = %(end)s, "
            "subscription_cancel_at_period_end = %(cancel)s, subscription_seen_at = %(seen)s, updated_at = now() "
            "WHERE id = %(id)s AND CASE "
            "WHEN subscription_id = %(sub)s THEN subscription_seen_at IS NULL OR subscription_seen_at <= %(seen)s "
            "WHEN subscription_id IS NULL THEN true "
            "ELSE subscription_status = ANY(%(ended)s) AND NOT coalesce(%(status)s = ANY(%(ended)s), false) "
            "END RETURNING id"
        ),
        {"sub": subscription_id, "status": status, "plan": plan, "end": period_end,
         "cancel": cancel_at_period_end, "seen": seen_at, "id": account_id, "ended": list(ENDED)},
    )
    return row is not None


def record_subscription_ended(
    conn: psycopg.Connection, q: Sql, account_id: int, subscription_id: str, status: str, seen_at: datetime
) -> bool:
    """Record that the account's subscription ended (``customer.subscription.deleted``); an ended
    status never changes again, so this needs no ordering, but only the subscription the account has
    recorded is touched (a late event about an older one changes nothing). Returns whether it was written."""
    if status not in ENDED:
        raise ValueError(f"{status!r} is not an ended status")
    row = one(
        conn,
        q(
            "UPDATE {s}.accounts SET subscription_status = %(status)s, subscription_period_end = NULL, "
            "subscription_seen_at = greatest(subscription_seen_at, %(seen)s), updated_at = now() "
            "WHERE id = %(id)s AND subscription_id = %(sub)s "
            "AND subscription_status IS DISTINCT FROM %(status)s RETURNING id"
        ),
        {"status": status, "seen": seen_at, "id": account_id, "sub": subscription_id},
    )
    return row is not None


# -- subscriptions the app ended after a charge, and the hold on subscribing again -----------------

#: Why the app ended a subscription after a charge, and whether that holds the account from
#: subscribing again until a person allows it (a dispute is the card holder's claim; a full refund is
#: our own decision, see the README).
CHARGE_REASONS = {"refund": False, "dispute": True}


def record_charge_end(
    conn: psycopg.Connection, q: Sql, *, account_id: int, subscription_id: str, charge_id: str, reason: str
) -> bool:
    """Record that ``subscription_id`` ended (or is being ended) because of ``charge_id``; once per
    charge and reason, so a replayed event never puts back a hold a person lifted. Returns whether it was new."""
    if reason not in CHARGE_REASONS:
        raise ValueError(f"reason must be one of {sorted(CHARGE_REASONS)}, got {reason!r}")
    row = one(
        conn,
        q(
            "INSERT INTO {s}.charge_ends (account_id, subscription_id, charge_id, reason, holds) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (charge_id, reason) DO NOTHING RETURNING charge_id"
        ),
        [account_id, subscription_id, charge_id, reason, CHARGE_REASONS[reason]],
    )
    return row is not None


def open_hold(conn: psycopg.Connection, q: Sql, account_id: int) -> dict[str, Any] | None:
    """The newest charge end that holds the account from subscribing again and was not allowed yet, or None."""
    return one(
        conn,
        q(
            "SELECT * FROM {s}.charge_ends WHERE account_id = %s AND holds AND allowed_at IS NULL "
            "ORDER BY recorded_at DESC, charge_id DESC LIMIT 1"
        ),
        [account_id],
    )


def lift_holds(conn: psycopg.Connection, q: Sql, account_id: int) -> list[dict[str, Any]]:
    """Mark every open hold of the account allowed; returns the rows lifted."""
    return all_rows(
        conn,
        q(
            "UPDATE {s}.charge_ends SET allowed_at = now() WHERE account_id = %s AND holds "
            "AND allowed_at IS NULL RETURNING *"
        ),
        [account_id],
    )


def hold_text(hold: dict[str, Any]) -> str:
    """How a hold reads in an error: '… ended after a dispute on charge ch_…'."""
    what = "a dispute" if hold["reason"] == "dispute" else "a full refund"
    return f"its subscription {hold['subscription_id']} ended after {what} on charge {hold['charge_id']}"


def plan_price(conn: psycopg.Connection, q: Sql, plan: str) -> str | None:
    """The Stripe price of a plan, from the plans table."""
    row = one(conn, q("SELECT stripe_price FROM {s}.plans WHERE name = %s"), [plan])
    return str(row["stripe_price"]) if row else None


def plan_of_price(conn: psycopg.Connection, q: Sql, price: str | None) -> str | None:
    """The plan a Stripe price belongs to, from the plans table."""
    row = one(conn, q("SELECT name FROM {s}.plans WHERE stripe_price = %s ORDER BY name LIMIT 1"), [price])
    return str(row["name"]) if row else None
