"""The engine's public read model: what one instance holds, answered once for every reader.

The engine's own ``status``, the ``lysmore status`` command and the dashboard all ask here, so
"how many jobs are available", "is this node alive" and "what limit does this node apply" have
one answer each. Every method takes an optional connection, so a caller can read several
answers in one transaction of its own (the dashboard's read-only one); ``now`` may be given to
judge leases against a clock of the caller's (tests), else the database's ``now()`` decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ._cron import next_instant
from ._job import Job, workflow_id_of
from ._queues import (
    EVERY_NODE,
    GlobalLimit,
    QueueConfig,
    QueueSetting,
    RateLimit,
    effective_settings,
    stored_global_limit,
    stored_rate_limit,
)
from ._sql import Queries
from ._states import FINAL_STATES, JobState
from ._timings import merged, percentile

EXACT_BELOW = 100_000  # rows; a state with fewer (by the planner's statistics) is counted exactly ...
EXACT_BELOW_FINISHED = 10_000  # ... a finished state only below this too: history, not work to act on
FINISHED = {s.value for s in FINAL_STATES}

Connect = Callable[[psycopg.Connection | None], AbstractContextManager[psycopg.Connection]]


@dataclass(frozen=True)
class Counts:
    """Jobs per state, and per queue and state; ``estimated_states`` come from the planner.

    ``by_state`` holds every state; ``by_queue`` the states asked for (all by default), a queue
    only where it has jobs in that state.
    """

    by_queue: dict[str, dict[str, int]]
    estimated: bool
    estimated_states: frozenset[str] = frozenset()
    by_state: dict[str, int] = field(default_factory=dict)

    def total(self, state: str) -> int:
        """Jobs in ``state`` over every queue."""
        if state in self.by_state:
            return self.by_state[state]
        return sum(states.get(state, 0) for states in self.by_queue.values())

    def get(self, queue: str, state: str) -> int:
        """Jobs of ``queue`` in ``state``."""
        return self.by_queue.get(queue, {}).get(state, 0)

    def exact(self, state: str) -> bool:
        """Whether the counts of ``state`` are exact (else planner estimates)."""
        return state not in self.estimated_states


@dataclass(frozen=True)
class NodeStatus:
    """One registered node (a per-boot identity) with its lease and leadership."""

    id: UUID
    name: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age: float
    live: bool  # its heartbeat is younger than node_ttl: the lifeline leaves its jobs alone
    leader: bool


@dataclass(frozen=True)
class ProducerStatus:
    """One node's producer of one queue: what it reports, and the settings in force for it.

    ``paused``, ``local_limit``, ``global_limit`` and ``rate_limit`` are effective: persisted
    control (the node's own, then every node's) over what the node reported. ``reported_*`` are
    the node's report alone, which changes only once the node has applied the control.
    """

    queue: str
    node_id: UUID
    node: str
    host: str
    heartbeat_at: datetime
    live: bool
    running: int
    reported_paused: bool
    reported_limit: int
    paused: bool
    local_limit: int
    global_limit: GlobalLimit | None
    rate_limit: RateLimit | None


@dataclass(frozen=True)
class Summary:
    """Live nodes and the current leader's name (None while nobody holds the lease)."""

    live_nodes: int
    leader: str | None


@dataclass(frozen=True)
class CronRun:
    """One run of a cron entry that inserted a job: its instant, the job, and the job's state now
    (None once the job was pruned or deleted)."""

    instant: datetime
    job_id: int
    state: str | None


@dataclass(frozen=True)
class CronStatus:
    """One cron entry as the leader recorded it, its pause, and its runs.

    ``active`` is False for an entry the current leader's crontab no longer holds; ``next_run``
    is None for it, and for a paused entry (it inserts nothing until resumed).
    """

    name: str
    expression: str
    timezone: str
    worker: str
    queue: str
    args: dict[str, Any]
    active: bool
    paused: bool
    paused_at: datetime | None
    recorded_at: datetime
    recorded_by: str | None
    last_run: datetime | None
    next_run: datetime | None
    recent: tuple[CronRun, ...]


@dataclass(frozen=True)
class Attempt:
    """One failed attempt as the engine records it in a job's ``errors``."""

    attempt: int
    at: datetime | None
    error: str
    traceback: str


