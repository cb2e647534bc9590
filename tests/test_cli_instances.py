"""``lysmore dashboard`` over several instances: a missing one among those listed, or a database
with none for --all-prefixes, is one line naming what exists, before any screen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from engine import Engine
from tests.conftest import with_database
from tests.test_cli import lysmore, one_line


@pytest.fixture
def two_instances(server_url: str, prefix: str) -> Iterator[str]:
    """A database of its own holding the instances ``public`` and ``private``."""
    name = f"lysmore_two_{prefix}"
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = with_database(server_url, name)
        for other in ("public", "private"):
            eng = Engine(url, prefix=other)
            eng.migrate()
            eng.stop()
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LYSMORE_DATA_DIR": str(tmp_path / "pgdata"), "HOME": str(tmp_path)}


@pytest.mark.parametrize("listed", ["nope", "public,nope", "nope,private"])
def test_a_missing_prefix_among_several_names_the_ones_that_exist(two_instances: str, env: dict[str, str],
                                                                   listed: str) -> None:
    line = one_line(lysmore("dashboard", "--database-url", two_instances, "--prefix", listed, env=env),
                    "prefix 'nope' does not exist (instances here: private, public)")
    assert line.startswith("lysmore dashboard: ")


def test_an_empty_name_in_the_list_is_refused(two_instances: str, env: dict[str, str]) -> None:
    one_line(lysmore("dashboard", "--database-url", two_instances, "--prefix", "public,,private", env=env),
             "--prefix 'public,,private' has an empty name")


def test_all_prefixes_on_a_database_with_none(server_url: str, prefix: str, env: dict[str, str]) -> None:
    name = f"lysmore_none_{prefix}"
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        one_line(lysmore("dashboard", "--database-url", with_database(server_url, name), "--all-prefixes", env=env),
                 "--all-prefixes: this database holds no Lysmore instance", "lysmore migrate --prefix NAME")
    finally:
        with psycopg.connect(server_url, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
