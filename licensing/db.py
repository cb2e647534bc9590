"""The licensing app's tables, in a schema of their own (``<prefix>_licensing``), and their idempotent migration."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from engine import apply_migrations

log = logging.getLogger("licensing.db")

# Append-only: each entry runs once per schema, in order, under a transaction-scoped advisory lock.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE {s}.plans (
            name         text PRIMARY KEY,
            stripe_price text NOT NULL,
            updated_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {s}.accounts (
            id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            email              text NOT NULL UNIQUE,
            name               text,
            plan               text REFERENCES {s}.plans (name),
            payment_method     text,
            customer_request   jsonb,
            stripe_customer_id text UNIQUE,
            subscription_id    text UNIQUE,
            subscription_status text,
            inserted_at        timestamptz NOT NULL DEFAULT now(),
            updated_at         timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {s}.stripe_events (
            id          text PRIMARY KEY,
            type        text NOT NULL,
            livemode    boolean NOT NULL DEFAULT false,
            payload     jsonb NOT NULL,
            workflow_id uuid,
            received_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {s}.hex_keys (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account_id       bigint NOT NULL REFERENCES {s}.accounts (id),
            subscription_id  text NOT NULL UNIQUE,
            key_hash         text NOT NULL UNIQUE,
            key_prefix       text NOT NULL,
            created_by_event text,
            created_at       timestamptz NOT NULL DEFAULT now(),
            revoked_at       timestamptz,
            ends_at          timestamptz,
            revoked_by_event text
        );
        CREATE TABLE {s}.licenses (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account_id       bigint NOT NULL REFERENCES {s}.accounts (id),
            subscription_id  text NOT NULL UNIQUE,
            plan             text,
            key_id           text,
            license          text,
            created_by_event text,
            issued_at        timestamptz NOT NULL DEFAULT date_trunc('second', now()),
            revoked_at       timestamptz,
            ends_at          timestamptz,
            revoked_by_event text
        );
        CREATE TABLE {s}.mails (
            event_id   text NOT NULL,
            step       text NOT NULL,
            recipient  text NOT NULL,
            subject    text NOT NULL,
            message_id text NOT NULL,
            sent_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (event_id, step)
        );
        """,
    ),
    (
        2,
        # Wanted state and its sequence (plan and info changes are never lost, see README), what
        # Stripe was last seen to say about the subscription, and licenses that expire and re-issue.
        """
        ALTER TABLE {s}.accounts
            ADD COLUMN change_seq bigint NOT NULL DEFAULT 1,
            ADD COLUMN plan_seq bigint NOT NULL DEFAULT 1,
            ADD COLUMN info_seq bigint NOT NULL DEFAULT 1,
            ADD COLUMN synced_seq bigint NOT NULL DEFAULT 0,
            ADD COLUMN cancel_at_period_end boolean NOT NULL DEFAULT false,
            ADD COLUMN subscription_plan text,
            ADD COLUMN subscription_period_end timestamptz,
            ADD COLUMN subscription_cancel_at_period_end boolean,
            ADD COLUMN subscription_seen_at timestamptz;
        ALTER TABLE {s}.licenses
            ADD COLUMN license_key text UNIQUE,
            ADD COLUMN seats integer,
            ADD COLUMN period_end timestamptz,
            ADD COLUMN expires_at timestamptz,
            ADD COLUMN state_at timestamptz,
            ADD COLUMN revoke_final boolean NOT NULL DEFAULT false,
            ADD COLUMN restored_by_event text;
        """,
    ),
    (
        3,
        # Subscriptions the app ended after a full refund or a dispute, one row per charge and reason;
        # ``holds``: the account may not subscribe again (change_plan) until a person allows it
        # (``allowed_at``, LicensingApp.allow_resubscribe). See the README, "For the team".
        """
        CREATE TABLE {s}.charge_ends (
            account_id      bigint NOT NULL REFERENCES {s}.accounts (id),
            subscription_id text NOT NULL,
            charge_id       text NOT NULL,
            reason          text NOT NULL CHECK (reason IN ('refund', 'dispute')),
            holds           boolean NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now(),
            allowed_at      timestamptz,
            PRIMARY KEY (charge_id, reason)
        );
        CREATE INDEX ON {s}.charge_ends (account_id);
        """,
    ),
]


def schema_for(prefix: str) -> str:
    """The schema of the app tables that belong to the engine instance ``prefix``."""
    return f"{prefix}_licensing"


class Sql:
    """SQL text with ``{s}`` standing for the app schema, composed once per statement."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._ident = sql.Identifier(schema)
        self._cache: dict[str, sql.Composed] = {}

    def __call__(self, text: str) -> sql.Composed:
        """``text`` with the schema filled in (placeholders ``%s`` / ``%(name)s`` are kept)."""
        composed = self._cache.get(text)
        if composed is None:
            composed = sql.SQL(text).format(s=self._ident)
            self._cache[text] = composed
        return composed


def migrate(conn: psycopg.Connection, schema: str, plans: Mapping[str, str]) -> list[int]:
    """Create or upgrade the app schema and upsert the plans, in one transaction; idempotent and
    safe to run concurrently (the engine's migrator, with the app's own steps and lock)."""
    q = Sql(schema)
    with conn.transaction():
        applied = apply_migrations(conn, schema, [(version, q(text)) for version, text in MIGRATIONS],
                                   table="migrations", lock="lysmore.licensing.migrate")
        for name, price in plans.items():
            conn.execute(
                q(
                    "INSERT INTO {s}.plans (name, stripe_price) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET stripe_price = excluded.stripe_price, updated_at = now() "
                    "WHERE plans.stripe_price IS DISTINCT FROM excluded.stripe_price"
                ),
                [name, price],
            )
    return applied


def one(conn: psycopg.Connection, query: sql.Composed, params: Any = None) -> dict[str, Any] | None:
    """The first row of ``query`` as a dict, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def all_rows(conn: psycopg.Connection, query: sql.Composed, params: Any = None) -> list[dict[str, Any]]:
    """Every row of ``query`` as dicts."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()
