"""The licenses table: issue, re-issue, revoke and restore one subscription's license, each idempotent and ordered.

One row per subscription holds its current license. Every change carries ``as_of`` (the Stripe
``created`` time of the event it comes from) and is written under the row lock, so a repeated or older
event never overrides a newer one: a license is re-signed for a later period end of the same plan and
seats, or for a new plan or seat count seen later (its period end may be earlier: yearly -> monthly
restarts the cycle); a revocation wins over a grant unless a later ``restore`` (un-cancel) clears it,
and a final revocation (the subscription ended) is never restored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .db import Sql, one
from .keys import key_id, sign_license

#: What ``status`` answers.
STATUSES = ("valid", "expired", "revoked")


@dataclass(frozen=True)
class Issued:
    """What ``issue`` did: ``signed`` (a new text), ``unchanged`` or ``revoked`` (left alone), and the row after it."""

    outcome: str
    row: dict[str, Any]


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("license times must be timezone-aware")
    return when.astimezone(UTC).replace(microsecond=0)


def expiry(period_end: datetime, grace_days: float) -> datetime:
    """When a license for a period ending at ``period_end`` stops being valid: the end plus the grace."""
    return _utc(period_end) + timedelta(days=grace_days)


def issue(
    conn: psycopg.Connection,
    q: Sql,
    signing_key: Ed25519PrivateKey,
    *,
    instance: str,
    account_id: int,
    subscription_id: str,
    license_key: str,
    plan: str,
    seats: int,
    period_end: datetime,
    as_of: datetime,
    grace_days: float,
    details: dict[str, Any],
    event: str | None = None,
) -> Issued:
    """Issue or re-issue the license of ``subscription_id`` (in one transaction of its own).

    The same inputs give the same row and text. For the same plan and seats a later ``period_end``
    supersedes an earlier one, never the reverse; a different plan or seat count is signed only when
    ``as_of`` is later than the row's last change, and then even with an earlier ``period_end`` (a
    change of interval restarts the billing cycle). A revoked row is left as it is (see ``restore``).
    ``details`` (product, customer, name, ...) go into the payload unchecked; ``instance`` names it."""
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 1:
        raise ValueError(f"seats must be a positive integer, got {seats!r}")
    if not plan:
        raise ValueError("a license needs a plan")
    period_end, as_of = _utc(period_end), _utc(as_of)
    expires = expiry(period_end, grace_days)
    if expires <= as_of:
        raise ValueError(f"a license issued at {as_of.isoformat()} would already have expired ({expires.isoformat()})")
    with conn.transaction():
        conn.execute(
            q(
                "INSERT INTO {s}.licenses (account_id, subscription_id, plan, license_key, created_by_event) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subscription_id) DO NOTHING"
            ),
            [account_id, subscription_id, plan, license_key, event],
        )
        row = one(conn, q("SELECT * FROM {s}.licenses WHERE subscription_id = %s FOR UPDATE"), [subscription_id])
        assert row is not None
        if row["revoked_at"] is not None:
            return Issued("revoked", row)
        if not _supersedes(row, plan=plan, seats=seats, period_end=period_end, as_of=as_of):
            return Issued("unchanged", row)
        payload = {
            **details,
            "license": f"{instance}-{row['id']}",
            "key": license_key,
            "subscription": subscription_id,
            "plan": plan,
            "seats": seats,
            "issued_at": as_of.isoformat(),
            "expires_at": expires.isoformat(),
        }
        text = sign_license(payload, signing_key)
        updated = one(
            conn,
            q(
                "UPDATE {s}.licenses SET license = %s, key_id = %s, license_key = %s, plan = %s, seats = %s, "
                "period_end = %s, expires_at = %s, issued_at = %s, state_at = greatest(state_at, %s) "
                "WHERE id = %s RETURNING *"
            ),
            [text, key_id(signing_key), license_key, plan, seats, period_end, expires, as_of, as_of, row["id"]],
        )
    assert updated is not None
    return Issued("signed", updated)


def _supersedes(row: dict[str, Any], *, plan: str, seats: int, period_end: datetime, as_of: datetime) -> bool:
    if row["license"] is None or row["period_end"] is None:  # never signed, or an old non-expiring one
        return True
    if (plan, seats) != (row["plan"], row["seats"]):
        # A plan or seat change wins when seen later, whichever way it moves the period end: a change
        # of interval restarts the billing cycle, so yearly -> monthly ends sooner than the yearly did.
        return row["state_at"] is None or as_of > row["state_at"]
    return bool(period_end > row["period_end"])


def revoke(
    conn: psycopg.Connection,
    q: Sql,
    *,
    account_id: int,
    subscription_id: str,
    plan: str | None,
    ends_at: datetime | None,
    as_of: datetime,
    final: bool = False,
    event: str | None = None,
) -> dict[str, Any]:
    """Revoke the license from ``ends_at`` (None: now); leaves a revoked row when none was issued.

    Repeating it changes nothing; the earliest end wins; a revocation older than the row's last
    restore is ignored unless ``final`` (the subscription ended)."""
    row = one(
        conn,
        q(
            "INSERT INTO {s}.licenses AS l (account_id, subscription_id, plan, revoked_at, ends_at, "
            "revoked_by_event, state_at, revoke_final) "
            "VALUES (%(account)s, %(sub)s, %(plan)s, now(), coalesce(%(ends)s, now()), %(event)s, %(as_of)s, %(final)s) "
            "ON CONFLICT (subscription_id) DO UPDATE SET "
            "revoked_at = coalesce(l.revoked_at, excluded.revoked_at), "
            "ends_at = CASE WHEN l.revoked_at IS NULL THEN excluded.ends_at "
            "          ELSE least(l.ends_at, excluded.ends_at) END, "
            "revoked_by_event = CASE WHEN l.revoked_at IS NULL THEN excluded.revoked_by_event "
            "                   ELSE l.revoked_by_event END, "
            "revoke_final = l.revoke_final OR excluded.revoke_final, "
            "state_at = greatest(l.state_at, excluded.state_at) "
            "WHERE %(final)s OR l.state_at IS NULL OR l.state_at <= excluded.state_at "
            "RETURNING *"
        ),
        {"account": account_id, "sub": subscription_id, "plan": plan, "ends": ends_at, "event": event,
         "as_of": _utc(as_of), "final": final},
    )
    if row is None:  # an older revocation than the last change: left as it is
        row = one(conn, q("SELECT * FROM {s}.licenses WHERE subscription_id = %s"), [subscription_id])
    assert row is not None
    return row


def restore(
    conn: psycopg.Connection, q: Sql, *, subscription_id: str, as_of: datetime, event: str | None = None
) -> dict[str, Any] | None:
    """Lift a scheduled revocation (an un-cancel) seen after it; a final revocation stays. Returns the row, or None."""
    conn.execute(
        q(
            "UPDATE {s}.licenses SET revoked_at = NULL, ends_at = NULL, revoked_by_event = NULL, "
            "restored_by_event = %s, state_at = %s "
            "WHERE subscription_id = %s AND revoked_at IS NOT NULL AND NOT revoke_final "
            "AND (state_at IS NULL OR state_at < %s)"
        ),
        [event, _utc(as_of), subscription_id, _utc(as_of)],
    )
    return one(conn, q("SELECT * FROM {s}.licenses WHERE subscription_id = %s"), [subscription_id])


def status(conn: psycopg.Connection, q: Sql, license_key: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """``{"status", "expires_at", "ends_at"}`` of the license with ``license_key`` at ``now`` (default: the
    database's clock), or None when there is no such signed license."""
    row = one(
        conn,
        q(
            "SELECT expires_at, revoked_at, ends_at, coalesce(%s, now()) AS now FROM {s}.licenses "
            "WHERE license_key = %s AND license IS NOT NULL"
        ),
        [now, license_key],
    )
    if row is None:
        return None
    at = row["now"]
    if row["revoked_at"] is not None and row["ends_at"] is not None and row["ends_at"] <= at:
        state = "revoked"
    elif row["expires_at"] is not None and row["expires_at"] <= at:
        state = "expired"
    else:
        state = "valid"
    return {
        "status": state,
        "expires_at": row["expires_at"].astimezone(UTC).isoformat() if row["expires_at"] else None,
        "ends_at": row["ends_at"].astimezone(UTC).isoformat() if row["ends_at"] and row["revoked_at"] else None,
    }