def attempts(job: Job) -> list[Attempt]:
    """A job's failed attempts, read defensively (entries written by older code may lack fields)."""
    out = []
    for e in job.errors:
        if not isinstance(e, dict):
            continue
        try:
            number = int(e.get("attempt") or 0)
        except (TypeError, ValueError):
            number = 0
        at = e.get("at")
        if isinstance(at, str):
            try:
                at = datetime.fromisoformat(at)
            except ValueError:
                at = None
        out.append(Attempt(number, at if isinstance(at, datetime) else None, str(e.get("error") or ""),
                           str(e.get("traceback") or "")))
    return out


@dataclass(frozen=True)
class Rollup:
    """What the per-minute rollups hold for one slot of time (a minute or more): outcomes, and
    how many executions ended in each execution-time bucket (``engine._timings``; empty when the
    slot's minutes recorded no times)."""

    completed: int = 0
    failed: int = 0  # attempts that will be retried
    discarded: int = 0
    buckets: tuple[int, ...] = ()

    @property
    def executions(self) -> int:
        """Executions with a recorded time."""
        return sum(self.buckets)

    def percentile(self, q: float) -> float | None:
        """Seconds below which a share ``q`` of the slot's executions ended (None with none)."""
        return percentile(self.buckets, q)


@dataclass(frozen=True)
class RollupSeries:
    """Consecutive slots of ``step`` seconds from ``start``, for every queue, one queue or one worker."""

    start: datetime
    step: float
    slots: tuple[Rollup, ...]

    def total(self) -> Rollup:
        """The whole series as one slot (its percentiles are those of every execution in it)."""
        return Rollup(
            sum(r.completed for r in self.slots), sum(r.failed for r in self.slots),
            sum(r.discarded for r in self.slots), tuple(merged(r.buckets for r in self.slots)),
        )


@dataclass(frozen=True)
class SentNotification:
    """One notification of the error reporter as a channel handled it (``lysmore_notifications``)."""

    id: int
    at: datetime
    group_key: str
    kind: str
    worker: str
    queue: str
    error_type: str
    message: str
    node: str
    job_id: int | None
    channel: str
    status: str  # sent, failed or rate_limited
    count: int
    first_seen: datetime
    last_seen: datetime
    error: str | None


