"""The Engine the cluster tests run in worker processes; configured by environment variables."""

from __future__ import annotations

import json
import os
import random
import time

import psycopg

from engine import CronEntry, Engine, Job, Worker

_conn: psycopg.Connection | None = None


def ledger_connection() -> psycopg.Connection:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(os.environ["CLUSTER_DB"], autocommit=True)
    return _conn


class LedgerJob(Worker, queue="work", max_attempts=20):
    """Sleeps 5-50 ms, then writes (job, attempt, node) to the ledger: one row per finished run."""

    def perform(self, job: Job) -> None:
        lo, hi = job.args.get("ms", [5, 50])
        time.sleep(random.uniform(lo, hi) / 1000)
        prefix = os.environ["CLUSTER_PREFIX"]
        node = job.attempted_by[0] if job.attempted_by else "?"
        with _lock():
            ledger_connection().execute(
                f'INSERT INTO "{prefix}".ledger (job_id, attempt, node) VALUES (%s, %s, %s)',
                [job.id, job.attempt, node],
            )


class StepJob(Worker, queue="work", max_attempts=1):
    """A workflow step: records when it started (database clock), then fails 10% of the time."""

    def perform(self, job: Job) -> str:
        prefix = os.environ["CLUSTER_PREFIX"]
        with _lock():
            ledger_connection().execute(
                f'INSERT INTO "{prefix}".ledger (job_id, attempt, node, at) VALUES (%s, %s, %s, clock_timestamp())',
                [job.id, job.attempt, job.attempted_by[0] if job.attempted_by else "?"],
            )
        lo, hi = job.args.get("ms", [100, 500])
        if job.wait_cancelled(random.uniform(lo, hi) / 1000):
            return "cancelled"
        if random.random() < job.args.get("fail", 0.1):
            raise RuntimeError("step failed at random")
        return job.workflow_step or ""


class OtherLedgerJob(LedgerJob):
    """The same work under another worker name, for per-worker partitions."""


class Tick(Worker, queue="work"):
    """What the test crontab inserts; does nothing."""

    def perform(self, job: Job) -> None:
        return None


_ledger_lock = None


def _lock():  # type: ignore[no-untyped-def]
    import threading

    global _ledger_lock
    if _ledger_lock is None:
        _ledger_lock = threading.Lock()
    return _ledger_lock


def make() -> Engine:
    queues = json.loads(os.environ.get("CLUSTER_QUEUES", '{"work": 5}'))
    crontab = []
    if os.environ.get("CLUSTER_CRON"):
        crontab.append(CronEntry(os.environ["CLUSTER_CRON"], Tick, name="tick"))
    return Engine(
        os.environ.get("CLUSTER_ENGINE_DB") or os.environ["CLUSTER_DB"],  # e.g. through PgBouncer
        prefix=os.environ["CLUSTER_PREFIX"],
        queues=queues,
        crontab=crontab,
        poll_interval=float(os.environ.get("CLUSTER_POLL", "0.5")),
        node_ttl=float(os.environ.get("CLUSTER_NODE_TTL", "5")),
        leader_lease=float(os.environ.get("CLUSTER_LEASE", "5")),
        heartbeat_interval=float(os.environ.get("CLUSTER_HEARTBEAT", "1")),
    )
