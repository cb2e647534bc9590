"""Dashboard fixtures: a seeded schema and a factory for apps on it with a fixed clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from engine import Engine
from tests.tui.seed import clock, seed, seed_large
from tui.app import DashboardApp
from tui.keymap import Keymap

AppFactory = Callable[..., DashboardApp]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked ``anyio``; the plugin ships with anyio) run on asyncio, as Textual does."""
    return "asyncio"


@pytest.fixture
def seeded(make_engine: Callable[..., Engine], prefix: str, conn: psycopg.Connection) -> str:
    """This test's schema, migrated and filled with the deterministic data set."""
    make_engine()
    seed(conn, prefix)
    return prefix


@pytest.fixture
def make_app(database_url: str, seeded: str) -> AppFactory:
    """Build dashboards on the seeded schema, with the fixed clock, no cursor blink, a slow timer."""

    def factory(**kwargs: Any) -> DashboardApp:
        kwargs.setdefault("database_url", database_url)
        kwargs.setdefault("prefix", seeded)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("database_name", "db/test")
        kwargs.setdefault("cursor_blink", False)
        kwargs.setdefault("refresh", 60)  # no timer refresh in the middle of a test; tests press ctrl+r
        kwargs.setdefault("keymap", Keymap())  # the default keys, whatever keys.toml this machine has
        kwargs.setdefault("confirm_delay", 0.0)  # armed once drawn; test_input_trust times the real delay
        return DashboardApp(**kwargs)

    return factory


def _fixed_schema(database_url: str, fill: Callable[[psycopg.Connection, str], None]) -> Iterator[str]:
    """A schema with a fixed name (the header shows it), migrated and filled, dropped afterwards."""
    name = "demo"
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        eng = Engine(database_url=database_url, prefix=name)
        eng.migrate()
        eng.stop()
        fill(c, name)
    yield name
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def snap_prefix(database_url: str) -> Iterator[str]:
    """The deterministic data set under a fixed schema name, for snapshot tests, rebuilt for each test."""
    yield from _fixed_schema(database_url, seed)


@pytest.fixture
def large_prefix(database_url: str) -> Iterator[str]:
    """The data set with long names and counts in the millions (``seed_large``), like ``snap_prefix``."""
    yield from _fixed_schema(database_url, seed_large)
