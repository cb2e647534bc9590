"""The Store: the engine's one gateway to PostgreSQL, a method per statement of ``engine/sql``.

It holds the pool (``Database``), the statements of one prefix and who this node is; nothing
else. It starts no threads and knows none of the parts that call it: the producers, the acker,
the leader's plugins and the Engine's public methods all come here for SQL, and decide for
themselves what to do with the answer. Methods that take ``conn`` run in the caller's
transaction when one is given.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ._job import Job, JobSpec, copy_array, copy_field, copy_json, specs_json
from ._pool import Database, retried_when_moved
from ._queues import Partition, QueueConfig
from ._sql import Queries, channel
from ._states import JobState
from ._timings import BUCKETS, Tally

INSERT_CHUNK = 5_000
# No tags, as a text[] literal: psycopg's list dumper cost more than the rest of the row.
EMPTY_ARRAY = "{}"
COPY_AT_LEAST = 100  # below this many plain jobs, one INSERT statement is as quick
COPY_PIECE = 500  # rows of COPY text sent at a time (_copy_in_pieces)
NO_PARTITION = Partition()
ROLLUP_COLUMNS = ("completed", "failed", "discarded", "cancelled", "snoozed")
ACK_COLUMNS = ("id", "attempt", "state", "delay", "extra_attempts", "error", "result", "meta")
NUMBER_COLUMNS = ("id", "attempt", "delay", "extra_attempts")  # of ACK_COLUMNS: sent as array literals


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _copy_head(spec: JobSpec) -> str:
    """A new job's queue and worker, the COPY text that comes before its args."""
    return f"{copy_field(spec.queue)}\t{copy_field(spec.worker)}\t"


def _copy_tail(spec: JobSpec) -> str:
    """A new job's meta, tags, priority and max_attempts, the COPY text after its args."""
    tags = copy_array(spec.tags) if spec.tags else EMPTY_ARRAY
    return f"\t{copy_json(spec.json_meta())}\t{tags}\t{spec.priority}\t{spec.max_attempts}\n"


def _copy_in_pieces(copy: psycopg.Copy, lines: Iterable[str]) -> None:
    """Send COPY text lines ``COPY_PIECE`` at a time: PostgreSQL takes in one piece while the next
    is made (sent as one, the server waited until every row was written)."""
    piece: list[str] = []
    for text in lines:
        piece.append(text)
        if len(piece) == COPY_PIECE:
            copy.write("".join(piece).encode())
            piece = []
    if piece:
        copy.write("".join(piece).encode())


def _sent(ack: dict[str, Any]) -> dict[str, Any]:
    """``ack`` as its statement takes it: each column of numbers as one array literal
    (``{4,5,6}``), which the statement casts, rather than a list psycopg dumps number by number
    (for a batch of 50, about 50 us a column against 3)."""
    return {k: "{" + ",".join(map(str, v)) + "}" if k in NUMBER_COLUMNS else v for k, v in ack.items()}


def _distinct_ids(ack: dict[str, Any]) -> list[dict[str, Any]]:
    """``ack`` as parts in which no job id appears twice (the ack statements take each row's outcome
    by the position of its id): one part, ``ack`` itself, unless a job's earlier attempt and a later
    one were both waiting to be recorded."""
    ids = ack["id"]
    if len(set(ids)) == len(ids):
        return [ack]
    parts: list[list[int]] = []  # positions in ack of each part
    seen: dict[int, int] = {}  # id -> how many parts hold it so far
    for pos, job_id in enumerate(ids):
        n = seen.get(job_id, 0)
        seen[job_id] = n + 1
        if n == len(parts):
            parts.append([])
        parts[n].append(pos)
    return [
        {k: [v[i] for i in part] if k in ACK_COLUMNS else v for k, v in ack.items()} for part in parts
    ]


@dataclass(frozen=True)
class NodeId:
    """Who this node is in the tables: the id its rows carry and the name people see."""

    id: uuid.UUID
    name: str


