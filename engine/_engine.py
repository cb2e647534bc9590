"""The Engine: inserts jobs, runs the queues of one node, and controls queues and jobs."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ._acker import Acker
from ._cron import Cron, parse_crontab
from ._deadlines import Deadlines
from ._embedded import embedded_url
from ._errors import InvalidConfig, InvalidJob, JobNotFound
from ._events import Counters, Events, Handler
from ._inspect import Counts, Inspector
from ._job import Job, JobSpec, args_texts, check_queue_name, job_ids_of, workflow_id_of
from ._jobpath import JobPath
from ._leader import Leadership
from ._loop import Periodic
from ._notifier import Notifier
from ._plugins import expire_stats, lifeline, prune, sweep_workflows, tidy_live
from ._pool import Database, retried_when_moved
from ._producer import Producer, Running, Runtime
from ._queues import (
    GlobalLimit,
    QueueConfig,
    RateLimit,
    check_limit,
    parse_global_limit,
    parse_queues,
    parse_rate_limit,
)
from ._reporter import Channel, Reporter
from ._runner import MAX_JSON_BYTES, ThreadPool
from ._schema import check_migrated, migrate
from ._settings import check_prefix, load_settings
from ._states import (
    DELETABLE,
    RETRYABLE_BY_HAND,
    UNFINISHED,
    WORKFLOW_RETRYABLE,
    JobState,
    allowed_from,
)
from ._store import NodeId, Store, _chunks
from ._worker import Worker, check_worker_modules
from ._workflow import Workflow

log = logging.getLogger("lysmore.engine")

CONTROL_CHUNK = 300  # ids per cancel notification, well under NOTIFY's 8000-byte payload
TIDY_INTERVAL = 5.0  # seconds between looks at the live side's dead rows (tidy_live)


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
    ``pool_timeout``: seconds a caller waits for a pooled connection (default: the pool's 30); when
    set, a caller while PostgreSQL is unreachable is refused at once with the cause (a dashboard).
    ``reporter``: a ``Reporter`` (or its channels, with its defaults) that notifies someone of job
    failures, discards, stale acks and lost nodes while this node runs.
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
        application_name: str | None = None,
        pool_timeout: float | None = None,
        reporter: Reporter | Sequence[Channel] | None = None,
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
        if pool_timeout is not None and (isinstance(pool_timeout, bool) or not isinstance(pool_timeout, (int, float))
                                         or pool_timeout <= 0):
            raise InvalidConfig(f"pool_timeout must be a positive number of seconds or None, got {pool_timeout!r}")
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
        if reporter is not None and not isinstance(reporter, Reporter):
            reporter = Reporter(reporter)
        self.reporter: Reporter | None = reporter
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
        self._embedded = False
        self._application_name = application_name
        self._lease_until = 0.0  # monotonic: see _lease_held
        # The parts, wired here and nowhere else: the store (the only one that speaks SQL), the
        # job path's two ends (fetch for the producers, record for the acker), the leadership.
        self.db = Database(
            lambda: self.database_url, size=pool_size or len(self.queues) + 4,
            connect_timeout=self.connect_timeout, application_name=self.application_name,
            pooler=settings.pooler if pooler is None else bool(pooler), name=f"lysmore-{self.prefix}",
            wait=pool_timeout, fail_fast=pool_timeout is not None,
        )
        self.node_id = uuid.uuid4()
        self.store = Store(self.db, self.prefix, NodeId(self.node_id, self.node_name))
        self.q = self.store.q
        self.channel = self.store.channel
        self._inspector = Inspector(self.db.connection, self.q, node_ttl=self.node_ttl)
        self.events = Events()
        self.counters = Counters("stale_acks", "acked", "fetched", "released")
        self._producers: dict[str, Producer] = {}
        self._path = JobPath(
            self.store, self.counters, self.events, self.node_ttl,
            limited=self._globally_limited,
            wake=lambda queue: self._producers[queue].wake(),
        )
        self._leader = Leadership(self.store, float(leader_lease))
        self._pool_threads = ThreadPool(f"lysmore-job-{self.prefix}")
        self._acker = Acker(self._path.record, self._path.stale, limited=self._globally_limited)
        self._deadlines = Deadlines()
        store, leading, count = self.store, self._leader.is_leader, self.counters.add
        self._rounds: dict[str, Callable[[], Any]] = {  # one round of each periodic part
            "stager": store.stage,
            "rollups": self._path.flush_rollups,
            "lifeline": lambda: lifeline(store, leading, count, node_ttl=self.node_ttl, orphan_after=self.orphan_after,
                                         lost=self.reporter.nodes_lost if self.reporter else None),
            "pruner": lambda: prune(store, leading, count, max_age=self.prune_max_age),
            "tidy": lambda: tidy_live(store, leading, count),
            "stats": lambda: expire_stats(
                store, leading, stats_retention=self.stats_retention, cron_retention=self.cron_retention),
            "workflows": lambda: sweep_workflows(store, leading),
            "cron": Cron(store, self._leader, self.crontab).tick,
        }
        self._runtime = Runtime(
            store=self.store, path=self._path, acker=self._acker, events=self.events,
            threads=self._pool_threads, deadlines=self._deadlines,
            settings_for=lambda config: self._inspector.settings_for(config, self.node_name),
            lease_held=self._lease_held,
            job_done=self._job_done, owner=self, poll_interval=self.poll_interval,
            max_json_bytes=self.max_json_bytes, worker_modules=self.worker_modules,
        )
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
        """What this engine's connections are called in ``pg_stat_activity``: as given, else role
        and node (PostgreSQL keeps 63 bytes of it)."""
        name = self._application_name
        if name is None:
            name = f"lysmore-{'node' if self.queues or self.crontab else 'client'} {self.node_name}"
        return name.encode()[:63].decode(errors="ignore")

    @property
    def pooler(self) -> bool | None:
        """True behind a transaction pooler (PgBouncer), as configured or detected at the first
        connection; None before that when not configured."""
        return self.db.pooler

    @property
    def pool(self) -> ConnectionPool:
        return self.db.pool

    def atomic(self, conn: psycopg.Connection | None = None) -> contextlib.AbstractContextManager[psycopg.Connection]:
        """A connection and a transaction for statements that must commit together.

        With the caller's ``conn`` the work joins the caller's transaction (as a savepoint) and
        is committed or rolled back by the caller, never here.
        """
        return self.db.atomic(conn)

    def connection(
        self, conn: psycopg.Connection | None = None
    ) -> contextlib.AbstractContextManager[psycopg.Connection]:
        """The caller's connection when given, else one from the pool (autocommit)."""
        return self.db.connection(conn)

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

    def insert_many(
        self,
        worker: type[Worker],
        args: Iterable[dict[str, Any] | None],
        *,
        queue: str | None = None,
        meta: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        conn: psycopg.Connection | None = None,
    ) -> int:
        """Save a job of ``worker`` for each of ``args``, all or none, and return how many.

        The bulk path for many jobs of one worker (River's ``InsertManyFast``): the options are
        the same for every job (as in ``Worker.new``) and every job is due now. Each args is
        checked before anything is sent; no Job comes back, and no spec is made a job, so it runs
        several times faster than ``insert_all``. Unique workers, scheduled jobs and workflows go
        through ``insert_all``.
        """
        if not (isinstance(worker, type) and issubclass(worker, Worker)):
            raise TypeError(f"insert_many takes a Worker class, got {worker!r}")
        template = worker.new(None, queue=queue, meta=meta, tags=tags, priority=priority, max_attempts=max_attempts)
        if template.unique is not None:
            raise InvalidJob(f"{worker.name} is unique: insert its jobs with insert_all, which checks each key")
        if isinstance(args, (dict, str, bytes)):
            raise InvalidJob(f"insert_many takes an iterable of args dicts, got one {type(args).__name__}")
        texts = args_texts(args)
        if not texts:
            return 0
        return self.store.insert_texts(template, texts, conn)

    def _insert(self, specs: list[JobSpec], conn: psycopg.Connection | None) -> list[Job]:
        return self.store.insert(specs, conn)

    # -- reading and controlling jobs -------------------------------------------------------------
    def get_job(self, job_id: int) -> Job:
        """The job as stored now; raises ``JobNotFound`` when there is none with that id."""
        jobs = self.get_jobs([job_id])
        if not jobs:
            raise JobNotFound(f"no job with id {job_id} in prefix {self.prefix!r}")
        return jobs[0]

    def get_jobs(self, job_ids: Iterable[int]) -> list[Job]:
        return self._inspector.jobs(job_ids_of(job_ids))

    def cancel_job(self, job_id: int, *, conn: psycopg.Connection | None = None) -> bool:
        """Cancel a job that has not finished; an executing one is told to stop. True if cancelled."""
        return bool(self.cancel_jobs([job_id], conn=conn))

    @retried_when_moved
    def cancel_jobs(self, job_ids: Iterable[int], *, conn: psycopg.Connection | None = None) -> list[int]:
        """Cancel every unfinished job of ``job_ids``; returns the ids that were cancelled."""
        ids = job_ids_of(job_ids)
        done: list[int] = []
        executing: set[int] = set()
        from_states = allowed_from(JobState.CANCELLED)
        with self.atomic(conn) as c:
            workflows = self.store.workflows_of(c, ids)
            if workflows:
                self.store.lock_workflows(c, workflows)
            for chunk in _chunks(ids, CONTROL_CHUNK):
                rows = self.store.cancel(c, chunk, from_states)
                done.extend(job_id for job_id, _ in rows)
                executing.update(job_id for job_id, was in rows if was == "executing")
            if workflows:
                self.store.resolve_workflows(c, workflows)
        if executing and conn is None:
            self._interrupt(executing, "was cancelled")
        return done

    # -- workflows -------------------------------------------------------------------------------
    def cancel_workflow(self, workflow_id: uuid.UUID | str, *, conn: psycopg.Connection | None = None) -> list[int]:
        """Cancel every unfinished step of a workflow; returns the ids cancelled."""
        with self.connection(conn) as c:
            ids = self.store.step_ids(c, workflow_id_of(workflow_id), UNFINISHED)
        return self.cancel_jobs(ids, conn=conn) if ids else []

    def retry_workflow(self, workflow_id: uuid.UUID | str, *, conn: psycopg.Connection | None = None) -> list[int]:
        """Run a workflow's cancelled and discarded steps again; returns their ids.

        Each gets one more attempt, as ``retry_jobs`` gives it: steps whose dependencies are met
        are available at once, the others are held again and promoted as their dependencies
        complete, in graph order as the first time. Completed and unfinished steps are left as
        they are.
        """
        wid = workflow_id_of(workflow_id)
        with self.connection(conn) as c, c.transaction():
            self.store.lock_workflows(c, [wid])
            ids = self.store.step_ids(c, wid, WORKFLOW_RETRYABLE)
            return sorted(self.retry_jobs(ids, conn=c)) if ids else []  # held where dependencies wait

    def workflow_steps(self, workflow_id: uuid.UUID | str) -> list[Job]:
        """Every step of a workflow as stored now (state, step name, dependencies), by id."""
        return self._inspector.workflow_steps(workflow_id)

    def workflow_results(self, workflow_id: uuid.UUID | str, steps: Sequence[str]) -> dict[str, Any]:
        """Recorded results of the completed ``steps`` of a workflow, by step name."""
        return self.store.workflow_results(workflow_id_of(workflow_id), list(steps))

    def retry_job(self, job_id: int, *, conn: psycopg.Connection | None = None) -> bool:
        """Make a finished, failed or waiting job available now. True if it was moved."""
        return bool(self.retry_jobs([job_id], conn=conn))

    def retry_jobs(self, job_ids: Iterable[int], *, conn: psycopg.Connection | None = None) -> list[int]:
        return self.store.retry(job_ids_of(job_ids), sorted(s.value for s in RETRYABLE_BY_HAND), conn)

    def delete_job(self, job_id: int, *, conn: psycopg.Connection | None = None) -> bool:
        """Delete a job that is not executing. True if it was deleted."""
        return bool(self.delete_jobs([job_id], conn=conn))

    def delete_jobs(self, job_ids: Iterable[int], *, conn: psycopg.Connection | None = None) -> list[int]:
        return self.store.delete(job_ids_of(job_ids), sorted(s.value for s in DELETABLE), conn)

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
        self.store.write_queue_settings(
            {"queue": queue, "node": node or "*", "paused": paused, "local_limit": local_limit,
             "global_limit": global_limit.as_dict() if global_limit else None,
             "rate_limit": rate_limit.as_dict() if rate_limit else None},
            conn,
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
            rows = self.store.control_state(queue, node, self.node_ttl)
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
        self.store.reset_queue_settings(queue, node)
        self._control({"kind": "control", "queue": queue, "node": node or "*"})

    # -- cron control ----------------------------------------------------------------------------
    def pause_cron(self, name: str, *, conn: psycopg.Connection | None = None) -> bool:
        """Stop cron entry ``name`` (its key: the name given, else expression|worker|timezone)
        from inserting jobs, on every node, until ``resume_cron``; persisted. The instants that
        pass while it is paused are skipped, not run later. True if it was running before.

        Raises ``InvalidConfig`` naming the known entries when no leader has recorded one by
        that name.
        """
        return self._pause_cron(name, True, conn)

    def resume_cron(self, name: str, *, conn: psycopg.Connection | None = None) -> bool:
        """Let cron entry ``name`` insert jobs again from its next instant. True if it was paused."""
        return self._pause_cron(name, False, conn)

    def _pause_cron(self, name: str, paused: bool, conn: psycopg.Connection | None) -> bool:
        if not isinstance(name, str) or not name:
            raise InvalidConfig(f"a cron entry's name must be a non-empty string, got {name!r}")
        changed = self.store.cron_pause(name, paused, conn)
        if changed is None:
            known = self.store.cron_names(conn)
            listed = ", ".join(repr(k) for k in known[:20]) if known else "none recorded yet"
            raise InvalidConfig(f"no cron entry named {name!r} in prefix {self.prefix!r} "
                                f"(entries: {listed}; a leader records its crontab when it takes office)")
        return changed

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
        return self.store.audit(
            {"actor": actor, "action": action, "targets": list(targets), "filter": filter,
             "outcome": outcome, "detail": detail or {}},
            conn,
        )

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
        if self.reporter is not None:
            self.reporter.attach(self.prefix, self.node_name, self.store.record_notification)
            self.reporter.start()
            self.events.subscribe(self.reporter.on_event, ("failure", "discard", "stale_ack"))
        self._acker.start()
        self._producers = {name: Producer(self._runtime, cfg) for name, cfg in self.queues.items()}
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
            r = self._rounds
            self._loops = [
                Periodic("stager", self.stage_interval, r["stager"]),
                # No backoff: a node whose heartbeats lapse past node_ttl is taken for dead.
                Periodic("heartbeat", self.heartbeat_interval, self._heartbeat, backoff=False),
                Periodic("leader", self._leader.lease / 3, self._leader.elect),
                Periodic("lifeline", self.node_ttl / 2, r["lifeline"]),
                Periodic("pruner", self.prune_interval, r["pruner"]),
                Periodic("tidy", TIDY_INTERVAL, r["tidy"]),
                Periodic("stats", 60.0, r["stats"]),
                Periodic("rollups", 1.0, r["rollups"]),
                Periodic("workflows", 5.0, r["workflows"]),
            ]
            if self.crontab:
                self._loops.append(Periodic("cron", 1.0, r["cron"]))
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
        try:
            self._path.flush_rollups()
        except Exception as exc:
            log.warning("could not add the last outcomes to the per-minute rollups: %s", exc)
        if left:
            self._release(left)
        for loop in self._loops:
            loop.stop()
        self._leader.resign()
        if self._notifier:
            self._notifier.stop()
        if self.reporter is not None:
            self.reporter.stop(timeout=5.0)
        try:
            self.store.delete_node()
        except Exception as exc:
            log.warning("could not remove node row on stop: %s", exc)
        self._close_pool()
        log.info("node stopped", extra={"node": self.node_name, "released": len(left)})

    def _close_pool(self) -> None:
        self.db.close()

    def _running_total(self) -> int:
        return sum(p.running_count() for p in self._producers.values())

    def _globally_limited(self) -> list[str]:
        """The queues this node runs under a global limit now (their recorded outcomes free slots
        every node counts)."""
        return [name for name, p in self._producers.items() if p.effective.global_limit]

    def _job_done(self) -> None:
        """A job's thread finished: tell ``stop`` (the only one waiting on it), once it waits. A
        job that finishes before ``_stopped`` is set is counted out before stop looks."""
        if self._stopped:
            with self._idle:
                self._idle.notify_all()

    def _release(self, runs: list[Running]) -> None:
        for run in runs:
            run.job._interrupt()
        try:
            released = self._path.release([(r.job.id, r.job.attempt) for r in runs])
            log.warning("released %d jobs still running at stop", released)
        except Exception as exc:
            log.error("could not release %d running jobs (%s); the lifeline will rescue them", len(runs), exc)

    def prune(self) -> int:
        """Run one pruning round now, whoever leads; returns the jobs deleted (0 when history is
        kept: ``prune_max_age=None``)."""
        return prune(self.store, lambda: True, self.counters.add, max_age=self.prune_max_age)

    def inspect(self) -> Inspector:
        """The public read model of this instance: counts, nodes, queue settings, jobs, workflows."""
        return self._inspector

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

    def _flush(self, timeout: float) -> bool:
        """Wait until every outcome so far is recorded, wherever it waits; False on timeout."""
        deadline = time.monotonic() + timeout
        settled = all([p.flush(deadline) for p in self._producers.values()])
        return self._acker.flush(max(0.0, deadline - time.monotonic())) and settled

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
        alive = self.store.heartbeat(names, [self._producers[n].running_count() for n in names])
        if not alive and not self._stopped:
            # Taken for dead (we were paused or cut off past node_ttl): our jobs were rescued
            # and cannot be acked by us any more. Come back as the same node, with producers.
            log.warning("node row was gone (heartbeat expired); registering again")
            self._register()
            for producer in self._producers.values():
                producer.settings_changed()

    def _register(self, conn: psycopg.Connection | None = None) -> None:
        self.store.register(
            socket.gethostname(), os.getpid(),
            {"queues": sorted(self.queues), "node_ttl": self.node_ttl, "heartbeat_interval": self.heartbeat_interval},
            conn,
        )

    @property
    def is_leader(self) -> bool:
        """Whether this node holds the leadership lease right now."""
        return self._leader.is_leader()

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
