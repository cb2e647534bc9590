"""The Engine: inserts jobs, runs the queues of one node, and controls queues and jobs."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ._acker import Acker
from ._cron import Cron, parse_crontab
from ._deadlines import Deadlines
from ._embedded import embedded_url
from ._errors import InvalidConfig, JobNotFound
from ._events import Event, Events, Handler
from ._inspect import Counts, Inspector
from ._job import Job, JobSpec, check_queue_name, job_ids_of, specs_json, workflow_id_of
from ._leader import Leadership
from ._loop import Periodic
from ._notifier import Notifier
from ._plugins import lifeline, prune, stats_retention
from ._pool import idle_check, probe, unavailable
from ._producer import Producer, Running
from ._queues import (
    GlobalLimit,
    Partition,
    QueueConfig,
    RateLimit,
    check_limit,
    parse_global_limit,
    parse_queues,
    parse_rate_limit,
)
from ._runner import MAX_JSON_BYTES, Outcome, ThreadPool
from ._schema import check_migrated, migrate
from ._settings import check_prefix, load_settings
from ._sql import Queries, channel
from ._states import DELETABLE, FINAL_STATES, RETRYABLE_BY_HAND, UNFINISHED, JobState, allowed_from
from ._worker import check_worker_modules
from ._workflow import Workflow

log = logging.getLogger("lysmore.engine")

NO_PARTITION = Partition()
INSERT_CHUNK = 5_000
COPY_AT_LEAST = 100  # below this many plain jobs, one INSERT statement is as quick
CONTROL_CHUNK = 300  # ids per cancel notification, well under NOTIFY's 8000-byte payload


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class ControlResult:
    """What a queue control call reached: live nodes that applied it, and those that did not yet."""

    queue: str
    node: str | None
    acked: list[str]
    pending: list[str]


class Engine:
    """One instance (a schema ``prefix``) of the job engine, as seen from one node.

    With ``queues`` it runs them after ``start()``; without, it only inserts and controls.
    """

    def __init__(
        self,
        database_url: str | None = None,
        prefix: str | None = None,
        node: str | None = None,
        queues: dict[str, Any] | None = None,
        *,
        poll_interval: float | None = None,
        stage_interval: float | None = None,
        heartbeat_interval: float | None = None,
        shutdown_grace: float | None = None,
        pool_size: int | None = None,
        node_ttl: float = 5.0,
        leader_lease: float = 5.0,
        orphan_after: float = 300.0,
        prune_max_age: float | None = 86_400.0,
        prune_interval: float = 30.0,
        stats_retention: float = 86_400.0,
        cron_retention: float = 7 * 86_400.0,
        crontab: Sequence[Any] | None = None,
        connect_timeout: float | None = None,
        max_json_bytes: int = MAX_JSON_BYTES,
        worker_modules: Sequence[str] = (),
        listen_url: str | None = None,
        pooler: bool | None = None,
    ) -> None:
        settings = load_settings(
            prefix=prefix, node=node, poll_interval=poll_interval, stage_interval=stage_interval,
            heartbeat_interval=heartbeat_interval, shutdown_grace=shutdown_grace,
        )
        if connect_timeout is None:
            connect_timeout = settings.connect_timeout
        self.prefix = check_prefix(settings.prefix)
        self.node_name = settings.node or f"{socket.gethostname()}-{os.getpid()}"
        if not self.node_name or len(self.node_name) > 128:
            raise InvalidConfig(f"node name must be 1 to 128 characters, got {self.node_name!r}")
        self.node_id = uuid.uuid4()
        self.queues: dict[str, QueueConfig] = parse_queues(queues)
        self.poll_interval = settings.poll_interval
        self.stage_interval = settings.stage_interval
        self.heartbeat_interval = settings.heartbeat_interval
        self.shutdown_grace = settings.shutdown_grace
        for label, value in (("node_ttl", node_ttl), ("leader_lease", leader_lease),
                             ("orphan_after", orphan_after), ("prune_interval", prune_interval)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise InvalidConfig(f"{label} must be a positive number of seconds, got {value!r}")
        if prune_max_age is not None and (not isinstance(prune_max_age, (int, float)) or prune_max_age <= 0):
            raise InvalidConfig(f"prune_max_age must be positive seconds or None (keep history), got {prune_max_age!r}")
        if not isinstance(connect_timeout, (int, float)) or connect_timeout <= 0:
            raise InvalidConfig(f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}")
        self.connect_timeout = float(connect_timeout)
        if isinstance(max_json_bytes, bool) or not isinstance(max_json_bytes, int) or max_json_bytes < 1024:
            raise InvalidConfig(f"max_json_bytes must be an integer of at least 1024, got {max_json_bytes!r}")
        self.max_json_bytes = max_json_bytes
        self.worker_modules = check_worker_modules(worker_modules)
        self.node_ttl = float(node_ttl)
        if self.heartbeat_interval * 2 > self.node_ttl:
            raise InvalidConfig(f"heartbeat_interval ({self.heartbeat_interval:g}s) must be at most half of "
                                f"node_ttl ({self.node_ttl:g}s), or live nodes are taken for dead")
        self.orphan_after = float(orphan_after)
        self.prune_max_age = None if prune_max_age is None else float(prune_max_age)
        self.prune_interval = float(prune_interval)
        self.stats_retention = float(stats_retention)
        self.cron_retention = float(cron_retention)
        self.crontab = parse_crontab(crontab)
        self._leader: Leadership | None = Leadership(self, float(leader_lease))
        if database_url is not None:
            self._url: str | None = database_url
        elif settings.database_url is not None:
            self._url = settings.database_url.get_secret_value()
        else:
            self._url = None
        self._data_dir = settings.data_dir
        if listen_url is None and settings.listen_url is not None:
            listen_url = settings.listen_url.get_secret_value()
        self.listen_url = listen_url
        self.pooler: bool | None = settings.pooler if pooler is None else bool(pooler)  # None: detect
        self._embedded = False
        self._lease_until = 0.0  # monotonic: see _lease_held
        self._pool_size = pool_size or len(self.queues) + 4
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self.q = Queries(self.prefix)
        self.channel = channel(self.prefix)
        self.events = Events()
        self.counters: dict[str, int] = {"stale_acks": 0, "acked": 0, "fetched": 0, "released": 0}
        self._counter_lock = threading.Lock()
        self._producers: dict[str, Producer] = {}
        self._pool_threads = ThreadPool(f"lysmore-job-{self.prefix}")
        self._acker = Acker(self._record, self._stale)
        self._deadlines = Deadlines()
        self._notifier: Notifier | None = None
        self._loops: list[Periodic] = []
        self._idle = threading.Condition()
        self._started = False
        self._stopped = False

    # -- connections -----------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        """The URL in use (the embedded server's when none was configured)."""
        if self._url is None:
            self._url = embedded_url(self._data_dir)
            self._embedded = True
        return self._url

    def __repr__(self) -> str:
        return f"<Engine prefix={self.prefix!r} node={self.node_name!r}>"

    @property
    def application_name(self) -> str:
        """What this engine's connections are called in ``pg_stat_activity``: role and node."""
        role = "node" if self.queues or self.crontab else "client"
        return f"lysmore-{role} {self.node_name}"[:63]

    @property
    def pool(self) -> ConnectionPool:
        with self._pool_lock:
            if self._pool is None:
                proxied = probe(self.database_url, self.connect_timeout)
                if self.pooler is None:
                    self.pooler = proxied
                    if proxied:
                        log.info("connected through a pooler: no prepared statements, LISTEN only on listen_url")
                kwargs: dict[str, Any] = {
                    "autocommit": True, "connect_timeout": max(1, round(self.connect_timeout)),
                    "application_name": self.application_name,
                }
                if self.pooler:  # a transaction pooler hands each transaction to any server session
                    kwargs["prepare_threshold"] = None
                pool = ConnectionPool(
                    self.database_url, min_size=1, max_size=self._pool_size, kwargs=kwargs,
                    open=False, name=f"lysmore-{self.prefix}",
                    reconnect_timeout=0, check=idle_check(lambda: self._pool),
                )
                try:
                    pool.open(wait=True, timeout=self.connect_timeout)
                except Exception as exc:
                    pool.close()
                    raise unavailable(self.database_url, exc) from exc
                self._pool = pool
            return self._pool

    @contextmanager
    def atomic(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """A connection and a transaction for statements that must commit together.

        With the caller's ``conn`` the work joins the caller's transaction (as a savepoint) and
        is committed or rolled back by the caller, never here.
        """
        if conn is None:
            with self.pool.connection() as pooled, pooled.transaction():
                yield pooled
            return
        if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.execute("SELECT 1")  # open the caller's transaction, so ours is a savepoint in it
        with conn.transaction():
            yield conn

    @contextmanager
    def connection(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """The caller's connection when given, else one from the pool (autocommit)."""
        if conn is not None:
            yield conn
        else:
            with self.pool.connection() as pooled:
                yield pooled

    @property
    def uses_embedded(self) -> bool:
        """True when no database URL was configured, so the embedded server is (or would be) used."""
        return self._url is None or self._embedded

    # -- schema ----------------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Create or upgrade this prefix's tables; idempotent and safe to run concurrently."""
        with self.connection() as conn:
            return migrate(conn, self.prefix)

    def check_schema(self) -> None:
        """Raise ``NotMigrated`` (saying what to do) unless this prefix is at this code's migration.

        Also the first connection: an unreachable server raises ``DatabaseUnavailable``.
        """
        with self.connection() as conn:
            check_migrated(conn, self.prefix)

    # -- inserting -------------------------------------------------------------------------------
    def insert(self, spec: JobSpec, *, conn: psycopg.Connection | None = None) -> Job:
        """Save one job (inside ``conn``'s transaction when given) and return it as stored."""
        if not isinstance(spec, JobSpec):
            raise TypeError(f"insert takes a JobSpec (from Worker.new), got {type(spec).__name__}")
        return self._insert([spec], conn)[0]

    def insert_all(
        self, specs: Iterable[JobSpec] | Workflow, *, conn: psycopg.Connection | None = None
    ) -> list[Job]:
        """Save many jobs (or a workflow's steps) atomically, all or none; results in order.

        Unique jobs report ``conflict``; duplicates within one call collapse to one row.
        """
        items = specs.specs() if isinstance(specs, Workflow) else list(specs)
        for item in items:
            if not isinstance(item, JobSpec):
                raise TypeError(f"insert_all takes JobSpecs (from Worker.new), got {type(item).__name__}")
        if not items:
            return []
        return self._insert(items, conn)

    def _insert(self, specs: list[JobSpec], conn: psycopg.Connection | None) -> list[Job]:
        with self.connection(conn) as c:
            if len(specs) == 1 and specs[0].unique is None:
                return self._insert_chunk(c, specs)  # one statement: atomic without a transaction
        with self.atomic(conn) as c:
            return self._insert_many(c, specs)

    def _insert_many(self, c: psycopg.Connection, specs: list[JobSpec]) -> list[Job]:
        """Insert in the caller's transaction; results in the order of ``specs``."""
        results: list[Job | None] = [None] * len(specs)
        plain = [i for i, s in enumerate(specs) if s.unique is None]
        for chunk in _chunks(plain, INSERT_CHUNK):
            batch = [specs[i] for i in chunk]
            if len(batch) >= COPY_AT_LEAST and all(s.plain() for s in batch):
                jobs = self._insert_copy(c, batch)
            else:
                jobs = self._insert_chunk(c, batch)
            for i, job in zip(chunk, jobs, strict=True):
                results[i] = job
        by_key: dict[str, Job] = {}
        woken: set[str] = set()
        for i, spec in enumerate(specs):
            if spec.unique is None:
                continue
            key = spec.unique["key"]
            if key in by_key:  # the same job twice in one call: one row, the rest conflicts
                results[i] = dataclasses.replace(by_key[key], conflict=True)
                continue
            job = self._insert_unique(c, spec)
            by_key[key] = job
            results[i] = job
            if not job.conflict and job.state is JobState.AVAILABLE:
                woken.add(job.queue)
        if woken:
            c.execute(self.q.queues.notify, {"channel": self.channel, "queue": sorted(woken)})
        return [job for job in results if job is not None]

    def _insert_unique(self, c: psycopg.Connection, spec: JobSpec) -> Job:
        assert spec.unique is not None
        opts = spec.unique
        with c.cursor(row_factory=dict_row) as cur:
            cur.execute(self.q.jobs.unique_expire, {"unique_key": opts["key"], "period": opts["period"]})
            cur.execute(
                self.q.jobs.insert_unique,
                {"queue": spec.queue, "worker": spec.worker, "args": Jsonb(spec.args), "meta": Jsonb(spec.meta),
                 "tags": spec.tags, "priority": spec.priority, "max_attempts": spec.max_attempts,
                 "scheduled_at": spec.scheduled_at, "schedule_in": spec.schedule_in,
                 "unique_key": opts["key"], "unique_states": opts["states"], "replace": Jsonb(opts["replace"])},
            )
            row = cur.fetchone()
        assert row is not None
        job = Job.from_row(row)
        job.conflict = not row["inserted"]
        return job

    def _insert_copy(self, c: psycopg.Connection, specs: Sequence[JobSpec]) -> list[Job]:
        """Bulk path for jobs due now with no workflow or uniqueness: COPY with reserved ids."""
        row = c.execute(
            self.q.jobs.reserve_ids, {"table": f'"{self.prefix}".lysmore_jobs', "n": len(specs)}
        ).fetchone()
        assert row is not None
        now, ids = row
        with c.cursor() as cur, cur.copy(self.q.jobs.copy) as copy:
            for job_id, s in zip(ids, specs, strict=True):
                copy.write_row(
                    (job_id, s.queue, s.worker, Jsonb(s.args), Jsonb(s.meta), s.tags, s.priority, s.max_attempts)
                )
        c.execute(self.q.queues.notify, {"channel": self.channel, "queue": sorted({s.queue for s in specs})})
        return [s.saved(i, "available", now, now) for i, s in zip(ids, specs, strict=True)]

    def _insert_chunk(self, c: psycopg.Connection, specs: Sequence[JobSpec]) -> list[Job]:
        rows = c.execute(self.q.jobs.insert, {"rows": specs_json(specs), "channel": self.channel}).fetchall()
        if len(rows) != len(specs):
            raise AssertionError(f"inserted {len(rows)} rows for {len(specs)} jobs")
        return [spec.saved(*row) for spec, row in zip(specs, rows, strict=True)]

    # -- reading and controlling jobs -------------------------------------------------------------
    def get_job(self, job_id: int) -> Job:
        """The job as stored now; raises ``JobNotFound`` when there is none with that id."""
        jobs = self.get_jobs([job_id])
        if not jobs:
            raise JobNotFound(f"no job with id {job_id} in prefix {self.prefix!r}")
        return jobs[0]

    def get_jobs(self, job_ids: Iterable[int]) -> list[Job]:
        ids = job_ids_of(job_ids)
        with self.connection() as c, c.cursor(row_factory=dict_row) as cur:
            cur.execute(self.q.jobs.get, {"id": ids})
            return [Job.from_row(r) for r in cur.fetchall()]

    def cancel_job(self, job_id: int, *, conn: psycopg.Connection | None = None) -> bool:
        """Cancel a job that has not finished; an executing one is told to stop. True if cancelled."""
        return bool(self.cancel_jobs([job_id], conn=conn))

    def cancel_jobs(self, job_ids: Iterable[int], *, conn: psycopg.Connection | None = None) -> list[int]:
        """Cancel every unfinished job of ``job_ids``; returns the ids that were cancelled."""
        ids = job_ids_of(job_ids)
        done: list[int] = []
        executing: set[int] = set()
        with self.atomic(conn) as c:
            workflows = [r[0] for r in c.execute(self.q.workflows.of_jobs, {"id": ids}).fetchall()]
            if workflows:
                c.execute(self.q.workflows.lock, {"ids": workflows})
            for chunk in _chunks(ids, CONTROL_CHUNK):
                rows = c.execute(
                    self.q.jobs.cancel,
                    {"id": list(chunk), "from": allowed_from(JobState.CANCELLED), "channel": self.channel},
                ).fetchall()
                done.extend(r[0] for r in rows)
                executing.update(r[0] for r in rows if r[1] == "executing")
            if workflows:
                self._resolve_workflows(c, workflows)
        if executing and conn is None:
            self._interrupt(executing, "was cancelled")
        return done

    # -- workflows -------------------------------------------------------------------------------
    def cancel_workflow(self, workflow_id: uuid.UUID | str, *, conn: psycopg.Connection | None = None) -> list[int]:
        """Cancel every unfinished step of a workflow; returns the ids cancelled."""
        with self.connection(conn) as c:
            ids = self._workflow_step_ids(c, workflow_id, UNFINISHED)
        return self.cancel_jobs(ids, conn=conn) if ids else []

    def retry_workflow(self, workflow_id: uuid.UUID | str, *, conn: psycopg.Connection | None = None) -> list[int]:
        """Run a workflow's cancelled and discarded steps again; returns their ids.

        Each gets one more attempt, as ``retry_jobs`` gives it: steps whose dependencies are met
        are available at once, the others are held again and promoted as their dependencies
        complete, in graph order as the first time. Completed and unfinished steps are left as
        they are.
        """
        with self.connection(conn) as c, c.transaction():
            c.execute(self.q.workflows.lock, {"ids": [workflow_id_of(workflow_id)]})
            ids = self._workflow_step_ids(c, workflow_id, (JobState.CANCELLED, JobState.DISCARDED))
            return sorted(self.retry_jobs(ids, conn=c)) if ids else []  # held where dependencies wait

    def _workflow_step_ids(
        self, c: psycopg.Connection, workflow_id: uuid.UUID | str, states: Iterable[JobState]
    ) -> list[int]:
        params = {"workflow_id": workflow_id_of(workflow_id), "states": sorted(s.value for s in states)}
        return [r[0] for r in c.execute(self.q.workflows.step_ids, params).fetchall()]

    def workflow_steps(self, workflow_id: uuid.UUID | str) -> list[Job]:
        """Every step of a workflow as stored now (state, step name, dependencies), by id."""
        with self.connection() as c, c.cursor(row_factory=dict_row) as cur:
            cur.execute(self.q.workflows.steps, {"workflow_id": workflow_id_of(workflow_id)})
            return [Job.from_row(r) for r in cur.fetchall()]

    def workflow_results(self, workflow_id: uuid.UUID | str, steps: Sequence[str]) -> dict[str, Any]:
        """Recorded results of the completed ``steps`` of a workflow, by step name."""
        with self.connection() as c:
            rows = c.execute(self.q.workflows.results, {"workflow_id": workflow_id_of(workflow_id), "steps": list(steps)}).fetchall()
        return {r[0]: r[1] for r in rows}

    def _resolve_workflows(self, c: psycopg.Connection, workflows: Sequence[Any]) -> None:
        """Promote or cancel held steps of ``workflows`` (already locked), down the whole graph."""
        for _ in range(1000):
            row = c.execute(self.q.workflows.resolve, {"ids": list(workflows), "channel": self.channel}).fetchone()
            if row is None or not row[1]:
                return

    def _sweep_workflows(self) -> int:
        """Resolve workflows whose held steps wait on finished dependencies; leader only."""
        if not self._is_leader():
            return 0
        with self.connection() as c:
            stuck = [r[0] for r in c.execute(self.q.workflows.stuck, {"limit": 500}).fetchall()]
            if stuck:
                stuck.sort(key=str)
                with c.transaction():
                    c.execute(self.q.workflows.lock, {"ids": stuck})
                    self._resolve_workflows(c, stuck)
        return len(stuck)

    def retry_job(self, job_id: int, *, conn: psycopg.Connection | None = None) -> bool:
        """Make a finished, failed or waiting job available now. True if it was moved."""
        return bool(self.retry_jobs([job_id], conn=conn))

    def retry_jobs(self, job_ids: Iterable[int], *, conn: psycopg.Connection | None = None) -> list[int]:
        ids = job_ids_of(job_ids)
        with self.connection(conn) as c:
            rows = c.execute(
                self.q.jobs.retry,
                {"id": ids, "from": sorted(s.value for s in RETRYABLE_BY_HAND), "channel": self.channel},
            ).fetchall()
        return [r[0] for r in rows]

    def delete_job(self, job_id: int, *, conn: psycopg.Connection | None = None) -> bool:
        """Delete a job that is not executing. True if it was deleted."""
        return bool(self.delete_jobs([job_id], conn=conn))

    def delete_jobs(self, job_ids: Iterable[int], *, conn: psycopg.Connection | None = None) -> list[int]:
        ids = job_ids_of(job_ids)
        with self.connection(conn) as c:
            rows = c.execute(
                self.q.jobs.delete, {"id": ids, "from": sorted(s.value for s in DELETABLE)}
            ).fetchall()
        return [r[0] for r in rows]

    # -- queue control ---------------------------------------------------------------------------
    def pause_queue(
        self, queue: str, *, node: str | None = None, conn: psycopg.Connection | None = None,
        wait: float = 2.0,
    ) -> ControlResult:
        """Stop fetching ``queue`` on ``node`` (a node name) or on every node; persisted.

        Waits up to ``wait`` seconds for the live nodes running the queue to acknowledge.
        """
        return self._write_queue_settings(queue, node, conn, wait, paused=True)

    def resume_queue(
        self, queue: str, *, node: str | None = None, conn: psycopg.Connection | None = None,
        wait: float = 2.0,
    ) -> ControlResult:
        """Start fetching ``queue`` again on ``node`` or on every node; persisted."""
        return self._write_queue_settings(queue, node, conn, wait, paused=False)

    def scale_queue(
        self, queue: str, limit: int | None = None, *, global_limit: Any = None, rate_limit: Any = None,
        node: str | None = None, conn: psycopg.Connection | None = None, wait: float = 2.0,
    ) -> ControlResult:
        """Change the local limit, global limit and/or rate limit of ``queue``; persisted.

        ``global_limit`` and ``rate_limit`` take the same forms as in ``queues``.
        """
        where = f"scale_queue({queue!r})"
        glimit = parse_global_limit(where, global_limit)
        rlimit = parse_rate_limit(where, rate_limit)
        if limit is None and glimit is None and rlimit is None:
            raise InvalidConfig(f"{where}: give a limit, a global_limit or a rate_limit")
        return self._write_queue_settings(
            queue, node, conn, wait,
            local_limit=None if limit is None else check_limit("limit", limit, 0),
            global_limit=glimit, rate_limit=rlimit,
        )

    def _write_queue_settings(
        self, queue: str, node: str | None, conn: psycopg.Connection | None, wait: float, *,
        paused: bool | None = None, local_limit: int | None = None,
        global_limit: GlobalLimit | None = None, rate_limit: RateLimit | None = None,
    ) -> ControlResult:
        check_queue_name(queue)
        if node is not None and (not isinstance(node, str) or not node or node == "*"):
            raise InvalidConfig(f"node must be a node name, or None for every node; got {node!r}")
        with self.connection(conn) as c:
            c.execute(
                self.q.queues.settings_write,
                {"queue": queue, "node": node or "*", "paused": paused, "local_limit": local_limit,
                 "global_limit": Jsonb(global_limit.as_dict()) if global_limit else None,
                 "rate_limit": Jsonb(rate_limit.as_dict()) if rate_limit else None,
                 "channel": self.channel},
            )
        if conn is not None:
            return ControlResult(queue, node, [], [])  # not committed yet: nobody has seen it
        self._control({"kind": "control", "queue": queue, "node": node or "*"})
        return self._await_control(queue, node or "*", paused, local_limit, wait)

    def _await_control(
        self, queue: str, node: str, paused: bool | None, limit: int | None, wait: float
    ) -> ControlResult:
        """Which live nodes now run ``queue`` as asked, polling their producer rows up to ``wait``."""
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            with self.connection() as c:
                rows = c.execute(
                    self.q.queues.control_state, {"queue": queue, "node": node, "node_ttl": self.node_ttl}
                ).fetchall()
            acked = [r[0] for r in rows if (paused is None or r[1] == paused) and (limit is None or r[2] == limit)]
            pending = [r[0] for r in rows if r[0] not in acked]
            if not pending or time.monotonic() >= deadline:
                return ControlResult(queue, None if node == "*" else node, acked, pending)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def reset_queue(self, queue: str, *, node: str | None = None) -> None:
        """Forget persisted pause/scale settings of ``queue`` (for one node name, or all of them),
        so nodes run it as configured again."""
        check_queue_name(queue)
        with self.connection() as c:
            c.execute(self.q.queues.settings_reset, {"queue": queue, "node": node, "channel": self.channel})
        self._control({"kind": "control", "queue": queue, "node": node or "*"})

    def record_audit(
        self,
        actor: str,
        action: str,
        *,
        targets: Sequence[Any] = (),
        outcome: str,
        filter: str | None = None,
        detail: dict[str, Any] | None = None,
        conn: psycopg.Connection | None = None,
    ) -> int:
        """Write one audit row (in ``conn``'s transaction when given, next to the change it records)."""
        with self.connection(conn) as c:
            row = c.execute(
                self.q.audit.insert,
                {"actor": actor, "action": action, "targets": Jsonb(list(targets)), "filter": filter,
                 "outcome": outcome, "detail": Jsonb(detail or {})},
            ).fetchone()
        assert row is not None
        return int(row[0])

    def _queue_settings(self, queue: str, config: QueueConfig) -> tuple[bool, QueueConfig]:
        """(paused, limits) for ``queue`` on this node: its own row, then '*', then config."""
        with self.connection() as c:
            rows = c.execute(self.q.queues.settings_read, {"queue": queue, "node_name": self.node_name}).fetchall()
        by_node = {r[0]: r for r in rows}
        paused, effective = False, config
        for key in ("*", self.node_name):
            row = by_node.get(key)
            if row is None:
                continue
            paused = row[1] if row[1] is not None else paused
            where = f"persisted settings of queue {queue!r}"
            try:
                effective = effective.with_overrides(
                    row[2], parse_global_limit(where, row[3]), parse_rate_limit(where, row[4])
                )
            except InvalidConfig as exc:
                log.error("ignoring %s", exc)
        return paused, effective

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> Engine:
        """Register this node and start its queues and plugins; returns self."""
        if self._started:
            raise RuntimeError("this Engine was already started; make a new one to start again")
        self._started = True
        with self.connection() as c:
            check_migrated(c, self.prefix)
            registered = time.monotonic()
            self._register(c)
        self._lease_until = registered + 0.8 * self.node_ttl
        self._acker.start()
        self._producers = {name: Producer(self, cfg) for name, cfg in self.queues.items()}
        for producer in self._producers.values():
            producer.start()
        listen = self.listen_url or (None if self.pooler else self.database_url)
        if (self.queues or self.crontab) and listen is None:
            log.warning("behind a pooler with no listen_url: no LISTEN, jobs are picked up by polling "
                        "every %ss (set LYSMORE_LISTEN_URL to a direct connection for instant pick-up)",
                        self.poll_interval)
        if self.queues or self.crontab:
            if listen is not None:
                self._notifier = Notifier(listen, self.channel, self._control, self._catch_up,
                                          application_name=f"lysmore-listen {self.node_name}"[:63])
                self._notifier.start()
            assert self._leader is not None
            self._loops = [
                Periodic("stager", self.stage_interval, self._stage),
                # No backoff: a node whose heartbeats lapse past node_ttl is taken for dead.
                Periodic("heartbeat", self.heartbeat_interval, self._heartbeat, backoff=False),
                Periodic("leader", self._leader.lease / 3, self._leader.elect),
                Periodic("lifeline", self.node_ttl / 2, lambda: lifeline(self)),
                Periodic("pruner", self.prune_interval, lambda: prune(self)),
                Periodic("stats", 60.0, lambda: stats_retention(self)),
                Periodic("workflows", 5.0, self._sweep_workflows),
            ]
            if self.crontab:
                self._loops.append(Periodic("cron", 1.0, Cron(self, self.crontab).tick))
            for loop in self._loops:
                loop.start()
        log.info("node started", extra={"node": self.node_name, "prefix": self.prefix, "queues": list(self.queues)})
        return self

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, grace: float | None = None) -> None:
        """Stop fetching, wait up to ``grace`` seconds for running jobs, release the rest."""
        if self._stopped or not self._started:
            self._stopped = True
            self._close_pool()
            return
        self._stopped = True
        grace = self.shutdown_grace if grace is None else grace
        deadline = time.monotonic() + grace
        for producer in self._producers.values():
            producer.stop_fetching()
        for producer in self._producers.values():
            producer.join(timeout=2.0)  # a fetch in flight starts its jobs first: they get the grace too
        with self._idle:
            while self._running_total() and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
        left = [run for p in self._producers.values() for run in p.snapshot() if run.claim()]
        self._acker.stop(timeout=10.0)
        if left:
            self._release(left)
        for loop in self._loops:
            loop.stop()
        if self._leader is not None:
            self._leader.resign()
        if self._notifier:
            self._notifier.stop()
        try:
            with self.connection() as c:
                c.execute(self.q.nodes.delete, {"node_id": self.node_id})
        except Exception as exc:
            log.warning("could not remove node row on stop: %s", exc)
        self._close_pool()
        log.info("node stopped", extra={"node": self.node_name, "released": len(left)})

    def _close_pool(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _running_total(self) -> int:
        return sum(p.running_count() for p in self._producers.values())

    def _job_done(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def _release(self, runs: list[Running]) -> None:
        for run in runs:
            run.job._interrupt()
        try:
            released = self._release_rows([(r.job.id, r.job.attempt) for r in runs])
            log.warning("released %d jobs still running at stop", released)
        except Exception as exc:
            log.error("could not release %d running jobs (%s); the lifeline will rescue them", len(runs), exc)

    def _release_rows(self, rows: list[tuple[int, int]]) -> int:
        """Give (id, attempt) rows this node executes back to available, attempt restored."""
        with self.connection() as c:
            done = c.execute(
                self.q.jobs.release,
                {"id": [r[0] for r in rows], "attempt": [r[1] for r in rows],
                 "node_id": self.node_id, "channel": self.channel},
            ).fetchall()
        self._count("released", len(done))
        return len(done)

    def _reconcile(self, producer: Producer, older_than: float = 10.0) -> int:
        """Release rows recorded as executing here that no execution here knows about.

        That happens when a fetch committed but its answer was lost with the connection. Runs
        on the producer's own thread, so no fetch of that queue is in flight meanwhile.
        """
        with self.connection() as c:
            rows = c.execute(
                self.q.jobs.executing_here,
                {"node_id": self.node_id, "queue": producer.queue, "older_than": older_than},
            ).fetchall()
        if not rows:
            return 0
        known = {run.job.id for run in producer.snapshot()} | producer.carried_ids() | self._acker.pending_ids()
        lost = [(r[0], r[1]) for r in rows if r[0] not in known]
        if not lost:
            return 0
        released = self._release_rows(lost)
        log.warning("released %d jobs of %s whose fetch answer was lost", released, producer.queue)
        return released

    def prune(self) -> int:
        """Run one pruning round now, whoever leads; returns the jobs deleted (0 when history is
        kept: ``prune_max_age=None``)."""
        return prune(self, force=True)

    def inspect(self) -> Inspector:
        """The public read model of this instance: counts, nodes, queue settings, jobs, workflows."""
        return Inspector(self.connection, self.q, node_ttl=self.node_ttl)

    def queue_counts(self) -> Counts:
        """Jobs per queue and state: exact for small tables, planner estimates for large ones."""
        return self.inspect().counts()

    def status(self) -> dict[str, Any]:
        """Nodes and queues of this instance as plain data (``lysmore status --json``).

        Raises ``NotMigrated`` when the prefix does not hold this code's schema.
        """
        self.check_schema()
        return self.inspect().status()

    def subscribe(self, handler: Handler, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Hear job events (start, success, failure, discard, cancel, snooze, timeout, stale_ack)."""
        return self.events.subscribe(handler, kinds)

    # -- internals used by producers, acker and notifier -----------------------------------------
    def _claim(
        self, queue: str, demand: int, limits: QueueConfig | None = None, done: list[Outcome] | None = None
    ) -> tuple[list[Job], float | None]:
        """Claim up to ``demand`` jobs; also seconds until a rate window frees a slot, if it is full.

        ``done`` are finished executions of this globally limited queue, recorded in the same
        transaction under the queue's lock, just before the fetch counts what is executing: the
        slots they held are free for this very fetch, and no reader ever sees more executing than
        the limit. Without this, a slot would wait for a separate ack commit before any fetch
        could use it. ``done`` is emptied once its outcomes are recorded (whatever happens next).
        """
        params: dict[str, Any] = {
            "queue": queue, "demand": demand, "node_id": self.node_id, "node_name": self.node_name,
        }
        rate_wait: float | None = None
        if done and (limits is None or limits.global_limit is None):  # the limit went away meanwhile
            stale = self._record(done)
            done.clear()
            if stale:
                self._stale(stale)
        with self.connection() as c, c.cursor(row_factory=dict_row) as cur:
            if limits is None or (limits.global_limit is None and limits.rate_limit is None):
                cur.execute(self.q.jobs.fetch, params)
                rows = cur.fetchall()
            else:
                g, r = limits.global_limit, limits.rate_limit
                params.update(
                    g_allowed=g.allowed if g else None,
                    g_partitioned=bool(g and g.partition),
                    r_allowed=r.allowed if r else None,
                    r_period=r.period if r else 0.0,
                    node_ttl=self.node_ttl,
                    **(g.partition if g and g.partition else NO_PARTITION).params("g"),
                    **(r.partition if r and r.partition else NO_PARTITION).params("r"),
                )
                plain_global = r is None and g is not None and g.partition is None
                # One round trip: the lock and the fetch are separate statements (the fetch must
                # see what the previous holder committed), sent together in a pipeline. BEGIN and
                # COMMIT are statements of the pipeline too: psycopg's transaction() block would
                # add round trips of its own.
                # On an error the pooled connection's context rolls the transaction back.
                ack = c.cursor()
                with c.pipeline():
                    c.execute("BEGIN")
                    cur.execute(self.q.queues.lock, {"key": f"{self.prefix}.{queue}"})
                    if done:  # no wake-up from this ack: the fetch below takes the freed slots
                        ack.execute(self.q.jobs.ack, {**self._ack_params(done), "wake": []})
                    cur.execute(self.q.jobs.fetch_global if plain_global else self.q.jobs.fetch_limited, params)
                    c.execute("COMMIT")
                rows = cur.fetchall()
                if done:
                    freed = {row[0] for row in ack.fetchall()}
                    self._acked(done, freed)
                    done.clear()
                    if len(rows) < len(freed):  # ... unless it could not: other nodes may
                        c.execute(self.q.queues.notify, {"channel": self.channel, "queue": [queue]})
                if r is not None and len(rows) < demand:
                    row = cur.execute(self.q.queues.rate_next, params).fetchone()
                    value = next(iter(row.values())) if row else None
                    rate_wait = max(0.0, float(value)) + 0.001 if value is not None else None
        self._count("fetched", len(rows))
        return [Job.from_row(r) for r in rows], rate_wait

    def _record(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Write ``outcomes`` in one statement; returns those that were stale (changed nothing)."""
        params = self._ack_params(outcomes)
        workflows = sorted(
            {o.job.workflow_id for o in outcomes if o.job.workflow_id is not None and o.state in FINAL_STATES},
            key=str,
        )
        with self.connection() as c:
            if not workflows:
                hit = {r[0] for r in c.execute(self.q.jobs.ack, params).fetchall()}
            else:
                # Lock the workflows first, then record, then resolve their held steps: all in one
                # transaction, so a step is promoted exactly once whichever node finishes last.
                with c.transaction():
                    c.execute(self.q.workflows.lock, {"ids": workflows})
                    hit = {r[0] for r in c.execute(self.q.jobs.ack, params).fetchall()}
                    self._resolve_workflows(c, workflows)
        self._count("acked", len(hit))
        for queue in {o.job.queue for o in outcomes} & set(params["wake"]):
            self._producers[queue].wake()  # global slots freed: fetch again without waiting to hear it
        return [o for o in outcomes if o.job.id not in hit]

    def _ack_params(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        columns = list(zip(*(o.params() for o in outcomes), strict=True))
        names = ("id", "attempt", "state", "delay", "extra_attempts", "error", "result", "meta")
        params: dict[str, Any] = {n: list(col) for n, col in zip(names, columns, strict=True)}
        params["node_id"] = self.node_id
        params["channel"] = self.channel
        params["wake"] = [name for name, p in self._producers.items() if p.effective.global_limit]
        return params

    def _acked(self, done: list[Outcome], hit: set[int]) -> None:
        """Count outcomes a fetch recorded, and announce the stale ones."""
        self._count("acked", len(hit))
        stale = [o for o in done if o.job.id not in hit]
        if stale:
            self._stale(stale)

    def _flush(self, timeout: float) -> bool:
        """Wait until every outcome so far is recorded, wherever it waits; False on timeout."""
        deadline = time.monotonic() + timeout
        settled = all([p.flush(deadline) for p in self._producers.values()])
        return self._acker.flush(max(0.0, deadline - time.monotonic())) and settled

    def _stale(self, outcomes: list[Outcome]) -> None:
        """Count and announce outcomes an ack did not apply, each with why: the attempt was
        ``rescued`` (given back or to another node), ``cancelled`` or ``deleted`` meanwhile. An
        ack retried after its first try committed (the answer was lost) finds its own outcome
        already there: that counts as acked, not stale."""
        try:
            with self.connection() as c:
                rows = {r[0]: r[1:] for r in c.execute(self.q.jobs.refused, {"id": [o.job.id for o in outcomes]})}
        except Exception as exc:  # the reasons are for people; the count must not wait for them
            log.warning("could not read why %d acks were refused: %s", len(outcomes), exc)
            rows = {}
        stale = []
        for outcome in outcomes:
            state, attempt, node_id, last_error = rows.get(outcome.job.id, (None, None, None, None))
            own_error = None if outcome.error is None else outcome.error.get("error")
            if (state, attempt, node_id) == (outcome.state.value, outcome.job.attempt, self.node_id) and (
                own_error is None or own_error == last_error
            ):
                self._count("acked", 1)
                continue
            why = ("unknown" if not rows else "deleted" if state is None
                   else "cancelled" if state == JobState.CANCELLED.value and attempt == outcome.job.attempt
                   else "rescued")
            stale.append(outcome)
            log.warning(
                "stale ack for job %s attempt %s: the attempt was %s meanwhile, nothing changed",
                outcome.job.id, outcome.job.attempt, why, extra={"job_id": outcome.job.id},
            )
            self.events.emit(Event("stale_ack", outcome.job, detail={"state": outcome.state.value, "reason": why}))
        self._count("stale_acks", len(stale))

    def _lost_jobs(self, runs: list[Running]) -> dict[int, str | None]:
        """Of ``runs``, those whose row no longer says this node runs them: id -> state now
        (None when the row was deleted)."""
        with self.connection() as c:
            rows = c.execute(
                self.q.jobs.lost,
                {"id": [r.job.id for r in runs], "attempt": [r.job.attempt for r in runs], "node_id": self.node_id},
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def _count(self, key: str, n: int) -> None:
        if n:
            with self._counter_lock:
                self.counters[key] = self.counters.get(key, 0) + n

    def _stage(self) -> None:
        with self.connection() as c:
            c.execute(self.q.jobs.stage, {"limit": 5000, "channel": self.channel})

    def _lease_held(self) -> bool:
        """True while this node's last heartbeat is recent enough that no rescuer can take it for
        dead yet: 80% of ``node_ttl`` on this process's monotonic clock, counted from before that
        heartbeat was sent. Past it the producers fetch nothing until a heartbeat succeeds again
        (fencing by lease, not only by the rescuer's clock)."""
        return time.monotonic() < self._lease_until

    def _heartbeat(self) -> None:
        sent = time.monotonic()
        self._beat()
        if time.monotonic() >= self._lease_until:
            log.warning("heartbeat renewed after the lease had lapsed; fetching again")
        self._lease_until = sent + 0.8 * self.node_ttl

    def _beat(self) -> None:
        names = list(self._producers)
        with self.connection() as c:
            row = c.execute(
                self.q.nodes.heartbeat,
                {"node_id": self.node_id, "queue": names,
                 "running": [self._producers[n].running_count() for n in names]},
            ).fetchone()
            if row is not None and row[0] == 0 and not self._stopped:
                # Taken for dead (we were paused or cut off past node_ttl): our jobs were rescued
                # and cannot be acked by us any more. Come back as the same node, with producers.
                log.warning("node row was gone (heartbeat expired); registering again")
                self._register(c)
                for producer in self._producers.values():
                    producer.settings_changed()

    def _register(self, c: psycopg.Connection) -> None:
        c.execute(
            self.q.nodes.register,
            {"node_id": self.node_id, "name": self.node_name, "host": socket.gethostname(),
             "pid": os.getpid(),
             "meta": Jsonb({"queues": sorted(self.queues), "node_ttl": self.node_ttl,
                            "heartbeat_interval": self.heartbeat_interval})},
        )

    def _is_leader(self) -> bool:
        return self._leader is not None and self._leader.is_leader()

    @property
    def is_leader(self) -> bool:
        """Whether this node holds the leadership lease right now."""
        return self._is_leader()

    def _record_producer(self, producer: Producer) -> None:
        with self.connection() as c:
            c.execute(
                self.q.queues.producer_upsert,
                {"node_id": self.node_id, "queue": producer.queue, "local_limit": producer.limit,
                 "paused": producer.paused, "running": producer.running_count(),
                 "meta": Jsonb(producer.effective.limits_dict())},
            )

    def _catch_up(self) -> None:
        """The listener (re)connected: what was announced while it was not listening (inserts,
        queue control) is read from the tables instead, now."""
        for producer in self._producers.values():
            producer.settings_changed()  # re-reads the queue's settings, and wakes it to fetch

    def _interrupt(self, job_ids: set[int], reason: str) -> None:
        for producer in self._producers.values():
            producer.interrupt(job_ids, reason)

    def _control(self, message: dict[str, Any]) -> None:
        """Act on a notification (from the listener) or on a change made by this process."""
        kind = message.get("kind")
        if kind == "insert":
            producer = self._producers.get(str(message.get("queue")))
            if producer:
                producer.wake()
        elif kind == "control":
            node = message.get("node")
            producer = self._producers.get(str(message.get("queue")))
            if producer and node in ("*", self.node_name):
                producer.settings_changed()
        elif kind == "cancel":
            ids = {int(i) for i in message.get("ids", [])}
            self._interrupt(ids, "was cancelled")