@dataclass
class Inspector:
    """Read-only answers about one instance, built from plain parts (not the Engine).

    ``connect`` opens a connection (the Engine's pool); ``queries`` are the instance's statements;
    ``node_ttl`` is the lease a node's heartbeat gives it, the one liveness rule.
    """

    connect: Connect
    queries: Queries
    node_ttl: float

    def table(self, name: str) -> sql.Composed:
        """``prefix.lysmore_<name>``, quoted: for readers that compose SQL of their own."""
        return self.queries.table(name)

    @property
    def state_type(self) -> sql.Composed:
        """``prefix.lysmore_job_state``, quoted: the type a bound state parameter is cast to."""
        return self.queries.state_type()

    def _use(self, conn: psycopg.Connection | None) -> AbstractContextManager[psycopg.Connection]:
        return self.connect(conn)  # the caller's connection when given, else a pooled one

    # -- counts ---------------------------------------------------------------------------------
    def estimated_rows(self, conn: psycopg.Connection | None = None) -> int | None:
        """The jobs table's rows by the planner's statistics, summed over its sides, without a
        scan; None when this prefix has no jobs table."""
        with self._use(conn) as c:
            row = c.execute(self.queries.stats.counts_estimate, {"table": self.table("jobs").as_string(c)}).fetchone()
            return None if row is None or row[0] is None else int(row[0])

    def counts(
        self, conn: psycopg.Connection | None = None, exact_below: int | None = None,
        states: Iterable[str] | None = None,
    ) -> Counts:
        """Jobs per state, and per queue for ``states`` (all by default): exact while the table is
        small; once it is large, a state the planner puts at ``exact_below`` rows or more (a
        finished state: at ``EXACT_BELOW_FINISHED`` or more, if lower) is its estimate (per queue
        too: the queues found by a loose index scan, each EXPLAINed) and the other states are
        counted exactly."""
        threshold = EXACT_BELOW if exact_below is None else exact_below
        per_queue = {s.value for s in JobState} if states is None else set(states)
        q = self.queries.stats
        with self._use(conn) as c:
            total = self.estimated_rows(c)
            by_queue: dict[str, dict[str, int]] = {}
            by_state = {s.value: 0 for s in JobState}
            if total is None or total < threshold:
                exact = [s.value for s in JobState]
                rows = c.execute(q.counts_exact if per_queue else q.counts_by_state).fetchall()
            else:
                names = [s.value for s in JobState]
                estimates = dict(zip(names, self._estimates(c, q.rows_in_state, [{"state": s} for s in names]),
                                     strict=True))
                exact = [s for s, n in estimates.items()
                         if n < (min(threshold, EXACT_BELOW_FINISHED) if s in FINISHED else threshold)]
                # Grouped by queue only when a state counted exactly is asked for per queue.
                statement = q.counts_of_states if per_queue & set(exact) else q.counts_of_states_by_state
                rows = c.execute(statement, {"states": exact}).fetchall() if exact else []
                for state, n in estimates.items():
                    if state in exact:
                        continue
                    by_state[state] = n
                    if state not in per_queue:
                        continue
                    queues = [queue for (queue,) in c.execute(q.queues_in_state, {"state": state}).fetchall()]
                    params = [{"state": state, "queue": queue} for queue in queues]
                    for queue, n in zip(queues, self._estimates(c, q.rows_in_queue_state, params), strict=True):
                        by_queue.setdefault(queue, {})[state] = n
            for queue, state, n in rows:
                by_state[state] += int(n)
                if state in per_queue:
                    by_queue.setdefault(queue, {})[state] = int(n)
        estimated = frozenset(by_state) - set(exact)
        return Counts(by_queue, estimated=bool(estimated), estimated_states=estimated, by_state=by_state)

    # -- rollups --------------------------------------------------------------------------------
    def rollups(
        self, start: datetime, slots: int, step: float, *, queue: str | None = None, worker: str | None = None,
        conn: psycopg.Connection | None = None,
    ) -> RollupSeries:
        """The per-minute rollups from ``start`` in ``slots`` slots of ``step`` seconds (a whole
        number of minutes): of every queue, of ``queue``, or of ``worker`` (in ``queue`` if given)."""
        if slots < 1 or slots > 10_000:
            raise ValueError(f"slots must be from 1 to 10000, not {slots!r}")
        if step < 60 or step % 60:
            raise ValueError(f"a slot is a whole number of minutes, not {step!r} seconds")
        stop = start + timedelta(seconds=slots * step)
        params = {"start": start, "stop": stop, "step": float(step), "queue": queue, "worker": worker}
        statement = self.queries.stats.series_queues if worker is None else self.queries.stats.series_workers
        found: dict[int, Rollup] = {}
        with self._use(conn) as c:
            for slot, completed, failed, discarded, buckets in c.execute(statement, params).fetchall():
                if 0 <= slot < slots:
                    found[int(slot)] = Rollup(int(completed), int(failed), int(discarded), tuple(buckets or ()))
        return RollupSeries(start, float(step), tuple(found.get(i, Rollup()) for i in range(slots)))

    def rollup_names(
        self, since: datetime, limit: int = 500, conn: psycopg.Connection | None = None
    ) -> tuple[list[str], list[str]]:
        """The queues and the workers that have rollups from ``since`` on, each by name."""
        params = {"start": since, "limit": limit}
        with self._use(conn) as c:
            queues = [r[0] for r in c.execute(self.queries.stats.rollup_queues, params).fetchall()]
            workers = [r[0] for r in c.execute(self.queries.stats.rollup_workers, params).fetchall()]
        return queues, workers

    @staticmethod
    def _estimates(conn: psycopg.Connection, query: bytes, params: Sequence[Mapping[str, Any]]) -> list[int]:
        """The planner's row estimates for ``query`` with each of ``params`` (EXPLAIN, nothing is
        read), sent in one pipeline: one round trip for them all, not one each."""
        if not params:
            return []
        with conn.pipeline():
            cursors = [conn.execute(b"EXPLAIN (FORMAT JSON) " + query, p) for p in params]
        out = []
        for cur in cursors:
            row = cur.fetchone()
            assert row is not None
            out.append(int(row[0][0]["Plan"].get("Plan Rows", 0)))
        return out

    def executing(
        self, conn: psycopg.Connection | None = None, queue: str | None = None
    ) -> dict[tuple[str, UUID | None], int]:
        """Jobs executing now per (queue, node id): exact, from the executing jobs' partial index."""
        with self._use(conn) as c:
            rows = c.execute(self.queries.stats.executing_by_node, {"queue": queue}).fetchall()
        return {(q, node): int(n) for q, node, n in rows}

    # -- nodes ----------------------------------------------------------------------------------
    def _clock(self, now: datetime | None) -> dict[str, Any]:
        return {"now": now, "node_ttl": self.node_ttl}

    def summary(self, conn: psycopg.Connection | None = None, now: datetime | None = None) -> Summary:
        """How many nodes are live, and who leads."""
        with self._use(conn) as c:
            row = c.execute(self.queries.nodes.summary, self._clock(now)).fetchone()
        assert row is not None
        return Summary(int(row[0]), row[1])

    def nodes(self, conn: psycopg.Connection | None = None, now: datetime | None = None) -> list[NodeStatus]:
        """Every registered node, live or not, by name."""
        with self._use(conn) as c, c.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(self.queries.nodes.status, self._clock(now)).fetchall()
        return [NodeStatus(
            id=r["id"], name=r["name"], host=r["host"], pid=r["pid"], started_at=r["started_at"],
            heartbeat_at=r["heartbeat_at"], heartbeat_age=float(r["heartbeat_age"]), live=bool(r["live"]),
            leader=bool(r["leader"]),
        ) for r in rows]

    # -- queues ---------------------------------------------------------------------------------
    def settings(
        self, conn: psycopg.Connection | None = None, queue: str | None = None
    ) -> dict[tuple[str, str], QueueSetting]:
        """Persisted control by (queue, node name); node ``*`` applies to every node."""
        with self._use(conn) as c, c.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(self.queries.queues.settings_all, {"queue": queue}).fetchall()
        return {(r["queue"], r["node"]): QueueSetting.from_row(r) for r in rows}

    def producers(
        self, conn: psycopg.Connection | None = None, now: datetime | None = None, queue: str | None = None,
        live_only: bool = True, settings: Mapping[tuple[str, str], QueueSetting] | None = None,
    ) -> list[ProducerStatus]:
        """Each node's producer of each queue (of live nodes only, by default) with the settings
        in force for it, by queue then node name."""
        with self._use(conn) as c:
            if settings is None:
                settings = self.settings(c, queue)
            with c.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(
                    self.queries.queues.producers, {**self._clock(now), "queue": queue, "live_only": live_only}
                ).fetchall()
        out = []
        for r in rows:
            meta = r["meta"] if isinstance(r["meta"], dict) else {}
            where = f"limits node {r['node']!r} reports for queue {r['queue']!r}"
            reported = QueueConfig(
                r["queue"], int(r["local_limit"]),
                stored_global_limit(meta.get("global_limit"), f"{where}: global_limit"),
                stored_rate_limit(meta.get("rate_limit"), f"{where}: rate_limit"),
            )
            paused, config = effective_settings(reported, bool(r["paused"]), r["node"], settings)
            out.append(ProducerStatus(
                queue=r["queue"], node_id=r["node_id"], node=r["node"], host=r["host"],
                heartbeat_at=r["heartbeat_at"], live=bool(r["live"]), running=int(r["running"]),
                reported_paused=bool(r["paused"]), reported_limit=int(r["local_limit"]), paused=paused,
                local_limit=config.local_limit, global_limit=config.global_limit, rate_limit=config.rate_limit,
            ))
        return out

    def settings_for(
        self, config: QueueConfig, node: str, conn: psycopg.Connection | None = None
    ) -> tuple[bool, QueueConfig]:
        """(paused, limits) the node named ``node`` applies to the queue it was started with
        ``config``: what its producer runs with (persisted control over the configuration)."""
        return effective_settings(config, False, node, self.settings(conn, config.name))

    @staticmethod
    def queue_limits(
        queue: str, producers: Sequence[ProducerStatus], settings: Mapping[tuple[str, str], QueueSetting]
    ) -> tuple[GlobalLimit | None, RateLimit | None]:
        """The global and rate limits a queue runs under: as its first live producer applies them,
        else as set for every node (a queue no node runs yet)."""
        mine = [p for p in producers if p.queue == queue]
        if mine:
            return mine[0].global_limit, mine[0].rate_limit
        every = settings.get((queue, EVERY_NODE))
        return (every.global_limit, every.rate_limit) if every else (None, None)

    # -- jobs and workflows ---------------------------------------------------------------------
    def jobs(self, job_ids: list[int], conn: psycopg.Connection | None = None) -> list[Job]:
        """The jobs of ``job_ids`` as stored, by id; missing ones (pruned or deleted) are left out."""
        with self._use(conn) as c, c.cursor(row_factory=dict_row) as cur:
            return [Job.from_row(row) for row in cur.execute(self.queries.jobs.get, {"id": job_ids}).fetchall()]

    def job(self, job_id: int, conn: psycopg.Connection | None = None) -> Job | None:
        """One job as stored, or None when there is no such job (pruned or deleted)."""
        found = self.jobs([job_id], conn)
        return found[0] if found else None

    def workflow_steps(self, workflow_id: UUID | str, conn: psycopg.Connection | None = None) -> list[Job]:
        """The steps of one workflow, in insertion order."""
        with self._use(conn) as c, c.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(self.queries.workflows.steps, {"workflow_id": workflow_id_of(workflow_id)}).fetchall()
        return [Job.from_row(r) for r in rows]

    # -- cron -----------------------------------------------------------------------------------
    def crons(
        self, conn: psycopg.Connection | None = None, now: datetime | None = None, runs: int = 5
    ) -> list[CronStatus]:
        """Every cron entry the leaders recorded (active ones first, by name) with its last and
        next run (after ``now``, else the database's clock) and its newest ``runs`` runs' jobs."""
        q = self.queries.cron
        with self._use(conn) as c, c.cursor(row_factory=dict_row) as cur:
            if now is None:
                now = self._db_now(c)
            rows = cur.execute(q.entries).fetchall()
            recent: dict[str, list[CronRun]] = {}
            for r in cur.execute(q.recent, {"runs": runs}).fetchall():
                recent.setdefault(r["name"], []).append(CronRun(r["instant"], int(r["job_id"]), r["state"]))
        return [CronStatus(
            name=r["name"], expression=r["expression"], timezone=r["timezone"], worker=r["worker"],
            queue=r["queue"], args=r["args"], active=bool(r["active"]), paused=bool(r["paused"]),
            paused_at=r["paused_at"], recorded_at=r["recorded_at"], recorded_by=r["recorded_by"],
            last_run=r["last_run"],
            next_run=next_instant(r["expression"], r["timezone"], now) if r["active"] and not r["paused"] else None,
            recent=tuple(recent.get(r["name"], ())),
        ) for r in rows]

    def notifications(self, limit: int = 50, conn: psycopg.Connection | None = None) -> list[SentNotification]:
        """The error reporter's newest notifications (of every node), newest first."""
        with self._use(conn) as c, c.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(self.queries.notifications.recent, {"limit": limit}).fetchall()
        return [SentNotification(**r) for r in rows]

    @staticmethod
    def _db_now(c: psycopg.Connection) -> datetime:
        row = c.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        return now

    # -- the whole instance ---------------------------------------------------------------------
    def status(self, conn: psycopg.Connection | None = None) -> dict[str, Any]:
        """Nodes (heartbeat age, liveness, leader, queues as each node reports them) and queues
        (the nodes running them and their counts) as plain data: ``lysmore status --json``."""
        with self._use(conn) as c:
            nodes = self.nodes(c)
            producers = self.producers(c, live_only=False)
            counts = self.counts(c)
        by_node: dict[UUID, list[dict[str, Any]]] = {}
        queues: dict[str, dict[str, Any]] = {}
        for p in producers:
            by_node.setdefault(p.node_id, []).append(
                {"queue": p.queue, "limit": p.reported_limit, "paused": p.reported_paused, "running": p.running}
            )
            entry = queues.setdefault(p.queue, {"queue": p.queue, "nodes": [], "counts": {}})
            entry["nodes"].append({"node": p.node, "limit": p.reported_limit, "paused": p.reported_paused,
                                   "running": p.running})
        for queue, states in counts.by_queue.items():
            queues.setdefault(queue, {"queue": queue, "nodes": [], "counts": {}})["counts"] = states
        return {
            "nodes": [{
                "id": str(n.id), "name": n.name, "host": n.host, "pid": n.pid,
                "started_at": n.started_at.isoformat(), "heartbeat_age": round(n.heartbeat_age, 3),
                "live": n.live, "leader": n.leader,
                "queues": sorted(by_node.get(n.id, []), key=lambda q: q["queue"]),
            } for n in nodes],
            "queues": [queues[k] for k in sorted(queues)],
            "counts_estimated": counts.estimated,
        }

