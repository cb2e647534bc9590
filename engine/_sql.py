"""SQL statements, grouped by what they touch: one ``.sql`` file per group beside this module
(``sql/jobs.sql``, ``sql/nodes.sql``, ...), each statement after a ``-- name: NAME`` line.

Every group declares its statements below; the declaration is checked against its file when this
module loads, so a misspelt or missing statement fails at import, not when a loop first runs it.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import ClassVar

from psycopg import sql

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def _text(name: str) -> str:
    return resources.files("engine").joinpath("sql", name).read_text(encoding="utf-8")


@cache
def statements(filename: str) -> dict[str, str]:
    """The statements of ``sql/filename`` by name, in file order."""
    text = _text(filename)
    marks = list(_NAME.finditer(text))
    found: dict[str, str] = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        if mark.group(1) in found:
            raise RuntimeError(f"sql/{filename}: statement {mark.group(1)!r} is defined twice")
        found[mark.group(1)] = text[mark.end():end].strip() + "\n"
    return found


class Group:
    """The statements of one file, composed for one prefix (the schema quoted as an identifier)."""

    file: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        declared = set(cls.__annotations__) - {"file"}
        found = set(statements(cls.file))
        if declared != found:
            raise RuntimeError(
                f"sql/{cls.file} and {cls.__name__} disagree: declared but not in the file "
                f"{sorted(declared - found)}, in the file but not declared {sorted(found - declared)}"
            )

    def __init__(self, prefix: str) -> None:
        for name, text in statements(self.file).items():
            setattr(self, name, sql.SQL(text).format(prefix=sql.Identifier(prefix)))


class Jobs(Group):
    file = "jobs.sql"
    ack: sql.Composed
    cancel: sql.Composed
    copy: sql.Composed
    delete: sql.Composed
    executing_here: sql.Composed
    fetch: sql.Composed
    fetch_global: sql.Composed
    fetch_limited: sql.Composed
    get: sql.Composed
    insert: sql.Composed
    insert_unique: sql.Composed
    lost: sql.Composed
    prune: sql.Composed
    refused: sql.Composed
    release: sql.Composed
    rescue: sql.Composed
    reserve_ids: sql.Composed
    retry: sql.Composed
    stage: sql.Composed
    stage_queue_now: sql.Composed
    unique_expire: sql.Composed


class Nodes(Group):
    file = "nodes.sql"
    delete: sql.Composed
    heartbeat: sql.Composed
    leader_elect: sql.Composed
    leader_resign: sql.Composed
    reap: sql.Composed
    register: sql.Composed
    status: sql.Composed


class Queues(Group):
    file = "queues.sql"
    control_state: sql.Composed
    lock: sql.Composed
    notify: sql.Composed
    producer_upsert: sql.Composed
    rate_next: sql.Composed
    settings_read: sql.Composed
    settings_reset: sql.Composed
    settings_write: sql.Composed


class Workflows(Group):
    file = "workflows.sql"
    lock: sql.Composed
    of_jobs: sql.Composed
    resolve: sql.Composed
    results: sql.Composed
    step_ids: sql.Composed
    steps: sql.Composed
    stuck: sql.Composed


class Cron(Group):
    file = "cron.sql"
    claim: sql.Composed
    last: sql.Composed
    link: sql.Composed


class Stats(Group):
    file = "stats.sql"
    counts_estimate: sql.Composed
    counts_exact: sql.Composed
    counts_live: sql.Composed
    prune: sql.Composed


class Audit(Group):
    file = "audit.sql"
    insert: sql.Composed


class Queries:
    """Every statement of one prefix, by group: ``q.jobs.fetch``, ``q.nodes.heartbeat``, ..."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.jobs = Jobs(prefix)
        self.nodes = Nodes(prefix)
        self.queues = Queues(prefix)
        self.workflows = Workflows(prefix)
        self.cron = Cron(prefix)
        self.stats = Stats(prefix)
        self.audit = Audit(prefix)

    def compose(self, filename: str) -> sql.Composed:
        """The whole of ``sql/filename`` (a migration) with ``{prefix}`` bound to this schema."""
        return sql.SQL(_text(filename)).format(prefix=sql.Identifier(self.prefix))

    def table(self, name: str) -> sql.Composed:
        """``prefix.lysmore_<name>`` as a quoted, qualified identifier."""
        return sql.SQL("{}.{}").format(sql.Identifier(self.prefix), sql.Identifier(f"lysmore_{name}"))


def channel(prefix: str) -> str:
    """The NOTIFY channel of one instance; other prefixes never hear it."""
    return f"lysmore.{prefix}"
