"""SQL statements, one per ``.sql`` file beside this module, bound to an instance's schema."""

from __future__ import annotations

from functools import cache
from importlib import resources

from psycopg import sql


@cache
def _text(name: str) -> str:
    return resources.files("engine").joinpath("sql", name).read_text(encoding="utf-8")


class Queries:
    """The statements of one prefix, composed once with the schema quoted as an identifier."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._cache: dict[str, sql.Composed] = {}

    def __getattr__(self, name: str) -> sql.Composed:
        if name.startswith("_"):
            raise AttributeError(name)
        composed = self._cache.get(name)
        if composed is None:
            composed = self.compose(f"{name}.sql")
            self._cache[name] = composed
        return composed

    def compose(self, filename: str) -> sql.Composed:
        """The statement in ``sql/filename`` with ``{prefix}`` bound to this schema."""
        return sql.SQL(_text(filename)).format(prefix=sql.Identifier(self.prefix))

    def table(self, name: str) -> sql.Composed:
        """``prefix.lysmore_<name>`` as a quoted, qualified identifier."""
        return sql.SQL("{}.{}").format(sql.Identifier(self.prefix), sql.Identifier(f"lysmore_{name}"))


def channel(prefix: str) -> str:
    """The NOTIFY channel of one instance; other prefixes never hear it."""
    return f"lysmore.{prefix}"
