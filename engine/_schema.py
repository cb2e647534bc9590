"""Versioned, append-only migrations, applied under a transaction-scoped advisory lock."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib import resources

import psycopg
from psycopg import sql

from ._errors import NotMigrated
from ._sql import Queries

log = logging.getLogger("lysmore.schema")


def migrations() -> list[tuple[int, str]]:
    """Every migration shipped, as (version, file name), oldest first."""
    found = []
    for entry in resources.files("engine").joinpath("sql", "migrations").iterdir():
        match = re.match(r"^(\d{3})_[a-z0-9_]+\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name))
    return sorted(found)


def latest_version() -> int:
    return migrations()[-1][0]


def migrate(conn: psycopg.Connection, prefix: str) -> list[int]:
    """Bring the schema ``prefix`` up to date; safe to call from many processes at once.

    Returns the versions applied by this call.
    """
    q = Queries(prefix)
    steps = [(version, q.compose(f"migrations/{filename}")) for version, filename in migrations()]
    return apply_migrations(conn, prefix, steps, table="lysmore_migrations", lock="lysmore.migrate")


def apply_migrations(
    conn: psycopg.Connection, schema: str, steps: Sequence[tuple[int, sql.Composed]], *,
    table: str = "migrations", lock: str = "lysmore.migrate",
) -> list[int]:
    """Create ``schema`` if needed and run the ``steps`` (version, statement) it has not had yet,
    in order, each once, recording them in ``schema.table``; returns the versions applied.

    One transaction under a transaction-scoped advisory lock on (``lock``, ``schema``): any number
    of processes may call it at once, and a failed step leaves nothing of the call behind. The
    engine's own schema and an app's tables (the licensing app's) are migrated by this one function.
    """
    versions = [version for version, _ in steps]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be unique and ascending, got {versions}")
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", [lock, schema])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        record = sql.Identifier(schema, table)
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now())").format(record)
        )
        done = {row[0] for row in conn.execute(sql.SQL("SELECT version FROM {}").format(record))}
        for version, statement in steps:
            if version in done:
                continue
            log.info("applying migration", extra={"schema": schema, "version": version})
            conn.execute(statement)
            conn.execute(sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(record), [version])
            applied.append(version)
    return applied


def current_version(conn: psycopg.Connection, prefix: str) -> int:
    """The newest migration applied to ``prefix``, or 0 when it has none."""
    exists = conn.execute("SELECT to_regclass(%s)", [f'"{prefix}".lysmore_migrations']).fetchone()
    if not exists or exists[0] is None:
        return 0
    row = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(Queries(prefix).table("migrations"))
    ).fetchone()
    return int(row[0]) if row else 0


def find_instances(conn: psycopg.Connection) -> list[str]:
    """The prefixes of this database that hold a Lysmore instance (its migrations table), sorted;
    what ``lysmore dashboard --all-prefixes`` watches and what a missing prefix's message names."""
    rows = conn.execute(
        "SELECT table_schema FROM information_schema.tables "
        "WHERE table_name = 'lysmore_migrations' ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def check_migrated(conn: psycopg.Connection, prefix: str) -> None:
    """Raise ``NotMigrated`` unless ``prefix`` holds exactly the migrations this code knows.

    The message says what to do: which prefixes exist when this one does not, `lysmore migrate`
    when it is behind, an upgrade of lysmore when it is ahead of this code.
    """
    have, need = current_version(conn, prefix), latest_version()
    if have == need:
        return
    if have > need:
        raise NotMigrated(
            f"prefix {prefix!r} is at migration {have}, newer than this lysmore knows ({need}): "
            "upgrade lysmore on this machine"
        )
    exists = conn.execute(
        "SELECT 1 FROM pg_namespace WHERE nspname = %s", [prefix]
    ).fetchone()
    fix = f"run `lysmore migrate --prefix {prefix}` (or call Engine.migrate())"
    if exists is None or have == 0:
        others = [name for name in find_instances(conn) if name != prefix]
        shown = ", ".join(others[:8]) + (f" and {len(others) - 8} more" if len(others) > 8 else "")
        where = f"instances here: {shown}" if others else "no instance exists in this database yet"
        if exists is None:
            raise NotMigrated(f"prefix {prefix!r} does not exist ({where}); to create it, {fix}")
        raise NotMigrated(f"prefix {prefix!r} is at migration 0, it holds no Lysmore tables ({where}); "
                          f"to create them, {fix}")
    raise NotMigrated(f"prefix {prefix!r} is at migration {have}, this code needs {need}: {fix}")