@dataclass
class Fetched:
    """What one fetch did: the jobs it claimed, the outcomes it recorded on the way (their ids,
    or None when it carried none) and, when a rate window is full, seconds until it frees a slot."""

    jobs: list[Job]
    recorded: set[int] | None = None
    rate_wait: float | None = None


class Store:
    """A method per statement, over one pool, for one prefix and one node."""

    def __init__(self, db: Database, prefix: str, node: NodeId) -> None:
        self.db = db
        self.prefix = prefix
        self.node = node
        self.q = Queries(prefix)
        self.channel = channel(prefix)

    # -- inserting -------------------------------------------------------------------------------
    @retried_when_moved  # a unique insert's replace can meet its holder moving to the finished side
    def insert(self, specs: list[JobSpec], conn: psycopg.Connection | None = None) -> list[Job]:
        """Save ``specs`` all or none (in ``conn``'s transaction when given); results in order."""
        with self.db.connection(conn) as c:
            if len(specs) == 1 and specs[0].unique is None:  # one statement: atomic without a transaction
                return self._insert_one(c, specs[0]) if specs[0].workflow_id is None else self._insert_rows(c, specs)
        with self.db.atomic(conn) as c:
            return self._insert_many(c, specs)

    def _insert_many(self, c: psycopg.Connection, specs: list[JobSpec]) -> list[Job]:
        results: list[Job | None] = [None] * len(specs)
        plain = [i for i, s in enumerate(specs) if s.unique is None]
        for chunk in _chunks(plain, INSERT_CHUNK):
            batch = [specs[i] for i in chunk]
            if len(batch) >= COPY_AT_LEAST and all(s.plain() for s in batch):
                jobs = self._insert_copy(c, batch)
            else:
                jobs = self._insert_rows(c, batch)
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
            self.notify(sorted(woken), c)
        return [job for job in results if job is not None]

    def _insert_unique(self, c: psycopg.Connection, spec: JobSpec) -> Job:
        assert spec.unique is not None
        opts = spec.unique
        with c.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                self.q.jobs.insert_unique,
                {"queue": spec.queue, "worker": spec.worker, "args": spec.json_args(), "meta": spec.json_meta(),
                 "tags": spec.tags, "priority": spec.priority, "max_attempts": spec.max_attempts,
                 "scheduled_at": spec.scheduled_at, "schedule_in": spec.schedule_in, "unique_key": opts["key"],
                 "unique_states": opts["states"], "period": opts["period"], "replace": Jsonb(opts["replace"])},
            ).fetchone()
        assert row is not None
        job = Job.from_row(row)
        job.conflict = not row["inserted"]
        return job

    def _insert_copy(self, c: psycopg.Connection, specs: Sequence[JobSpec]) -> list[Job]:
        """Bulk path for jobs due now with no workflow or uniqueness: COPY with reserved ids."""
        row = c.execute(
            self.q.jobs.reserve_ids, {"n": len(specs)}
        ).fetchone()
        assert row is not None
        now, ids = row
        heads: dict[tuple[str, str], str] = {}  # a bulk insert is mostly of one worker and queue

        def line(job_id: int, s: JobSpec) -> str:
            head = heads.get((s.worker, s.queue))
            if head is None:
                head = heads[(s.worker, s.queue)] = _copy_head(s)
            return f"{job_id}\t{head}{copy_json(s.json_args())}{_copy_tail(s)}"

        with c.cursor() as cur, cur.copy(self.q.jobs.copy) as copy:
            _copy_in_pieces(copy, (line(job_id, s) for job_id, s in zip(ids, specs, strict=True)))
        self.notify(sorted({s.queue for s in specs}), c)
        return [s.saved(i, JobState.AVAILABLE, now, now) for i, s in zip(ids, specs, strict=True)]

    def insert_texts(self, template: JobSpec, texts: Sequence[str], conn: psycopg.Connection | None = None) -> int:
        """Save one job a JSON text of ``texts``, each as ``template`` but for its args, all or none
        (in ``conn``'s transaction when given); returns how many. One COPY of text written here:
        no row or Job is made a job (``Engine.insert_many``)."""
        head, tail = _copy_head(template), _copy_tail(template)
        with self.db.atomic(conn) as c:
            with c.cursor() as cur, cur.copy(self.q.jobs.copy_many) as copy:
                _copy_in_pieces(copy, (head + copy_json(text) + tail for text in texts))
            self.notify([template.queue], c)
        return len(texts)

    def _insert_one(self, c: psycopg.Connection, spec: JobSpec) -> list[Job]:
        row = c.execute(
            self.q.jobs.insert_one,
            {"queue": spec.queue, "worker": spec.worker, "args": spec.json_args(), "meta": spec.json_meta(),
             "tags": spec.tags or EMPTY_ARRAY, "priority": spec.priority, "max_attempts": spec.max_attempts,
             "scheduled_at": spec.scheduled_at, "schedule_in": spec.schedule_in, "channel": self.channel},
        ).fetchone()
        assert row is not None
        return [spec.saved(*row[:4])]

    def _insert_rows(self, c: psycopg.Connection, specs: Sequence[JobSpec]) -> list[Job]:
        rows = c.execute(self.q.jobs.insert, {"rows": specs_json(specs), "channel": self.channel}).fetchall()
        if len(rows) != len(specs):
            raise AssertionError(f"inserted {len(rows)} rows for {len(specs)} jobs")
        return [spec.saved(*row) for spec, row in zip(specs, rows, strict=True)]

    # -- changing jobs by id ------------------------------------------------------------
    def cancel(self, c: psycopg.Connection, ids: Sequence[int], from_states: list[str]) -> list[tuple[int, str]]:
        """Cancel those of ``ids`` in ``from_states``: (id, state it was in)."""
        rows = c.execute(self.q.jobs.cancel, {"id": list(ids), "from": from_states, "channel": self.channel})
        return [(r[0], r[1]) for r in rows.fetchall()]

    @retried_when_moved
    def retry(self, ids: list[int], from_states: list[str], conn: psycopg.Connection | None = None) -> list[int]:
        with self.db.connection(conn) as c:
            rows = c.execute(self.q.jobs.retry, {"id": ids, "from": from_states, "channel": self.channel})
            return [r[0] for r in rows.fetchall()]

    @retried_when_moved
    def delete(self, ids: list[int], from_states: list[str], conn: psycopg.Connection | None = None) -> list[int]:
        with self.db.connection(conn) as c:
            return [r[0] for r in c.execute(self.q.jobs.delete, {"id": ids, "from": from_states}).fetchall()]

    # -- the job path: fetch, record ---------------------------------------------------------------
    def ack_params(self, outcome_params: Sequence[tuple[Any, ...]], wake: list[str]) -> dict[str, Any]:
        """The parameters of ``q.jobs.ack`` for outcomes (``Outcome.params()`` each); ``wake`` names
        the queues whose freed global slots should be announced."""
        columns = list(zip(*outcome_params, strict=True))
        params: dict[str, Any] = {n: list(col) for n, col in zip(ACK_COLUMNS, columns, strict=True)}
        params.update(node_id=self.node.id, channel=self.channel, wake=wake)
        return params

    def _ack_statement(self, ack: dict[str, Any]) -> bytes:
        """``ack_completed`` when every outcome of ``ack`` is a plain completion, else ``ack``."""
        n = len(ack["state"])
        plain = (
            ack["state"].count("completed") == n
            and not any(ack["extra_attempts"])
            and all(ack[column].count(None) == n for column in ("error", "result", "meta"))
        )
        return self.q.jobs.ack_completed if plain else self.q.jobs.ack

    def _claimed(self, rows: Sequence[Sequence[Any]], queue: str) -> list[Job]:
        """The Jobs a fetch of ``queue`` claimed, from its rows (the node's id as text made once)."""
        name, node_id, text = self.node.name, self.node.id, str(self.node.id)
        return [Job.claimed(row, queue, name, node_id, text) for row in rows]

    @retried_when_moved
    def fetch(
        self, queue: str, demand: int, limits: QueueConfig | None, ack: dict[str, Any] | None, node_ttl: float
    ) -> Fetched:
        """Claim up to ``demand`` jobs of ``queue`` for this node.

        Unlimited queues take one statement. Under a global or rate limit the fetch runs under
        the queue's advisory lock, and ``ack`` (outcomes of this queue, as ``ack_params``) is
        recorded in the same transaction just before it, so the slots they held are free for
        this very fetch: one round trip, a pipeline of BEGIN, lock, ack, fetch, COMMIT (psycopg's
        transaction() block would add round trips of its own). On an error the pooled
        connection's context rolls the transaction back.
        """
        params: dict[str, Any] = {
            "queue": queue, "demand": demand, "node_id": self.node.id, "node_name": self.node.name,
        }
        with self.db.connection() as c, c.cursor() as cur:
            if limits is None or (limits.global_limit is None and limits.rate_limit is None):
                cur.execute(self.q.jobs.fetch, params)
                return Fetched(self._claimed(cur.fetchall(), queue))
            g, r = limits.global_limit, limits.rate_limit
            params.update(
                g_allowed=g.allowed if g else None,
                g_partitioned=bool(g and g.partition),
                r_allowed=r.allowed if r else None,
                r_period=r.period if r else 0.0,
                node_ttl=node_ttl,
                **(g.partition if g and g.partition else NO_PARTITION).params("g"),
                **(r.partition if r and r.partition else NO_PARTITION).params("r"),
            )
            plain_global = r is None and g is not None and g.partition is None
            acks = [] if ack is None else [(c.cursor(), part) for part in _distinct_ids(ack)]
            with c.pipeline():
                c.execute("BEGIN")
                cur.execute(self.q.queues.lock, {"key": f"{self.prefix}.{queue}"})
                for acked, part in acks:  # no wake-up from this ack: the fetch below takes the freed slots
                    acked.execute(self._ack_statement(part), _sent({**part, "wake": []}))
                cur.execute(self.q.jobs.fetch_global if plain_global else self.q.jobs.fetch_limited, params)
                c.execute("COMMIT")
            fetched = Fetched(self._claimed(cur.fetchall(), queue))
            if ack is not None:
                fetched.recorded = {row[0] for acked, _ in acks for row in acked.fetchall()}
                if len(fetched.jobs) < len(fetched.recorded):  # ... unless it could not: other nodes may
                    self.notify([queue], c)
            if r is not None and len(fetched.jobs) < demand:
                row = cur.execute(self.q.queues.rate_next, params).fetchone()
                value = row[0] if row else None
                fetched.rate_wait = max(0.0, float(value)) + 0.001 if value is not None else None
            return fetched

    @retried_when_moved
    def record(self, ack: dict[str, Any], workflows: list[Any]) -> set[int]:
        """Write outcomes (``ack_params``) in one compare-and-set statement; the ids it applied.

        With ``workflows`` (of outcomes that finish a step) they are locked first and their held
        steps resolved after, all in one transaction, so a step is promoted exactly once whichever
        node finishes last.
        """
        rounds = _distinct_ids(ack)
        with self.db.connection() as c:
            if not workflows and len(rounds) == 1:
                return {r[0] for r in c.execute(self._ack_statement(ack), _sent(ack)).fetchall()}
            with c.transaction():
                if workflows:
                    self.lock_workflows(c, workflows)
                hit = {r[0] for part in rounds
                       for r in c.execute(self._ack_statement(part), _sent(part)).fetchall()}
                if workflows:
                    self.resolve_workflows(c, workflows)
            return hit

    def refused(self, ids: list[int]) -> dict[int, tuple[Any, ...]]:
        """Of jobs whose ack changed nothing: id -> (state, attempt, node_id, last error) now."""
        with self.db.connection() as c:
            return {r[0]: tuple(r[1:]) for r in c.execute(self.q.jobs.refused, {"id": ids})}

    def lost(self, ids: list[int], attempts: list[int]) -> dict[int, str | None]:
        """Of these executions, those whose row no longer says this node runs them: id -> state
        now (None when the row was deleted)."""
        with self.db.connection() as c:
            rows = c.execute(self.q.jobs.lost, {"id": ids, "attempt": attempts, "node_id": self.node.id})
            return {r[0]: r[1] for r in rows.fetchall()}

    def executing_here(self, queue: str, older_than: float) -> list[tuple[int, int]]:
        """(id, attempt) of rows of ``queue`` executing on this node for longer than ``older_than``."""
        with self.db.connection() as c:
            rows = c.execute(self.q.jobs.executing_here,
                             {"node_id": self.node.id, "queue": queue, "older_than": older_than})
            return [(r[0], r[1]) for r in rows.fetchall()]

    @retried_when_moved
    def release(self, rows: list[tuple[int, int]]) -> int:
        """Give (id, attempt) rows this node executes back to available, attempt restored."""
        with self.db.connection() as c:
            done = c.execute(
                self.q.jobs.release,
                {"id": [r[0] for r in rows], "attempt": [r[1] for r in rows],
                 "node_id": self.node.id, "channel": self.channel},
            ).fetchall()
        return len(done)

    # -- sweeps --------------------------------------------------------------------------------------
    @retried_when_moved
    def stage(self, limit: int = 5000) -> None:
        """Make due scheduled and retryable jobs available."""
        with self.db.connection() as c:
            c.execute(self.q.jobs.stage, {"limit": limit, "channel": self.channel})

    @retried_when_moved
    def stage_queue_now(self, queue: str) -> None:
        """Make every scheduled and retryable job of ``queue`` available, due or not (tests)."""
        with self.db.connection() as c:
            c.execute(self.q.jobs.stage_queue_now, {"queue": queue})

    @retried_when_moved
    def rescue(self, node_ttl: float, orphan_after: float, limit: int) -> list[tuple[int, str, str | None]]:
        """Give the jobs of dead nodes (and orphans) back: (id, new state, the lost node's name,
        None for an orphan) of each."""
        with self.db.connection() as c:
            params = {"node_ttl": node_ttl, "orphan_after": orphan_after, "limit": limit, "channel": self.channel}
            return [(int(r[0]), str(r[1]), r[2]) for r in c.execute(self.q.jobs.rescue, params).fetchall()]

    @retried_when_moved
    def prune(self, max_age: float, limit: int) -> int:
        """Delete up to ``limit`` finished jobs older than ``max_age`` seconds; how many."""
        with self.db.connection() as c:
            row = c.execute(self.q.jobs.prune, {"max_age": max_age, "limit": limit}).fetchone()
            return int(row[0]) if row else 0

    def add_rollups(self, rows: Mapping[tuple[str, str], Tally]) -> None:
        """Add outcome counts and execution-time buckets per (queue, worker) to the current
        minute's rollups, per worker and per queue, in one statement."""
        keys = sorted(rows)
        params: dict[str, Any] = {"queue": [q for q, _ in keys], "worker": [w for _, w in keys], "width": BUCKETS}
        for column in ROLLUP_COLUMNS:
            params[column] = [rows[k].counts.get(column, 0) for k in keys]
        params["buckets"] = [n for k in keys for n in rows[k].buckets]
        with self.db.connection() as c:
            c.execute(self.q.stats.rollup, params)

    def live_side(self) -> tuple[int, int, int]:
        """The live side's rows, dead row versions and rows changed since its last analysis."""
        with self.db.connection() as c:
            row = c.execute(self.q.jobs.live_side, {"table": self.q.table("jobs_live").as_string(c)}).fetchone()
            return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    def tidy_live(self, vacuum: bool) -> None:
        """VACUUM (with ANALYZE) the live side, or only ANALYZE it."""
        with self.db.connection() as c:
            c.execute(self.q.jobs.vacuum_live if vacuum else self.q.jobs.analyze_live, prepare=False)

    def record_notification(self, row: dict[str, Any]) -> None:
        """One notification as a channel of the error reporter handled it."""
        with self.db.connection() as c:
            c.execute(self.q.notifications.insert, row)

    def prune_stats(self, stats_retention: float, cron_retention: float) -> None:
        with self.db.connection() as c:
            c.execute(self.q.stats.prune, {"stats_retention": stats_retention, "cron_retention": cron_retention})

    # -- nodes and leadership -------------------------------------------------------------------------
    def register(self, host: str, pid: int, meta: dict[str, Any], conn: psycopg.Connection | None = None) -> None:
        with self.db.connection(conn) as c:
            c.execute(self.q.nodes.register,
                      {"node_id": self.node.id, "name": self.node.name, "host": host, "pid": pid, "meta": Jsonb(meta)})

    def heartbeat(self, queues: list[str], running: list[int]) -> bool:
        """Renew this node's row and its producers' running counts; False when the row was gone."""
        with self.db.connection() as c:
            row = c.execute(self.q.nodes.heartbeat,
                            {"node_id": self.node.id, "queue": queues, "running": running}).fetchone()
        return not (row is not None and row[0] == 0)

    def delete_node(self) -> None:
        with self.db.connection() as c:
            c.execute(self.q.nodes.delete, {"node_id": self.node.id})

    def reap_nodes(self, forget_after: float) -> list[str]:
        """Forget nodes silent for ``forget_after`` seconds; their names."""
        with self.db.connection() as c:
            return [r[0] for r in c.execute(self.q.nodes.reap, {"forget_after": forget_after}).fetchall()]

    def elect(self, lease: float) -> int | None:
        """Take the leader's lease if free or expired, renew it if ours: the epoch, or None."""
        with self.db.connection() as c:
            row = c.execute(self.q.nodes.leader_elect,
                            {"node_id": self.node.id, "node_name": self.node.name, "lease": lease}).fetchone()
        return None if row is None else int(row[0])

    def resign(self, epoch: int) -> None:
        with self.db.connection() as c:
            c.execute(self.q.nodes.leader_resign, {"node_id": self.node.id, "epoch": epoch})

    # -- queues ----------------------------------------------------------------------------------------
    def notify(self, queues: list[str], conn: psycopg.Connection | None = None) -> None:
        """Tell every node that ``queues`` have jobs to fetch."""
        with self.db.connection(conn) as c:
            c.execute(self.q.queues.notify, {"channel": self.channel, "queue": queues})

    def write_queue_settings(self, params: dict[str, Any], conn: psycopg.Connection | None = None) -> None:
        with self.db.connection(conn) as c:
            limits = {k: None if params[k] is None else Jsonb(params[k]) for k in ("global_limit", "rate_limit")}
            c.execute(self.q.queues.settings_write, {**params, **limits, "channel": self.channel})

    def reset_queue_settings(self, queue: str, node: str | None) -> None:
        with self.db.connection() as c:
            c.execute(self.q.queues.settings_reset, {"queue": queue, "node": node, "channel": self.channel})

    def control_state(self, queue: str, node: str, node_ttl: float) -> list[tuple[Any, ...]]:
        """(node name, paused, local limit) of the live producers of ``queue`` (on ``node`` or '*')."""
        with self.db.connection() as c:
            rows = c.execute(self.q.queues.control_state, {"queue": queue, "node": node, "node_ttl": node_ttl})
            return [tuple(r) for r in rows.fetchall()]

    def record_producer(self, queue: str, local_limit: int, paused: bool, running: int, meta: dict[str, Any]) -> None:
        with self.db.connection() as c:
            c.execute(
                self.q.queues.producer_upsert,
                {"node_id": self.node.id, "queue": queue, "local_limit": local_limit, "paused": paused,
                 "running": running, "meta": Jsonb(meta)},
            )

    # -- workflows ---------------------------------------------------------------------------------------
    def workflows_of(self, c: psycopg.Connection, ids: list[int]) -> list[Any]:
        return [r[0] for r in c.execute(self.q.workflows.of_jobs, {"id": ids}).fetchall()]

    def lock_workflows(self, c: psycopg.Connection, workflows: Sequence[Any]) -> None:
        c.execute(self.q.workflows.lock, {"ids": list(workflows)})

    def resolve_workflows(self, c: psycopg.Connection, workflows: Sequence[Any]) -> None:
        """Promote or cancel held steps of ``workflows`` (already locked), down the whole graph."""
        for _ in range(1000):
            row = c.execute(self.q.workflows.resolve, {"ids": list(workflows), "channel": self.channel}).fetchone()
            if row is None or not row[1]:
                return

    def step_ids(self, c: psycopg.Connection, workflow_id: uuid.UUID | str, states: Iterable[JobState]) -> list[int]:
        params = {"workflow_id": workflow_id, "states": sorted(s.value for s in states)}
        return [r[0] for r in c.execute(self.q.workflows.step_ids, params).fetchall()]

    def workflow_results(self, workflow_id: uuid.UUID | str, steps: list[str]) -> dict[str, Any]:
        with self.db.connection() as c:
            rows = c.execute(self.q.workflows.results, {"workflow_id": workflow_id, "steps": steps}).fetchall()
        return {r[0]: r[1] for r in rows}

    @retried_when_moved
    def sweep_workflows(self, limit: int = 500) -> int:
        """Resolve workflows whose held steps wait on finished dependencies; how many."""
        with self.db.connection() as c:
            stuck = sorted((r[0] for r in c.execute(self.q.workflows.stuck, {"limit": limit}).fetchall()), key=str)
            if stuck:
                with c.transaction():
                    self.lock_workflows(c, stuck)
                    self.resolve_workflows(c, stuck)
        return len(stuck)

    # -- cron ------------------------------------------------------------------------------------------
    def now(self, c: psycopg.Connection) -> datetime:
        row = c.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        return now

    def cron_last(self, c: psycopg.Connection, name: str) -> datetime | None:
        row = c.execute(self.q.cron.last, {"name": name}).fetchone()
        return row[0] if row else None

    def cron_claim(self, c: psycopg.Connection, name: str, instant: datetime, epoch: int) -> bool | None:
        """Claim the run of entry ``name`` at ``instant`` under leadership ``epoch``: True to run
        it, False when the entry is paused (the run is recorded, with no job), None if taken."""
        params = {"name": name, "instant": instant, "node_id": self.node.id, "epoch": epoch}
        row = c.execute(self.q.cron.claim, params).fetchone()
        return None if row is None else not row[0]

    def cron_link(self, c: psycopg.Connection, name: str, instant: datetime, job_id: int) -> None:
        c.execute(self.q.cron.link, {"name": name, "instant": instant, "job_id": job_id})

    def cron_record(self, entries: list[dict[str, Any]]) -> None:
        """Write the leader's crontab (name, expression, timezone, worker, queue, args each)."""
        with self.db.connection() as c:
            c.execute(self.q.cron.record, {"entries": Jsonb(entries), "node_name": self.node.name})

    def cron_pause(self, name: str, paused: bool, conn: psycopg.Connection | None = None) -> bool | None:
        """Pause or resume entry ``name``: True if it changed, False if it already was, None if
        no entry has that name."""
        with self.db.connection(conn) as c:
            if c.execute(self.q.cron.pause, {"name": name, "paused": paused}).fetchone() is not None:
                return True
            known = [r[0] for r in c.execute(self.q.cron.names).fetchall()]
            return False if name in known else None

    def cron_names(self, conn: psycopg.Connection | None = None) -> list[str]:
        with self.db.connection(conn) as c:
            return [r[0] for r in c.execute(self.q.cron.names).fetchall()]

    # -- audit ---------------------------------------------------------------------------------------
    def audit(self, entry: dict[str, Any], conn: psycopg.Connection | None = None) -> int:
        with self.db.connection(conn) as c:
            row = c.execute(
                self.q.audit.insert,
                {**entry, "targets": Jsonb(entry["targets"]), "detail": Jsonb(entry["detail"])},
            ).fetchone()
        assert row is not None
        return int(row[0])
