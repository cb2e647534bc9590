"""One migrator for the engine's schema and an app's own tables: once each, all or nothing."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from engine import apply_migrations


def _steps(schema: str, *texts: str) -> list[tuple[int, sql.Composed]]:
    return [(i + 1, sql.SQL(t).format(s=sql.Identifier(schema))) for i, t in enumerate(texts)]


def test_steps_run_once_each_and_a_failing_step_leaves_nothing(conn: psycopg.Connection, prefix: str) -> None:
    schema = f"{prefix}_app"
    first = _steps(schema, "CREATE TABLE {s}.a (x int)")
    assert apply_migrations(conn, schema, first, lock="tests.app") == [1]
    assert apply_migrations(conn, schema, first, lock="tests.app") == []
    broken = _steps(schema, "CREATE TABLE {s}.a (x int)", "CREATE TABLE {s}.b (x int)", "SELECT 1 / 0")
    with pytest.raises(psycopg.errors.DivisionByZero):
        apply_migrations(conn, schema, broken, lock="tests.app")
    assert conn.execute("SELECT to_regclass(%s)", [f"{schema}.b"]).fetchone() == (None,)  # step 2 rolled back
    versions = conn.execute(sql.SQL("SELECT array_agg(version) FROM {}").format(sql.Identifier(schema, "migrations")))
    assert versions.fetchone() == ([1],)
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_versions_must_be_unique_and_ascending(conn: psycopg.Connection, prefix: str) -> None:
    steps = [(2, sql.SQL("SELECT 1").format()), (1, sql.SQL("SELECT 1").format())]
    with pytest.raises(ValueError, match="unique and ascending"):
        apply_migrations(conn, f"{prefix}_app", steps)
