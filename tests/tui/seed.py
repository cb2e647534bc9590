"""A small deterministic data set for dashboard tests: fixed ids, fixed times around ``NOW``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
NODE_A = "00000000-0000-0000-0000-00000000000a"
NODE_B = "00000000-0000-0000-0000-00000000000b"
NODE_OLD = "00000000-0000-0000-0000-0000000000cc"
WORKFLOW = "00000000-0000-0000-0000-0000000000f1"


def clock() -> datetime:
    """The fixed clock every dashboard test runs with."""
    return NOW


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def later(**kw: float) -> datetime:
    return NOW + timedelta(**kw)


def _trace(msg: str) -> str:
    return "Traceback (most recent call last):\n  File \"app/workers.py\", line 42, in perform\n" \
           f"    raise RuntimeError({msg!r})\nRuntimeError: {msg}\n"


def _err(attempt: int, at: datetime, msg: str) -> dict[str, Any]:
    return {"attempt": attempt, "at": at.isoformat(), "error": f"RuntimeError: {msg}", "traceback": _trace(msg)}


JOBS: list[dict[str, Any]] = [
    # id, state, queue, worker, ... (times relative to NOW)
    dict(id=1, state="completed", queue="default", worker="app.workers.Report", args={"report": "daily"},
         attempt=1, inserted_at=ago(hours=3), attempted_at=ago(hours=3), completed_at=ago(hours=3, seconds=-4),
         attempted_by=["node-a", NODE_A]),
    dict(id=2, state="completed", queue="mailers", worker="app.workers.Welcome", args={"email": "ann@example.com"},
         attempt=1, inserted_at=ago(hours=2), attempted_at=ago(hours=2), completed_at=ago(hours=2, seconds=-1),
         attempted_by=["node-b", NODE_B], tags=["email"]),
    dict(id=3, state="discarded", queue="default", worker="app.workers.Charge", args={"account_id": 7, "cents": 1200},
         attempt=3, max_attempts=3, inserted_at=ago(hours=1), attempted_at=ago(minutes=20),
         discarded_at=ago(minutes=20, seconds=-2), attempted_by=["node-a", NODE_A], tags=["billing"],
         errors=[_err(1, ago(minutes=50), "card declined"), _err(2, ago(minutes=40), "card declined"),
                 _err(3, ago(minutes=20), "gateway timed out")]),
    dict(id=4, state="retryable", queue="default", worker="app.workers.Charge", args={"account_id": 8, "cents": 500},
         attempt=2, inserted_at=ago(minutes=30), attempted_at=ago(minutes=5), scheduled_at=later(minutes=4),
         attempted_by=["node-b", NODE_B], tags=["billing"],
         errors=[_err(1, ago(minutes=25), "connection refused"), _err(2, ago(minutes=5), "connection refused")]),
    dict(id=5, state="cancelled", queue="mailers", worker="app.workers.Newsletter", args={"issue": 12},
         attempt=0, inserted_at=ago(minutes=50), cancelled_at=ago(minutes=45)),
    dict(id=6, state="executing", queue="default", worker="app.workers.Report", args={"report": "weekly"},
         attempt=1, inserted_at=ago(minutes=2), attempted_at=ago(seconds=12), attempted_by=["node-a", NODE_A],
         node_id=NODE_A),
    dict(id=7, state="executing", queue="mailers", worker="app.workers.Welcome", args={"email": "bob@example.com"},
         attempt=1, inserted_at=ago(minutes=1), attempted_at=ago(seconds=3), attempted_by=["node-b", NODE_B],
         node_id=NODE_B, tags=["email"]),
    dict(id=8, state="scheduled", queue="mailers", worker="app.workers.Reminder", args={"user_id": 42},
         inserted_at=ago(minutes=10), scheduled_at=later(minutes=5), tags=["email"]),
    dict(id=9, state="scheduled", queue="default", worker="app.workers.Cleanup", args={},
         inserted_at=ago(hours=1), scheduled_at=later(hours=2)),
    dict(id=10, state="available", queue="media", worker="app.workers.Thumbnail", args={"image": "a.png", "w": 64},
         inserted_at=ago(minutes=8), scheduled_at=ago(minutes=8), priority=1),
    dict(id=11, state="available", queue="media", worker="app.workers.Thumbnail", args={"image": "b.png", "w": 64},
         inserted_at=ago(minutes=6), scheduled_at=ago(minutes=6), priority=0),
    dict(id=12, state="available", queue="reports", worker="app.workers.Report", args={"report": "monthly"},
         inserted_at=ago(minutes=3), scheduled_at=ago(minutes=3)),
    dict(id=13, state="available", queue="default", worker="app.workers.Sync", args={"account_id": 7},
         inserted_at=ago(seconds=20), scheduled_at=ago(seconds=20), meta={"source": "api"}),
    dict(id=14, state="completed", queue="default", worker="app.workers.Sync", args={"account_id": 9},
         attempt=2, inserted_at=ago(minutes=15), attempted_at=ago(minutes=14), completed_at=ago(minutes=14, seconds=-3),
         attempted_by=["node-b", NODE_B], errors=[_err(1, ago(minutes=15), "deadlock detected")]),
    # a workflow: fetch -> (resize, scan) -> publish
    dict(id=15, state="completed", queue="media", worker="app.workers.Fetch", args={"url": "https://example.com/x"},
         attempt=1, inserted_at=ago(minutes=4), attempted_at=ago(minutes=4), completed_at=ago(minutes=4, seconds=-2),
         attempted_by=["node-a", NODE_A], workflow_id=WORKFLOW, workflow_name="ingest", workflow_step="fetch"),
    dict(id=16, state="available", queue="media", worker="app.workers.Resize", args={"size": 640},
         inserted_at=ago(minutes=4), scheduled_at=ago(minutes=3), workflow_id=WORKFLOW, workflow_name="ingest",
         workflow_step="resize", workflow_deps=["fetch"]),
    dict(id=17, state="executing", queue="default", worker="app.workers.Scan", args={"deep": True},
         attempt=1, inserted_at=ago(minutes=4), attempted_at=ago(seconds=40), attempted_by=["node-a", NODE_A],
         node_id=NODE_A, workflow_id=WORKFLOW, workflow_name="ingest", workflow_step="scan", workflow_deps=["fetch"]),
    dict(id=18, state="held", queue="default", worker="app.workers.Publish", args={"channel": "web"},
         inserted_at=ago(minutes=4), workflow_id=WORKFLOW, workflow_name="ingest", workflow_step="publish",
         workflow_deps=["resize", "scan"]),
]

STATS = {  # queue -> completed per minute for the last 10 minutes, oldest first
    "default": [3, 5, 4, 8, 12, 9, 7, 10, 14, 11],
    "mailers": [1, 0, 2, 2, 1, 3, 0, 1, 2, 4],
}


def seed(conn: psycopg.Connection, prefix: str) -> None:
    """Fill a migrated, empty schema with the data set (in one transaction)."""
    s = sql.Identifier(prefix)

    def t(name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(s, sql.Identifier(f"lysmore_{name}"))

    with conn.transaction():
        conn.execute(
            sql.SQL("INSERT INTO {} (id, name, host, pid, started_at, heartbeat_at) VALUES "
                    "(%s, 'node-a', 'web-1', 101, %s, %s), (%s, 'node-b', 'web-2', 202, %s, %s),"
                    "(%s, 'node-old', 'web-3', 303, %s, %s)").format(t("nodes")),
            (NODE_A, ago(hours=2), ago(seconds=1), NODE_B, ago(hours=1), ago(seconds=2),
             NODE_OLD, ago(days=1), ago(minutes=5)),
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (node_id, node_name, epoch, elected_at, expires_at) VALUES (%s, 'node-a', 3, %s, %s)")
            .format(t("leader")),
            (NODE_A, ago(hours=2), later(seconds=30)),
        )
        producers = [
            (NODE_A, "default", 10, False, 2), (NODE_A, "mailers", 5, False, 0),
            (NODE_B, "default", 10, False, 0), (NODE_B, "mailers", 5, False, 1), (NODE_B, "media", 2, False, 0),
            (NODE_OLD, "default", 4, False, 0),
        ]
        for node, queue, limit, paused, running in producers:
            conn.execute(
                sql.SQL("INSERT INTO {} (node_id, queue, local_limit, paused, running, updated_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s)").format(t("producers")),
                (node, queue, limit, paused, running, ago(seconds=1)),
            )
        settings = [
            ("media", "node-b", True, None, None, None),
            ("reports", "*", True, None, None, None),
            ("mailers", "*", None, None, {"allowed": 3}, None),
            ("default", "*", None, None, None, {"allowed": 100, "period": 60}),
        ]
        for queue, node, paused, limit, glob, rate in settings:
            conn.execute(
                sql.SQL("INSERT INTO {} (queue, node, paused, local_limit, global_limit, rate_limit, updated_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s)").format(t("queue_settings")),
                (queue, node, paused, limit, Jsonb(glob) if glob else None, Jsonb(rate) if rate else None,
                 ago(minutes=1)),
            )
        for job in JOBS:
            row = {
                "state": "available", "args": {}, "meta": {}, "tags": [], "priority": 0, "attempt": 0,
                "max_attempts": 20, "errors": [], "scheduled_at": None, "attempted_at": None,
                "completed_at": None, "cancelled_at": None, "discarded_at": None, "attempted_by": None,
                "node_id": None, "workflow_id": None, "workflow_name": None, "workflow_step": None,
                "workflow_deps": [],
                **job,
            }
            if row["scheduled_at"] is None:
                row["scheduled_at"] = row["inserted_at"]
            cols = list(row)
            values = [Jsonb(v) if c in ("args", "meta", "errors") else v for c, v in row.items()]
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    t("jobs"), sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                ),
                values,
            )
        conn.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), 1000)"),
            (f'"{prefix}".lysmore_jobs',),
        )
        end = NOW.replace(second=0, microsecond=0)
        for queue, series in STATS.items():
            for i, n in enumerate(series):
                minute = end - timedelta(minutes=len(series) - i)
                conn.execute(
                    sql.SQL("INSERT INTO {} (queue, minute, completed, failed) VALUES (%s, %s, %s, %s)")
                    .format(t("stats_minutely")),
                    (queue, minute, n, 1 if queue == "default" and i % 4 == 0 else 0),
                )
        conn.execute(
            sql.SQL("INSERT INTO {} (at, actor, action, targets, outcome, detail) VALUES "
                    "(%s, 'ops@10.0.0.5', 'pause_queue', %s, 'allowed', %s),"
                    "(%s, 'intern', 'delete_jobs', %s, 'denied', %s)").format(t("audit")),
            (ago(minutes=30), Jsonb(["reports"]), Jsonb({"queue": "reports"}),
             ago(minutes=10), Jsonb([3]), Jsonb({"reason": "read-only"})),
        )


# Cron entries: (name, expression, zone, worker, queue, args, active, paused minutes ago or None,
# runs as (instant, job id) newest first; a job id missing from JOBS is a pruned job).
CRONS: list[tuple[Any, ...]] = [
    ("charge-retries", "@hourly", "UTC", "app.workers.Charge", "default", {"account_id": 7}, True, None,
     [(ago(hours=1), 4), (ago(hours=2), 3), (ago(hours=3), 901)]),
    ("nightly-report", "0 3 * * *", "Europe/Oslo", "app.workers.Report", "reports", {"report": "daily"}, True,
     None, [(NOW.replace(hour=2), 1), (NOW.replace(hour=2) - timedelta(days=1), 902)]),
    ("old-newsletter", "0 9 * * 1", "UTC", "app.workers.Newsletter", "mailers", {"issue": 12}, False, None,
     [(NOW.replace(hour=9) - timedelta(days=1), 5)]),
    ("sync-accounts", "*/15 * * * *", "UTC", "app.workers.Sync", "default", {}, True, None,
     [(ago(minutes=15), 13), (ago(minutes=30), 14), (ago(minutes=45), 903), (ago(minutes=60), 904),
      (ago(minutes=75), 905), (ago(minutes=90), 906)]),
    ("weekly-cleanup", "30 2 * * 0", "America/New_York", "app.workers.Cleanup", "default", {}, True, 120,
     [(datetime(2030, 1, 13, 7, 30, tzinfo=UTC), 9)]),
]


def seed_crons(conn: psycopg.Connection, prefix: str) -> None:
    """Add the cron entries and their runs to a seeded schema (kept apart from ``seed``: no other
    screen reads them)."""
    s = sql.Identifier(prefix)
    with conn.transaction():
        for name, expression, zone, worker, queue, args, active, paused, runs in CRONS:
            conn.execute(
                sql.SQL("INSERT INTO {}.lysmore_cron_entries (name, expression, timezone, worker, queue, args,"
                        " active, paused, paused_at, recorded_at, recorded_by)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'node-a')").format(s),
                (name, expression, zone, worker, queue, Jsonb(args), active, paused is not None,
                 ago(minutes=paused) if paused is not None else None, ago(hours=2)),
            )
            for instant, job_id in runs:
                conn.execute(
                    sql.SQL("INSERT INTO {}.lysmore_cron_runs (name, instant, job_id, inserted_at)"
                            " VALUES (%s, %s, %s, %s)").format(s),
                    (name, instant, job_id, instant),
                )
LONG_NODE = "ingest-worker-eu-west-1a-7f3c9"  # 30 characters, instead of node-a (the leader)
LONG_QUEUE = "analytics-export-nightly"  # 24 characters, instead of mailers
LONG_WORKFLOW = "nightly-analytics-export-pipeline"  # instead of ingest
LONG_ACTOR = "oncall-platform@bastion-eu-west-1"
ESTIMATED_ROWS = 7_200_000  # the jobs table as the planner sees it in the large data set


def seed_large(conn: psycopg.Connection, prefix: str) -> None:
    """The data set with long names (node, queue, workflow, user), and the planner statistics of a
    table of millions of jobs, so the dashboard shows estimated counts in the millions.

    The 18 jobs are analysed as they are (every row is in the sample, so the statistics are the
    same on every run); then the table's size in ``pg_class`` is set to ``ESTIMATED_ROWS``, shared
    by its live and finished sides as the seeded rows are, on the pages they take: that is what
    the planner reads for a large table. The dashboard's estimator (``EXPLAIN`` per state and
    queue) then runs its real path and answers in millions, each state in proportion to the
    seeded rows. Needs a superuser (the tests' server); autovacuum is off for
    the table so that nothing resets the figure.
    """
    seed(conn, prefix)
    s = sql.Identifier(prefix)
    renames = [("nodes", "name", "node-a", LONG_NODE), ("leader", "node_name", "node-a", LONG_NODE),
               ("jobs", "queue", "mailers", LONG_QUEUE), ("producers", "queue", "mailers", LONG_QUEUE),
               ("queue_settings", "queue", "mailers", LONG_QUEUE), ("stats_minutely", "queue", "mailers", LONG_QUEUE)]
    jobs = sql.SQL("{}.lysmore_jobs").format(s)
    with conn.transaction():
        for table, column, old, new in renames:
            conn.execute(sql.SQL("UPDATE {}.{} SET {} = %s WHERE {} = %s").format(
                s, sql.Identifier(f"lysmore_{table}"), sql.Identifier(column), sql.Identifier(column)), (new, old))
        conn.execute(sql.SQL("UPDATE {} SET attempted_by[1] = %s WHERE attempted_by[1] = 'node-a'").format(jobs),
                     (LONG_NODE,))
        conn.execute(sql.SQL("UPDATE {} SET workflow_name = %s WHERE workflow_name = 'ingest'").format(jobs),
                     (LONG_WORKFLOW,))
        conn.execute(
            sql.SQL("INSERT INTO {}.lysmore_audit (at, actor, action, targets, outcome, detail) VALUES"
                    " (%s, %s, 'pause_queue', %s, 'allowed', %s)").format(s),
            (ago(minutes=5), LONG_ACTOR, Jsonb([LONG_QUEUE, "default"]), Jsonb({"nodes": [LONG_NODE, "node-b"]})),
        )
    sides = [sql.Identifier(prefix, f"lysmore_jobs_{side}") for side in ("live", "finished")]
    for side in sides:
        conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(side))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(jobs))
    total = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(jobs)).fetchone()[0]  # type: ignore[index]
    for side in sides:  # each side its share of the estimate, as its rows are of the seeded ones
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(side)).fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE pg_class SET reltuples = %s,"
                     " relpages = greatest(1, pg_relation_size(oid) / current_setting('block_size')::int)"
                     " WHERE oid = %s::regclass", (ESTIMATED_ROWS * rows // total, side.as_string(conn)))


__all__ = ["CRONS", "JOBS", "LONG_ACTOR", "LONG_NODE", "LONG_QUEUE", "LONG_WORKFLOW", "NOW", "clock", "seed", "seed_crons", "seed_large"]
