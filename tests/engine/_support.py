"""Helpers shared by the engine tests: start a node with an event log, wait for one job's end."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from engine import Engine, Job, JobState, testing
from tests.helpers import EventLog, wait_for

# The events that end one execution of a job.
END_KINDS = frozenset({"success", "failure", "discard", "cancel", "snooze", "timeout"})


def start_node(make_engine: Any, queues: dict[str, Any], **kwargs: Any) -> tuple[Engine, EventLog]:
    """A started Engine running ``queues``, with an EventLog subscribed to every event."""
    eng: Engine = make_engine(queues=queues, **kwargs)
    log = EventLog()
    eng.subscribe(log)
    eng.start()
    return eng, log


def events_of(log: EventLog, job_id: int, kinds: Iterable[str] | None = None) -> list[Any]:
    wanted = None if kinds is None else set(kinds)
    return [
        e for e in log.events
        if e.job is not None and e.job.id == job_id and (wanted is None or e.kind in wanted)
    ]


def wait_end(
    eng: Engine, log: EventLog, job_id: int, kinds: Iterable[str] = END_KINDS, timeout: float = 10.0
) -> Job:
    """Wait for an end event of ``job_id``, flush the buffered acks and return the stored row."""
    wanted = set(kinds)
    log.wait(
        lambda evs: any(e.job is not None and e.job.id == job_id and e.kind in wanted for e in evs),
        timeout,
    )
    assert testing.flush(eng, 5), "acks were not recorded in time"
    return eng.get_job(job_id)


def wait_state(eng: Engine, job_id: int, *states: JobState, timeout: float = 10.0) -> Job:
    """Poll the row of ``job_id`` until it is in one of ``states``; return it."""
    found: list[Job] = []

    def check() -> bool:
        found[:] = [eng.get_job(job_id)]
        return found[0].state in states

    wait_for(check, timeout, what=f"job {job_id} to be {[s.value for s in states]}")
    return found[0]


def db_now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


def count_jobs(conn: psycopg.Connection, prefix: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.lysmore_jobs").format(sql.Identifier(prefix))
    ).fetchone()
    assert row is not None
    return int(row[0])


def set_row(conn: psycopg.Connection, prefix: str, job_id: int, **fields: Any) -> None:
    """UPDATE the job row directly, as another node or an operator would."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in fields
    )
    conn.execute(
        sql.SQL("UPDATE {}.lysmore_jobs SET {} WHERE id = %(_id)s").format(
            sql.Identifier(prefix), assignments
        ),
        {**fields, "_id": job_id},
    )
