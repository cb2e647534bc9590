"""Which schemas of a database hold a Lysmore instance: what the dashboard watches with
``--all-prefixes`` and what a missing prefix's message names."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from engine import Engine, NotMigrated, check_migrated, find_instances
from tests.conftest import with_database


@pytest.fixture
def empty_db(server_url: str, prefix: str) -> Iterator[str]:
    """A database of this test's own: the run's shared database holds every test's prefixes."""
    name = f"lysmore_instances_{prefix}"
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _migrate(url: str, prefix: str) -> None:
    eng = Engine(url, prefix=prefix)
    try:
        eng.migrate()
    finally:
        eng.stop()


def test_finds_the_migrated_prefixes_and_nothing_else(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert find_instances(conn) == []
        conn.execute("CREATE SCHEMA bare")  # a schema, no Lysmore tables
        conn.execute("CREATE TABLE bare.migrations (version integer)")  # an app's migrations table
        for prefix in ("private", "public"):
            _migrate(empty_db, prefix)
        assert find_instances(conn) == ["private", "public"]


def test_a_missing_or_empty_prefix_names_the_instances_that_exist(empty_db: str) -> None:
    for prefix in ("private", "public"):
        _migrate(empty_db, prefix)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        with pytest.raises(NotMigrated, match=r"prefix 'nope' does not exist \(instances here: private, public\)"):
            check_migrated(conn, "nope")
        conn.execute("CREATE SCHEMA bare")
        with pytest.raises(NotMigrated) as raised:
            check_migrated(conn, "bare")
        assert "holds no Lysmore tables (instances here: private, public)" in str(raised.value)
        assert "lysmore migrate --prefix bare" in str(raised.value)
        check_migrated(conn, "private")  # a migrated one passes
