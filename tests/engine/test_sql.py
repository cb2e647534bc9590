"""The SQL files and their declared statements agree, checked when a group is defined."""

from __future__ import annotations

from importlib import resources

import pytest

from engine._sql import Group, Queries, statements


def test_every_sql_file_is_a_group_of_queries_and_every_statement_names_the_prefix() -> None:
    q = Queries("some_prefix")
    groups = [g for g in vars(q).values() if isinstance(g, Group)]
    files = {e.name for e in resources.files("engine").joinpath("sql").iterdir() if e.name.endswith(".sql")}
    assert files == {g.file for g in groups}
    for group in groups:
        for name, text in statements(group.file).items():
            rendered = getattr(group, name)
            assert isinstance(rendered, bytes)
            if "{prefix}" in text:
                assert b'"some_prefix"' in rendered


def test_a_misspelt_statement_fails_when_its_group_is_defined() -> None:
    with pytest.raises(RuntimeError, match=r"declared but not in the file \['fecth'\]"):
        class Broken(Group):  # noqa: F841 - defining it is the test
            file = "jobs.sql"
            fecth: bytes
