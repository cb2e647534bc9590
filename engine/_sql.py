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

from ._states import DUE_STATES, FINAL_STATES, RESCHEDULABLE, UNSETTLED, JobState

_MARK = re.compile(r"^-- (name|part): ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_INCLUDE = re.compile(r"^[ \t]*-- include: (.+?)(,?)\s*$", re.MULTILINE)  # a trailing comma stays after it
_ARG = re.compile(r"([a-z_]+)=(\S+(?:\s(?![a-z_]+=)\S+)*)")  # key=value, a value may hold spaces


def state_list(states: frozenset[JobState]) -> sql.Composed:
    """``'a', 'b'``: a set of states for ``state IN (...)``, in the order they are declared (the
    order an index predicate spells them in, so the planner can match a query to it)."""
    return sql.SQL(", ").join(sql.Literal(s.value) for s in JobState if s in states)


# The state sets statements use, from _states.py: ``WHERE state IN ({final_states})``.
STATE_SETS = {
    "final_states": state_list(FINAL_STATES),
    "due_states": state_list(DUE_STATES),
    "reschedulable_states": state_list(RESCHEDULABLE),
    "unsettled_states": state_list(UNSETTLED),
}


@cache
def _text(name: str) -> str:
    return resources.files("engine").joinpath("sql", name).read_text(encoding="utf-8")


@cache
def statements(filename: str) -> dict[str, str]:
    """The statements of ``sql/filename`` by name, in file order, with their includes put in.

    A ``-- part: NAME`` section is a piece several statements share; a statement's line
    ``-- include: NAME key=value ...`` is replaced by that part, its ``$key`` set to ``value``.
    """
    text = _text(filename)
    marks = list(_MARK.finditer(text))
    parts: dict[str, str] = {}
    found: dict[str, str] = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        kind, name, body = mark.group(1), mark.group(2), text[mark.end():end].strip() + "\n"
        into = parts if kind == "part" else found
        if name in into:
            raise RuntimeError(f"sql/{filename}: {kind} {name!r} is defined twice")
        into[name] = body

    def include(line: re.Match[str]) -> str:
        name, *pairs = line.group(1).split(maxsplit=1)
        if name not in parts:
            raise RuntimeError(f"sql/{filename}: include of unknown part {name!r}")
        body = parts[name].rstrip("\n")
        for key, value in _ARG.findall(pairs[0] if pairs else ""):
            body = body.replace(f"${key}", value)
        if "$" in re.sub(r"'[^']*'", "", body):
            raise RuntimeError(f"sql/{filename}: part {name!r} is missing a value: {line.group(0).strip()}")
        return body + line.group(2)

    return {name: _INCLUDE.sub(include, body) for name, body in found.items()}


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
        # Rendered to bytes once: psycopg would render a Composed again on every execute.
        for name, text in statements(self.file).items():
            setattr(self, name, sql.SQL(text).format(prefix=sql.Identifier(prefix), **STATE_SETS).as_bytes(None))


class Jobs(Group):
    file = "jobs.sql"
    ack: bytes
    ack_completed: bytes
    analyze_live: bytes
    cancel: bytes
    copy: bytes
    copy_many: bytes
    delete: bytes
    executing_here: bytes
    fetch: bytes
    fetch_global: bytes
    fetch_limited: bytes
    get: bytes
    insert: bytes
    insert_one: bytes
    insert_unique: bytes
    live_side: bytes
    lost: bytes
    prune: bytes
    refused: bytes
    release: bytes
    rescue: bytes
    reserve_ids: bytes
    retry: bytes
    stage: bytes
    stage_queue_now: bytes
    vacuum_live: bytes


class Nodes(Group):
    file = "nodes.sql"
    delete: bytes
    heartbeat: bytes
    leader_elect: bytes
    leader_resign: bytes
    reap: bytes
    register: bytes
    status: bytes
    summary: bytes


class Queues(Group):
    file = "queues.sql"
    control_state: bytes
    lock: bytes
    notify: bytes
    producer_upsert: bytes
    producers: bytes
    rate_next: bytes
    settings_all: bytes
    settings_reset: bytes
    settings_write: bytes


class Workflows(Group):
    file = "workflows.sql"
    lock: bytes
    of_jobs: bytes
    resolve: bytes
    results: bytes
    step_ids: bytes
    steps: bytes
    stuck: bytes


class Cron(Group):
    file = "cron.sql"
    claim: bytes
    entries: bytes
    last: bytes
    link: bytes
    names: bytes
    pause: bytes
    recent: bytes
    record: bytes


class Stats(Group):
    file = "stats.sql"
    counts_estimate: bytes
    counts_by_state: bytes
    counts_exact: bytes
    counts_of_states: bytes
    counts_of_states_by_state: bytes
    executing_by_node: bytes
    prune: bytes
    rollup: bytes
    rollup_queues: bytes
    rollup_workers: bytes
    queues_in_state: bytes
    rows_in_queue_state: bytes
    rows_in_state: bytes
    series_queues: bytes
    series_workers: bytes


class Audit(Group):
    file = "audit.sql"
    insert: bytes


class Notifications(Group):
    file = "notifications.sql"
    insert: bytes
    recent: bytes


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
        self.notifications = Notifications(prefix)

    def compose(self, filename: str) -> sql.Composed:
        """The whole of ``sql/filename`` (a migration) with ``{prefix}`` bound to this schema."""
        return sql.SQL(_text(filename)).format(prefix=sql.Identifier(self.prefix))

    def state_type(self) -> sql.Composed:
        """``prefix.lysmore_job_state``, the enum of job states, as a quoted identifier."""
        return sql.SQL("{}.lysmore_job_state").format(sql.Identifier(self.prefix))

    def table(self, name: str) -> sql.Composed:
        """``prefix.lysmore_<name>`` as a quoted, qualified identifier."""
        return sql.SQL("{}.{}").format(sql.Identifier(self.prefix), sql.Identifier(f"lysmore_{name}"))


def channel(prefix: str) -> str:
    """The NOTIFY channel of one instance; other prefixes never hear it."""
    return f"lysmore.{prefix}"
