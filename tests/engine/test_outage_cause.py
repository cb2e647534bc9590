"""An engine whose database goes away says why in one line, not ``couldn't get a connection``;
with ``pool_timeout`` (the dashboard's) it refuses later callers without waiting on the pool,
and works again once the database is back."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from engine import DatabaseUnavailable, Engine, InvalidConfig, server_label
from tests.conftest import with_database


@pytest.fixture
def closable(server_url: str) -> Iterator[tuple[str, str]]:
    """(URL, name) of a database of this test's own, dropped afterwards."""
    name = f"lysmore_cause_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name), name
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def allow(server_url: str, name: str, allowed: bool) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(name), sql.SQL("true" if allowed else "false")))
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = %s", (name,))


def test_a_pool_that_cannot_connect_names_the_cause_and_refuses_at_once_until_the_database_returns(
        server_url: str, closable: tuple[str, str]) -> None:
    url, name = closable
    eng = Engine(url, prefix="cause", pool_timeout=1)
    try:
        eng.migrate()
        allow(server_url, name, False)
        expected = (f"cannot connect to PostgreSQL at {server_label(url)}: "
                    f'database "{name}" is not currently accepting connections')
        with pytest.raises(DatabaseUnavailable, match="^" + re.escape(expected) + "$"):
            eng.queue_counts()  # waited on the pool, then a direct attempt named the cause
        asked = eng.pool.get_stats()["requests_num"]
        with pytest.raises(DatabaseUnavailable, match="^" + re.escape(expected) + "$"):
            eng.queue_counts()
        assert eng.pool.get_stats()["requests_num"] == asked  # refused without asking the pool again
        allow(server_url, name, True)
        assert eng.queue_counts().total("available") == 0  # back, on the same engine
    finally:
        eng.stop()


def test_pool_timeout_must_be_positive_seconds() -> None:
    for bad in (0, -1, "2", True):
        with pytest.raises(InvalidConfig, match="pool_timeout must be a positive number of seconds"):
            Engine("postgresql://u@h/db", prefix="p", pool_timeout=bad)  # type: ignore[arg-type]
