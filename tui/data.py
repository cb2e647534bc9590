"""Read-only data access for the dashboard: each method runs a few bounded queries and returns a
frozen snapshot.

Every read runs in a read-only transaction with a statement timeout. All values are bound
parameters and the schema is quoted with ``psycopg.sql``; filters arrive parsed
(``tui.filters``) and are mapped to fixed SQL fragments here. Counts are exact while small and
planner estimates (``Count.exact`` False) once a state holds more than ``EXACT_MAX`` rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from engine import Engine

from .filters import Filter, Term
from .model import (
    STALE_AFTER_SECONDS,
    STATES,
    Attempt,
    AuditRow,
    AuditSnapshot,
    Cluster,
    Count,
    JobDetail,
    JobDetailSnapshot,
    JobRow,
    JobsSnapshot,
    Limit,
    NodeQueue,
    NodeRow,
    NodesSnapshot,
    QueueDetailSnapshot,
    QueueNode,
    QueueRow,
    QueuesSnapshot,
    Selection,
    Step,
    WaitFacts,
    WorkflowRow,
    WorkflowSnapshot,
    WorkflowsSnapshot,
)

log = logging.getLogger("lysmore.tui")

EXACT_MAX = 100_000  # above this many rows (by estimate) a count is an estimate
LIVE_WINDOW = timedelta(seconds=STALE_AFTER_SECONDS)  # silent nodes no longer count as running a queue
STATS_MINUTES = 30
PAGE_SIZE = 100
SELECT_CAP = 10_000
AUDIT_ROWS = 200
WORKFLOW_ROWS = 100
QUEUE_STATES = ("available", "scheduled", "retryable", "executing")
Clock = Callable[[], datetime]

_OPS = {op: sql.SQL(op) for op in ("=", ">", ">=", "<", "<=")}
_AGE_OPS = {">": sql.SQL("<"), ">=": sql.SQL("<="), "<": sql.SQL(">"), "<=": sql.SQL(">=")}
_NUMBER_COLUMNS = {"priority": ("priority", "int"), "id": ("id", "bigint"), "attempt": ("attempt", "int")}
_JOB_COLUMNS = sql.SQL(
    "id, state::text, queue, worker, attempt, max_attempts, priority, left(args::text, 200), tags, inserted_at,"
    " scheduled_at, attempted_at, coalesce(completed_at, cancelled_at, discarded_at), attempted_by[1],"
    " left(errors -> -1 ->> 'error', 200)"
)
# The filter indexes (migration 5) skip available and executing jobs; these two conditions, spelled
# exactly as the indexes' predicates, split a search into the part they hold and the rest.
_SETTLED = sql.SQL("state NOT IN ('available', 'executing')")
_UNSETTLED = sql.SQL("state IN ('available', 'executing')")
RECENT_WINDOW = 5_000  # newest ids a filtered page reads in id order before it asks the filter's indexes
SPAN_GROWTH = 4  # each older span of ids a filtered page then searches is this many times the last
_MIN_ID = -(2**63)
WORKER_NAMES_MAX = 1_000  # distinct workers a worker pattern is resolved against; beyond that, ILIKE on rows


def parse_limit(value: Any) -> Limit | None:
    """A global or rate limit from stored JSON (an int, or ``{allowed, period, partition}``); else None."""
    try:
        if value is None:
            return None
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return Limit(allowed=value)
        if not isinstance(value, dict):
            return None
        allowed = value.get("allowed", value.get("limit"))
        if isinstance(allowed, bool) or not isinstance(allowed, int):
            return None
        period = value.get("period")
        period_s = float(period) if isinstance(period, (int, float)) and not isinstance(period, bool) else None
        partition = value.get("partition")
        fields: list[str] = []
        keys: tuple[str, ...] | None = None
        if isinstance(partition, dict):
            fields = [str(f) for f in partition.get("fields") or []]
            if partition.get("keys"):
                keys = tuple(str(k) for k in partition["keys"])
        elif isinstance(partition, (list, tuple)):
            fields = [str(f) for f in partition]
        elif isinstance(partition, str):
            fields = [partition]
        return Limit(allowed=allowed, period=period_s, by_worker="worker" in fields, by_args="args" in fields,
                     keys=keys)
    except Exception:
        return None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _nest(path: Sequence[str], value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value


def _parse_at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


@dataclass(slots=True)
class _Where:
    """A compiled job filter: its conditions, their bound parameters, and whether an index returns
    the matches newest first (the filter pins one worker or one node).

    ``hints`` are conditions every settled match (neither available nor executing) meets anyway,
    ``tags <> '{}'`` or the worker names a pattern resolves to, that let the planner use the
    filter indexes. They go only where settled jobs are searched through those indexes: the planner
    takes them for independent conditions, so elsewhere they would make it underestimate matches.
    """

    conds: list[sql.Composable] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    hints: list[sql.Composable] = field(default_factory=list)
    ordered: bool = False

    def clause(self, hints: bool = False) -> sql.Composable:
        """The conditions joined with AND (``true`` when there are none)."""
        conds = [*self.conds, *self.hints] if hints else self.conds
        return sql.SQL(" AND ").join(conds) if conds else sql.SQL("true")


class Store:
    """The dashboard's read side over one engine instance (prefix)."""

    def __init__(self, engine: Engine, clock: Clock | None = None, timeout_ms: int = 5000) -> None:
        self.engine = engine
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.prefix = engine.prefix
        self.schema = sql.Identifier(engine.prefix)
        self.t = {
            name: engine.q.table(name)
            for name in ("jobs", "nodes", "producers", "queue_settings", "leader", "audit", "stats_minutely")
        }
        self.state_type = sql.SQL("{}.lysmore_job_state").format(self.schema)
        self._filter_indexes = False

    # -- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A read-only transaction with the dashboard's statement timeout."""
        with self.engine.connection() as conn, conn.transaction():
            # One round trip (a read waits for the GIL after each one while the screen is drawn).
            # Plans depend on the values (a rare worker or a common one): never a generic plan,
            # even for statements psycopg has prepared.
            conn.execute(sql.SQL(
                "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {};"
                " SET LOCAL plan_cache_mode = force_custom_plan"
            ).format(sql.Literal(int(self.timeout_ms))))
            yield conn

    def _sql(self, text: str, **extra: sql.Composable) -> sql.Composed:
        return sql.SQL(text).format(**self.t, state_t=self.state_type, **extra)

    def _now(self, conn: psycopg.Connection) -> datetime:
        if self.clock is not None:
            return self.clock()
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        return row[0]

    def _estimate(self, conn: psycopg.Connection, query: sql.Composable, params: Any) -> int:
        row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params).fetchone()
        assert row is not None
        plan = row[0][0]["Plan"]
        return int(plan.get("Plan Rows", 0))

    def _table_estimate(self, conn: psycopg.Connection) -> int:
        """Rows in the jobs table by the planner's statistics (by size when never analysed)."""
        name = sql.Identifier(self.prefix, "lysmore_jobs").as_string(conn)
        row = conn.execute(
            "SELECT c.reltuples::bigint, pg_relation_size(c.oid) FROM pg_class c WHERE c.oid = to_regclass(%s)",
            (name,),
        ).fetchone()
        if row is None:
            return 0
        reltuples, size = row
        if reltuples is None or reltuples < 0:
            return int(size // 200)
        return int(reltuples)

    # -- header -------------------------------------------------------------------------------
    def _cluster(self, conn: psycopg.Connection, now: datetime) -> Cluster:
        row = conn.execute(
            self._sql(
                "SELECT (SELECT count(*) FROM {nodes} WHERE heartbeat_at > %(live)s),"
                " (SELECT node_name FROM {leader} WHERE expires_at > %(now)s ORDER BY name LIMIT 1)"
            ),
            {"live": now - LIVE_WINDOW, "now": now},
        ).fetchone()
        assert row is not None
        return Cluster(nodes=int(row[0]), leader=row[1])

    # -- counts -------------------------------------------------------------------------------
    def _state_counts(self, conn: psycopg.Connection) -> dict[str, Count]:
        """Jobs per state: one exact GROUP BY while the table is small, else estimate per state."""
        if self._table_estimate(conn) < EXACT_MAX:
            rows = conn.execute(self._sql("SELECT state::text, count(*) FROM {jobs} GROUP BY state")).fetchall()
            exact = {s: int(n) for s, n in rows}
            return {s: Count(exact.get(s, 0)) for s in STATES}
        counts: dict[str, Count] = {}
        small: list[str] = []
        for state in STATES:
            est = self._estimate(conn, self._sql("SELECT 1 FROM {jobs} WHERE state = %s::{state_t}"), (state,))
            if est < EXACT_MAX:
                small.append(state)
            else:
                counts[state] = Count(est, exact=False)
        if small:
            rows = conn.execute(
                self._sql("SELECT state::text, count(*) FROM {jobs} WHERE state = ANY(%s::{state_t}[]) GROUP BY state"),
                (small,),
            ).fetchall()
            exact = {s: int(n) for s, n in rows}
            for state in small:
                counts[state] = Count(exact.get(state, 0))
        return {s: counts[s] for s in STATES}

    def _queue_counts(
        self, conn: psycopg.Connection, states: dict[str, Count]
    ) -> dict[tuple[str, str], Count]:
        """(queue, state) -> count for the states a queue row shows, estimated per queue when large."""
        out: dict[tuple[str, str], Count] = {}
        small = [s for s in QUEUE_STATES if states[s].exact]
        if small:
            rows = conn.execute(
                self._sql(
                    "SELECT queue, state::text, count(*) FROM {jobs}"
                    " WHERE state = ANY(%s::{state_t}[]) GROUP BY 1, 2"
                ),
                (small,),
            ).fetchall()
            for queue, state, n in rows:
                out[(queue, state)] = Count(int(n))
        for state in QUEUE_STATES:
            if state in small:
                continue
            for queue in self._queues_in_state(conn, state):
                est = self._estimate(
                    conn, self._sql("SELECT 1 FROM {jobs} WHERE state = %s::{state_t} AND queue = %s"), (state, queue)
                )
                out[(queue, state)] = Count(est, exact=False)
        return out

    def _queues_in_state(self, conn: psycopg.Connection, state: str) -> list[str]:
        """Distinct queues having jobs in ``state``, by a loose index scan (cheap on millions)."""
        rows = conn.execute(
            self._sql(
                "WITH RECURSIVE q(queue) AS ("
                " (SELECT queue FROM {jobs} WHERE state = %(s)s::{state_t} ORDER BY queue LIMIT 1)"
                " UNION ALL"
                " SELECT (SELECT j.queue FROM {jobs} j WHERE j.state = %(s)s::{state_t} AND j.queue > q.queue"
                "         ORDER BY j.queue LIMIT 1) FROM q WHERE q.queue IS NOT NULL"
                ") SELECT queue FROM q WHERE queue IS NOT NULL LIMIT 1000"
            ),
            {"s": state},
        ).fetchall()
        return [r[0] for r in rows]

    # -- queues -------------------------------------------------------------------------------
    def _producers(self, conn: psycopg.Connection, now: datetime, queue: str | None = None) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self._sql(
                    "SELECT p.queue, p.node_id::text AS node_id, n.name, n.host, p.local_limit, p.paused,"
                    " p.running, p.meta, n.heartbeat_at"
                    " FROM {producers} p JOIN {nodes} n ON n.id = p.node_id"
                    " WHERE n.heartbeat_at > %(live)s AND (%(queue)s::text IS NULL OR p.queue = %(queue)s::text)"
                    " ORDER BY p.queue, n.name, n.started_at"
                ),
                {"live": now - LIVE_WINDOW, "queue": queue},
            )
            return list(cur.fetchall())

    def _settings(self, conn: psycopg.Connection) -> dict[tuple[str, str], dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql(
                "SELECT queue, node, paused, local_limit, global_limit, rate_limit FROM {queue_settings}"
            ))
            return {(r["queue"], r["node"]): r for r in cur.fetchall()}

    @staticmethod
    def _effective(
        producer: dict[str, Any], settings: dict[tuple[str, str], dict[str, Any]]
    ) -> tuple[bool, int]:
        """(paused, local limit) a node applies to a queue: its own setting, then '*', then its report."""
        own = settings.get((producer["queue"], producer["name"])) or {}
        star = settings.get((producer["queue"], "*")) or {}
        paused = own.get("paused")
        if paused is None:
            paused = star.get("paused")
        if paused is None:
            paused = producer["paused"]
        limit = own.get("local_limit")
        if limit is None:
            limit = star.get("local_limit")
        if limit is None:
            limit = producer["local_limit"]
        return bool(paused), int(limit)

    def _limits(
        self, queue: str, producers: Sequence[dict[str, Any]], settings: dict[tuple[str, str], dict[str, Any]]
    ) -> tuple[Limit | None, Limit | None]:
        star = settings.get((queue, "*")) or {}
        global_limit = parse_limit(star.get("global_limit"))
        rate_limit = parse_limit(star.get("rate_limit"))
        for p in producers:
            meta = p.get("meta") or {}
            if not isinstance(meta, dict):
                continue
            if global_limit is None:
                global_limit = parse_limit(meta.get("global_limit"))
            if rate_limit is None:
                rate_limit = parse_limit(meta.get("rate_limit"))
        return global_limit, rate_limit

    def _executing_by_node(self, conn: psycopg.Connection, queue: str | None = None) -> dict[tuple[str, str], int]:
        rows = conn.execute(
            self._sql(
                "SELECT queue, coalesce(node_id::text, ''), count(*) FROM {jobs}"
                " WHERE state = 'executing' AND (%(queue)s::text IS NULL OR queue = %(queue)s::text) GROUP BY 1, 2"
            ),
            {"queue": queue},
        ).fetchall()
        return {(q, n): int(c) for q, n, c in rows}

    def _oldest_available(self, conn: psycopg.Connection, queues: Sequence[str]) -> dict[str, datetime]:
        """Per queue, the earliest due time of an available job: ten index probes per queue."""
        if not queues:
            return {}
        rows = conn.execute(
            self._sql(
                "SELECT q.queue, (SELECT min(x.s) FROM generate_series(0, 9) AS p(priority),"
                " LATERAL (SELECT j.scheduled_at AS s FROM {jobs} j WHERE j.state = 'available'"
                "          AND j.queue = q.queue AND j.priority = p.priority"
                "          ORDER BY j.scheduled_at LIMIT 1) AS x)"
                " FROM unnest(%s::text[]) AS q(queue)"
            ),
            (list(queues),),
        ).fetchall()
        return {q: at for q, at in rows if at is not None}

    def _stats(self, conn: psycopg.Connection, now: datetime) -> dict[str, tuple[list[int], list[int]]]:
        """Completed and failed per minute, oldest first: the complete minutes, then a last slot
        that is the rate over the sliding minute up to ``now`` (this minute so far plus the part
        of the previous one still inside it), so a fresh queue does not read 0 for a minute."""
        current = now.replace(second=0, microsecond=0)
        start = current - timedelta(minutes=STATS_MINUTES)
        rows = conn.execute(
            self._sql(
                "SELECT queue, minute, completed, failed + discarded FROM {stats_minutely}"
                " WHERE minute >= %s AND minute <= %s"
            ),
            (start, current),
        ).fetchall()
        out: dict[str, tuple[list[int], list[int]]] = {}
        partial: dict[str, tuple[int, int]] = {}
        for queue, minute, completed, failed in rows:
            done, bad = out.setdefault(queue, ([0] * STATS_MINUTES, [0] * STATS_MINUTES))
            if minute == current:
                partial[queue] = (int(completed), int(failed))
                continue
            slot = int((minute - start).total_seconds() // 60)
            if 0 <= slot < STATS_MINUTES:
                done[slot] += int(completed)
                bad[slot] += int(failed)
        left = 1.0 - (now - current).total_seconds() / 60.0
        for queue, (done, bad) in out.items():
            cur_done, cur_bad = partial.get(queue, (0, 0))
            done.append(round(cur_done + done[-1] * left))
            bad.append(round(cur_bad + bad[-1] * left))
            del done[0], bad[0]
        return out

    def _queue_rows(
        self, conn: psycopg.Connection, now: datetime, states: dict[str, Count], only: str | None = None
    ) -> tuple[list[QueueRow], list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], int]]:
        producers = self._producers(conn, now, only)
        settings = self._settings(conn)
        counts = self._queue_counts(conn, states)
        executing = self._executing_by_node(conn, only)
        stats = self._stats(conn, now)
        names = {p["queue"] for p in producers} | {q for q, _ in settings} | {q for q, _ in counts}
        names |= {q for q, _ in executing} | set(stats)
        if only is not None:
            names = {only} & names
        ordered = sorted(names)
        oldest = self._oldest_available(conn, ordered)
        rows = []
        for name in ordered:
            mine = [p for p in producers if p["queue"] == name]
            effective = [self._effective(p, settings) for p in mine]
            star = settings.get((name, "*")) or {}
            global_limit, rate_limit = self._limits(name, mine, settings)
            done, failed = stats.get(name, ([0] * STATS_MINUTES, [0] * STATS_MINUTES))
            rows.append(QueueRow(
                name=name,
                executing=sum(n for (q, _), n in executing.items() if q == name),
                local_limit=sum(limit for _, limit in effective),
                nodes=len(mine),
                nodes_paused=sum(1 for paused, _ in effective if paused),
                paused_everywhere=bool(star.get("paused")),
                available=counts.get((name, "available"), Count(0)),
                scheduled=counts.get((name, "scheduled"), Count(0)),
                retryable=counts.get((name, "retryable"), Count(0)),
                oldest_available_at=oldest.get(name),
                completed_per_minute=tuple(done),
                failed_per_minute=tuple(failed),
                global_limit=global_limit,
                rate_limit=rate_limit,
            ))
        return rows, producers, settings, executing

    def queues(self) -> QueuesSnapshot:
        """The Queues screen: cluster counts by state and one row per known queue."""
        with self.transaction() as conn:
            now = self._now(conn)
            states = self._state_counts(conn)
            rows, *_ = self._queue_rows(conn, now, states)
            return QueuesSnapshot(
                now=now, cluster=self._cluster(conn, now), states=tuple(states.items()), queues=tuple(rows)
            )

    def queue_detail(self, queue: str) -> QueueDetailSnapshot:
        """One queue with a row per live node running it."""
        with self.transaction() as conn:
            now = self._now(conn)
            states = self._state_counts(conn)
            rows, producers, settings, executing = self._queue_rows(conn, now, states, only=queue)
            nodes = []
            for p in producers:
                paused, limit = self._effective(p, settings)
                nodes.append(QueueNode(
                    node_id=p["node_id"], name=p["name"], host=p["host"], local_limit=limit,
                    executing=executing.get((queue, p["node_id"]), 0), paused=paused,
                    heartbeat_at=p["heartbeat_at"],
                ))
            star = settings.get((queue, "*")) or {}
            return QueueDetailSnapshot(
                now=now, cluster=self._cluster(conn, now), queue=rows[0] if rows else None, nodes=tuple(nodes),
                setting_paused=star.get("paused"), setting_limit=star.get("local_limit"),
            )

    # -- jobs ---------------------------------------------------------------------------------
    def compile_filter(
        self, flt: Filter, now: datetime, conn: psycopg.Connection | None = None
    ) -> tuple[list[sql.Composable], dict[str, Any]]:
        """SQL conditions (with named bound parameters) for every term of a parsed filter.

        With ``conn`` (and migration 5), conditions take the forms the filter indexes answer;
        the hints that let the planner use them on settled jobs are not part of this result.
        """
        where = self._compile(flt, now, conn)
        return where.conds, where.params

    def _compile(self, flt: Filter, now: datetime, conn: psycopg.Connection | None) -> _Where:
        where = _Where()
        indexed = conn is not None and self._has_filter_indexes(conn)
        for i, term in enumerate(flt.terms):
            if term.field == "state" and term.negated:  # the other states, which the state index finds
                term = Term("state", tuple(s for s in STATES if s not in term.values))
            cond = self._term_sql(term, f"f{i}", where, now, conn if indexed else None)
            if term.negated:
                cond = sql.SQL("NOT coalesce(({}), false)").format(cond)
            where.conds.append(cond)
        where.ordered = where.ordered and len(flt.terms) == 1  # with more terms, let spans find them
        return where

    def _has_filter_indexes(self, conn: psycopg.Connection) -> bool:
        """Whether this schema has migration 5 (the filter indexes); remembered once true."""
        if not self._filter_indexes:
            self._filter_indexes = self._exists(conn, "regprocedure", "lysmore_error_text(jsonb)")
        return self._filter_indexes

    def _worker_names(self, conn: psycopg.Connection, patterns: Sequence[str]) -> list[str] | None:
        """The distinct workers of jobs the worker index holds that match any ILIKE pattern, found
        by skipping through it (one probe per worker); None when there are too many to list."""
        rows = conn.execute(
            self._sql(
                "WITH RECURSIVE w(worker) AS ("
                " (SELECT worker FROM {jobs} WHERE {settled} ORDER BY worker LIMIT 1)"
                " UNION ALL"
                " SELECT (SELECT j.worker FROM {jobs} j WHERE j.worker > w.worker AND {settled}"
                "         ORDER BY j.worker LIMIT 1)"
                " FROM w WHERE w.worker IS NOT NULL"
                ") SELECT worker, worker ILIKE ANY(%s::text[]) FROM w WHERE worker IS NOT NULL LIMIT %s",
                settled=_SETTLED,
            ),
            (list(patterns), WORKER_NAMES_MAX + 1),
        ).fetchall()
        if len(rows) > WORKER_NAMES_MAX:
            return None
        return [name for name, hit in rows if hit]

    def _term_sql(
        self, term: Term, name: str, where: _Where, now: datetime, conn: psycopg.Connection | None
    ) -> sql.Composable:
        """One term as SQL; ``conn`` is given when the filter indexes exist and may be consulted."""
        p = sql.Placeholder(name)
        params = where.params
        field = term.field
        if field == "state":
            params[name] = list(term.values)
            return sql.SQL("state = ANY({}::{}[])").format(p, self.state_type)
        if field == "queue":
            params[name] = list(term.values)
            if conn is None or term.negated:
                return sql.SQL("queue = ANY({}::text[])").format(p)
            # Every state, spelled out, lets the (state, queue, id) index find a queue's jobs.
            params[f"{name}_s"] = list(STATES)
            return sql.SQL("state = ANY({}::{}[]) AND queue = ANY({}::text[])").format(
                sql.Placeholder(f"{name}_s"), self.state_type, p
            )
        if field in ("worker", "text"):
            params[name] = [_like(v) for v in term.values]
            names = self._worker_names(conn, params[name]) if conn is not None and not term.negated else None
            if names is not None:  # a settled match has one of these workers: the worker index's terms
                hint = sql.Placeholder(f"{name}_w")
                params[f"{name}_w"] = names[0] if len(names) == 1 else names
                where.hints.append(
                    sql.SQL("false") if not names
                    else sql.SQL("worker = {}").format(hint) if len(names) == 1
                    else sql.SQL("worker = ANY({}::text[])").format(hint)
                )
                where.ordered = where.ordered or len(names) == 1
            return sql.SQL("worker ILIKE ANY({}::text[])").format(p)
        if field == "node":
            # attempted_by IS NOT NULL: the node index holds only jobs that were attempted.
            if len(term.values) == 1:
                params[name] = term.values[0]
                where.ordered = where.ordered or (conn is not None and not term.negated)
                return sql.SQL("attempted_by IS NOT NULL AND attempted_by[1] = {}::text").format(p)
            params[name] = list(term.values)
            return sql.SQL("attempted_by IS NOT NULL AND attempted_by[1] = ANY({}::text[])").format(p)
        if field == "tag":
            params[name] = list(term.values)
            if not term.negated:  # the tags index holds only jobs with tags
                where.hints.append(sql.SQL("tags <> '{}'::text[]"))
            return sql.SQL("tags && {}::text[]").format(p)
        if field in _NUMBER_COLUMNS:
            number, kind = _NUMBER_COLUMNS[field]
            if term.op == "=":
                params[name] = [int(v) for v in term.values]
                return sql.SQL("{} = ANY({}::{}[])").format(sql.Identifier(number), p, sql.SQL(kind))
            params[name] = int(term.values[0])
            return sql.SQL("{} {} {}::{}").format(sql.Identifier(number), _OPS[term.op], p, sql.SQL(kind))
        if field == "age":
            params[name] = now - timedelta(seconds=float(term.values[0]))
            return sql.SQL("inserted_at {} {}").format(_AGE_OPS[term.op], p)
        if field == "error":
            # Both texts searched are JSON, so the words are searched for as JSON spells them.
            params[name] = _like(json.dumps(str(term.values[0]), ensure_ascii=False)[1:-1])
            if conn is None:
                return sql.SQL("errors::text ILIKE {}").format(p)
            # Messages and tracebacks only, in the collation of the trigram index.
            return sql.SQL('{}.lysmore_error_text(errors) COLLATE "C" ILIKE {}').format(self.schema, p)
        if field in ("args", "meta"):
            column = sql.Identifier(field)
            alternatives: list[sql.Composable] = []
            for j, value in enumerate(term.values):
                key = f"{name}_{j}"
                if value == "*":
                    # The top-level key (indexed: ?) must exist for the whole path to.
                    params[key], params[f"{key}_k"] = list(term.path), term.path[0]
                    alternatives.append(sql.SQL("({} ? {} AND ({} #> {}::text[]) IS NOT NULL)").format(
                        column, sql.Placeholder(f"{key}_k"), column, sql.Placeholder(key)
                    ))
                    continue
                params[key] = json.dumps(_nest(term.path, value))
                alternatives.append(sql.SQL("{} @> {}::jsonb").format(column, sql.Placeholder(key)))
                if isinstance(value, (int, float, bool)) or value is None:
                    alt = f"{key}_s"
                    params[alt] = json.dumps(_nest(term.path, json.dumps(value)))
                    alternatives.append(sql.SQL("{} @> {}::jsonb").format(column, sql.Placeholder(alt)))
            if not term.negated:  # the args and meta indexes hold only jobs that have some
                where.hints.append(sql.SQL("{} <> '{{}}'::jsonb").format(column))
            return sql.SQL("({})").format(sql.SQL(" OR ").join(alternatives))
        raise ValueError(f"unknown filter field {field!r}")

    def _job_where(
        self, conn: psycopg.Connection, state: str | None, flt: Filter, now: datetime, before: int | None
    ) -> _Where:
        where = self._compile(flt, now, conn)
        if state is not None:
            where.params["side_state"] = state
            where.conds.insert(0, sql.SQL("state = {}::{}").format(sql.Placeholder("side_state"), self.state_type))
        if before is not None:
            where.params["before"] = before
            where.conds.append(sql.SQL("id < {}").format(sql.Placeholder("before")))
        return where

    def _top(self, conn: psycopg.Connection, before: int | None) -> int:
        """The id a page reads down from (exclusive): ``before``, else one past the newest job."""
        if before is not None:
            return before
        row = conn.execute(self._sql("SELECT max(id) + 1 FROM {jobs}")).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _newest(self, cols: sql.Composable, where: _Where) -> sql.Composed:
        """The newest ``%(limit)s`` matching jobs: those the filter indexes hold, newest first,
        merged with the others (available or executing), which the state index lists (materialized,
        so that the planner never walks the whole table in id order looking for them)."""
        return self._sql(
            "WITH rest AS MATERIALIZED (SELECT id FROM {jobs} WHERE {where} AND {unsettled})"
            " SELECT {cols} FROM {jobs} WHERE id IN ("
            " (SELECT id FROM {jobs} WHERE {hinted} AND {settled} ORDER BY id DESC LIMIT %(limit)s)"
            " UNION ALL"
            " (SELECT id FROM rest ORDER BY id DESC LIMIT %(limit)s)"
            ") ORDER BY id DESC LIMIT %(limit)s",
            cols=cols, hinted=where.clause(hints=True), where=where.clause(), settled=_SETTLED,
            unsettled=_UNSETTLED,
        )

    def _page(
        self, conn: psycopg.Connection, where: _Where, filtered: bool, before: int | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` matching jobs, newest first.

        Unfiltered lists are one ordered query, and so are filters an index returns newest first
        (one worker, one node). Other filters read the newest ``RECENT_WINDOW`` ids in id order,
        which fills the page when matches are common. When it does not, matches are rare or old,
        and walking the primary key further could read the whole table, so the older ids are taken
        in spans, each ``SPAN_GROWTH`` times the last, newest first: in each span the filter's
        indexes collect the matches (a materialized CTE, so the planner cannot go back to the id
        order), which are sorted. A span costs about its matches, and the page stops at the first
        span that fills it.
        """
        params: dict[str, Any] = {**where.params, "limit": limit}
        if not filtered:
            query = self._sql("SELECT {cols} FROM {jobs} WHERE {where} ORDER BY id DESC LIMIT %(limit)s",
                              cols=_JOB_COLUMNS, where=where.clause())
            return conn.execute(query, params).fetchall()
        top = 0 if where.ordered else self._top(conn, before)
        if top <= RECENT_WINDOW:
            return conn.execute(self._newest(_JOB_COLUMNS, where), params).fetchall()
        params["lo"], params["top"] = top - RECENT_WINDOW, top
        # IS TRUE (the same rows as a WHERE) keeps the filter out of index scans: the window is
        # read in id order, which costs at most its size whatever the planner guesses.
        recent = self._sql(
            "SELECT {cols} FROM {jobs} WHERE id >= %(lo)s AND id < %(top)s AND ({where}) IS TRUE"
            " ORDER BY id DESC LIMIT %(limit)s",
            cols=_JOB_COLUMNS, where=where.clause(),
        )
        rows = conn.execute(recent, params).fetchall()
        older = self._sql(
            "WITH span AS MATERIALIZED ("
            " SELECT id FROM {jobs} WHERE {hinted} AND {settled} AND id >= %(lo)s AND id < %(hi)s"
            " UNION ALL"
            " SELECT id FROM {jobs} WHERE {where} AND {unsettled} AND id >= %(lo)s AND id < %(hi)s)"
            " SELECT {cols} FROM {jobs} WHERE id IN (SELECT id FROM span ORDER BY id DESC LIMIT %(limit)s)"
            " ORDER BY id DESC",
            cols=_JOB_COLUMNS, hinted=where.clause(hints=True), where=where.clause(), settled=_SETTLED,
            unsettled=_UNSETTLED,
        )
        span = RECENT_WINDOW * SPAN_GROWTH
        # In a span, a plain index scan would be the primary key walked over the whole span (the
        # planner prices it low because ids follow the heap): only bitmaps, which intersect.
        conn.execute("SET LOCAL enable_indexscan = off")
        while len(rows) < limit and params["lo"] > _MIN_ID:
            hi = params["lo"]
            params["hi"], params["lo"] = hi, hi - span if hi - span > 0 else _MIN_ID  # the last span: all the rest
            params["limit"] = limit - len(rows)
            rows += conn.execute(older, params).fetchall()
            span *= SPAN_GROWTH
        conn.execute("RESET enable_indexscan")
        return rows

    def jobs(
        self, state: str | None = None, flt: Filter | None = None, before: int | None = None,
        page: int = 1, limit: int = PAGE_SIZE,
    ) -> JobsSnapshot:
        """One page of jobs, newest first, after the id ``before`` (keyset paging)."""
        flt = flt or Filter()
        with self.transaction() as conn:
            now = self._now(conn)
            states = self._state_counts(conn)
            where = self._job_where(conn, state, flt, now, before)
            rows = self._page(conn, where, bool(flt), before, limit + 1)
            jobs = tuple(
                JobRow(
                    id=r[0], state=r[1], queue=r[2], worker=r[3], attempt=r[4], max_attempts=r[5], priority=r[6],
                    args_preview=r[7] or "", tags=tuple(r[8] or ()), inserted_at=r[9], scheduled_at=r[10],
                    attempted_at=r[11], finished_at=r[12], node=r[13], last_error=r[14],
                )
                for r in rows[:limit]
            )
            total = states[state] if state else Count(
                sum(c.value for c in states.values()), all(c.exact for c in states.values())
            )
            return JobsSnapshot(
                now=now, cluster=self._cluster(conn, now), state=state, filter_text=flt.text, rows=jobs,
                has_more=len(rows) > limit, page=page, states=tuple(states.items()), total=total,
            )

    def select_matching(self, state: str | None, flt: Filter, cap: int = SELECT_CAP) -> Selection:
        """Ids and states of every job matching, newest first, up to ``cap``."""
        with self.transaction() as conn:
            now = self._now(conn)
            where = self._job_where(conn, state, flt, now, None)
            rows = conn.execute(
                self._newest(sql.SQL("id, state::text, worker"), where), {**where.params, "limit": cap + 1}
            ).fetchall()
            return Selection(ids=tuple((int(i), s, w) for i, s, w in rows[:cap]), capped=len(rows) > cap)

    # -- job detail ---------------------------------------------------------------------------
    def job(self, job_id: int) -> JobDetailSnapshot:
        """One job with its workflow steps and the facts that explain a wait."""
        with self.transaction() as conn:
            now = self._now(conn)
            cluster = self._cluster(conn, now)
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(
                    self._sql(
                        "SELECT *, state::text AS state_text, workflow_id::text AS workflow_text"
                        " FROM {jobs} WHERE id = %s"
                    ),
                    (job_id,),
                )
                row = cur.fetchone()
            if row is None:
                return JobDetailSnapshot(now=now, cluster=cluster, job_id=job_id, job=None)
            job = self._detail(row)
            steps: tuple[Step, ...] = ()
            if job.workflow_id:
                rows = conn.execute(
                    self._sql(
                        "SELECT id, coalesce(workflow_step, id::text), state::text, workflow_deps FROM {jobs}"
                        " WHERE workflow_id = %s::uuid ORDER BY id LIMIT 500"
                    ),
                    (job.workflow_id,),
                ).fetchall()
                steps = tuple(Step(int(i), s, st, tuple(d or ())) for i, s, st, d in rows)
            facts = self._wait_facts(conn, now, job) if job.state in ("available", "scheduled", "retryable", "held") \
                else WaitFacts()
            return JobDetailSnapshot(now=now, cluster=cluster, job_id=job_id, job=job, steps=steps, facts=facts)

    @staticmethod
    def _detail(row: dict[str, Any]) -> JobDetail:
        errors = []
        for e in row.get("errors") or []:
            if not isinstance(e, dict):
                continue
            try:
                attempt = int(e.get("attempt") or 0)
            except (TypeError, ValueError):
                attempt = 0
            errors.append(Attempt(
                attempt=attempt, at=_parse_at(e.get("at")), error=str(e.get("error") or ""),
                traceback=str(e.get("traceback") or ""),
            ))
        by = row.get("attempted_by") or []
        return JobDetail(
            id=row["id"], state=row["state_text"], queue=row["queue"], worker=row["worker"], args=row["args"],
            meta=row["meta"], tags=tuple(row.get("tags") or ()), priority=row["priority"], attempt=row["attempt"],
            max_attempts=row["max_attempts"], errors=tuple(errors), result=row.get("result"),
            inserted_at=row["inserted_at"], scheduled_at=row["scheduled_at"], attempted_at=row.get("attempted_at"),
            completed_at=row.get("completed_at"), cancelled_at=row.get("cancelled_at"),
            discarded_at=row.get("discarded_at"), node=by[0] if by else None, unique_key=row.get("unique_key"),
            workflow_id=row.get("workflow_text"), workflow_name=row.get("workflow_name"),
            workflow_step=row.get("workflow_step"), workflow_deps=tuple(row.get("workflow_deps") or ()),
        )

    def _exists(self, conn: psycopg.Connection, kind: str, name: str) -> bool:
        """Whether a table (``regclass``) or function (``regprocedure``) of this schema exists yet."""
        qualified = f"{sql.Identifier(self.prefix).as_string(conn)}.{name}"
        func = {"regclass": "to_regclass", "regprocedure": "to_regprocedure"}[kind]
        row = conn.execute(sql.SQL("SELECT {}(%s) IS NOT NULL").format(sql.Identifier(func)), (qualified,)).fetchone()
        return bool(row and row[0])

    def _partition_sql(self, limit: Limit, params: dict[str, Any], tag: str, worker: sql.Composable,
                       args: sql.Composable) -> sql.Composable:
        """The engine's partition key of a job (``lysmore_partition``) for ``limit``, as SQL."""
        params[f"{tag}_w"], params[f"{tag}_a"] = limit.by_worker, limit.by_args
        params[f"{tag}_k"] = list(limit.keys) if limit.keys is not None else None
        return sql.SQL("{}.lysmore_partition({}, {}, {}, {}, {}::text[])").format(
            self.schema, worker, args, sql.Placeholder(f"{tag}_w"), sql.Placeholder(f"{tag}_a"),
            sql.Placeholder(f"{tag}_k"),
        )

    def _wait_facts(self, conn: psycopg.Connection, now: datetime, job: JobDetail) -> WaitFacts:
        producers = self._producers(conn, now, job.queue)
        settings = self._settings(conn)
        effective = [(p, *self._effective(p, settings)) for p in producers]
        star = settings.get((job.queue, "*")) or {}
        global_limit, rate_limit = self._limits(job.queue, producers, settings)
        partition_fn = (
            bool(global_limit and global_limit.partitioned) or bool(rate_limit and rate_limit.partitioned)
        ) and self._exists(conn, "regprocedure", "lysmore_partition(text,jsonb,boolean,boolean,text[])")
        params: dict[str, Any] = {"queue": job.queue, "worker": job.worker, "args": json.dumps(job.args)}
        same: sql.Composable = sql.SQL("true")
        if global_limit is not None and global_limit.partitioned and partition_fn:
            mine = self._partition_sql(global_limit, params, "g", sql.Identifier("worker"), sql.Identifier("args"))
            theirs = self._partition_sql(global_limit, params, "g", sql.Placeholder("worker"),
                                         sql.SQL("{}::jsonb").format(sql.Placeholder("args")))
            same = sql.SQL("{} = {}").format(mine, theirs)
        holders = conn.execute(
            self._sql(
                "SELECT coalesce(attempted_by[1], '?'), count(*) FROM {jobs}"
                " WHERE state = 'executing' AND queue = %(queue)s AND {same} GROUP BY 1 ORDER BY 2 DESC, 1",
                same=same,
            ),
            params,
        ).fetchall()
        rate_used, rate_next = 0, None
        if rate_limit is not None and rate_limit.period:
            since = now - timedelta(seconds=rate_limit.period)
            if self._exists(conn, "regclass", "lysmore_rate_log"):
                where: sql.Composable = sql.SQL("true")
                if rate_limit.partitioned and partition_fn:
                    where = sql.SQL("partition = {}").format(self._partition_sql(
                        rate_limit, params, "r", sql.Placeholder("worker"),
                        sql.SQL("{}::jsonb").format(sql.Placeholder("args")),
                    ))
                query: sql.Composed = sql.SQL(
                    "SELECT count(*), min(started_at) FROM {}.lysmore_rate_log"
                    " WHERE queue = %(queue)s AND started_at > %(since)s AND {}"
                ).format(self.schema, where)
            else:  # before the rate log existed: starts as the jobs table remembers them
                query = self._sql(
                    "SELECT count(*), min(attempted_at) FROM {jobs} WHERE queue = %(queue)s AND attempted_at > %(since)s"
                )
            row = conn.execute(query, {**params, "since": since}).fetchone()
            if row is not None:
                rate_used = int(row[0])
                rate_next = row[1] + timedelta(seconds=rate_limit.period) if row[1] is not None else None
        ahead = higher = 0
        if job.state == "available":
            row = conn.execute(
                self._sql(
                    "SELECT count(*), count(*) FILTER (WHERE priority < %(p)s) FROM ("
                    " SELECT priority FROM {jobs} WHERE state = 'available' AND queue = %(q)s"
                    " AND (priority, scheduled_at, id) < (%(p)s, %(s)s, %(id)s) LIMIT 100000) AS ahead"
                ),
                {"p": job.priority, "q": job.queue, "s": job.scheduled_at, "id": job.id},
            ).fetchone()
            if row is not None:
                ahead, higher = int(row[0]), int(row[1])
        return WaitFacts(
            queue_nodes=tuple(p["name"] for p, _, _ in effective),
            paused_nodes=tuple(p["name"] for p, paused, _ in effective if paused),
            paused_everywhere=bool(star.get("paused")),
            executing_in_queue=sum(int(n) for _, n in holders),
            local_limit_total=sum(limit for _, _, limit in effective),
            global_limit=global_limit,
            holders=tuple((str(name), int(n)) for name, n in holders),
            rate_limit=rate_limit,
            rate_used=rate_used,
            rate_next_at=rate_next,
            ahead=ahead,
            ahead_higher_priority=higher,
        )

    # -- nodes, audit, workflows -------------------------------------------------------------
    def nodes(self) -> NodesSnapshot:
        """Every registered node with its lease, leadership and queues."""
        with self.transaction() as conn:
            now = self._now(conn)
            settings = self._settings(conn)
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(self._sql(
                    "SELECT n.id::text AS id, n.name, n.host, n.pid, n.started_at, n.heartbeat_at,"
                    " coalesce(l.node_id = n.id AND l.expires_at > %(now)s, false) AS leader"
                    " FROM {nodes} n LEFT JOIN {leader} l ON l.node_id = n.id"
                    " ORDER BY n.name, n.started_at, n.id"
                ), {"now": now})
                nodes = list(cur.fetchall())
                cur.execute(self._sql(
                    "SELECT p.node_id::text AS node_id, p.queue, p.local_limit, p.paused, p.running, n.name"
                    " FROM {producers} p JOIN {nodes} n ON n.id = p.node_id ORDER BY p.queue"
                ))
                producers = list(cur.fetchall())
            executing = {
                n: int(c) for n, c in conn.execute(self._sql(
                    "SELECT node_id::text, count(*) FROM {jobs} WHERE state = 'executing' GROUP BY 1"
                )).fetchall()
            }
            rows = []
            for n in nodes:
                queues = []
                for p in producers:
                    if p["node_id"] != n["id"]:
                        continue
                    paused, limit = self._effective(p, settings)
                    queues.append(NodeQueue(p["queue"], limit, paused, int(p["running"])))
                rows.append(NodeRow(
                    id=n["id"], name=n["name"], host=n["host"], pid=n["pid"], started_at=n["started_at"],
                    heartbeat_at=n["heartbeat_at"], leader=bool(n["leader"]), queues=tuple(queues),
                    executing=executing.get(n["id"], 0),
                ))
            return NodesSnapshot(now=now, cluster=self._cluster(conn, now), nodes=tuple(rows))

    def audit(self, limit: int = AUDIT_ROWS) -> AuditSnapshot:
        """The newest audit rows."""
        with self.transaction() as conn:
            now = self._now(conn)
            rows = conn.execute(
                self._sql(
                    "SELECT id, at, actor, action, targets, outcome, filter, detail FROM {audit}"
                    " ORDER BY at DESC, id DESC LIMIT %s"
                ),
                (limit,),
            ).fetchall()
            return AuditSnapshot(
                now=now, cluster=self._cluster(conn, now),
                rows=tuple(
                    AuditRow(id=r[0], at=r[1], actor=r[2], action=r[3],
                             targets=tuple(r[4]) if isinstance(r[4], list) else (r[4],),
                             outcome=r[5], filter=r[6], detail=r[7])
                    for r in rows
                ),
            )

    def workflows(self, limit: int = WORKFLOW_ROWS) -> WorkflowsSnapshot:
        """The newest workflows with their steps counted by state."""
        with self.transaction() as conn:
            now = self._now(conn)
            rows = conn.execute(
                self._sql(
                    "WITH recent AS ("
                    " SELECT workflow_id, min(id) AS first FROM {jobs} WHERE workflow_id IS NOT NULL"
                    " GROUP BY workflow_id ORDER BY min(id) DESC LIMIT %s)"
                    " SELECT j.workflow_id::text, max(j.workflow_name), j.state::text, count(*), min(j.inserted_at),"
                    " min(r.first)"
                    " FROM {jobs} j JOIN recent r ON r.workflow_id = j.workflow_id"
                    " GROUP BY 1, 3 ORDER BY 6 DESC, 3"
                ),
                (limit,),
            ).fetchall()
            grouped: dict[str, dict[str, Any]] = {}
            for wid, name, state, n, inserted, _first in rows:
                g = grouped.setdefault(wid, {"name": name or "", "states": {}, "inserted": inserted})
                g["states"][state] = int(n)
                g["inserted"] = min(g["inserted"], inserted)
            out = tuple(
                WorkflowRow(
                    id=wid, name=g["name"], total=sum(g["states"].values()),
                    by_state=tuple((s, g["states"][s]) for s in STATES if s in g["states"]),
                    inserted_at=g["inserted"],
                )
                for wid, g in grouped.items()
            )
            return WorkflowsSnapshot(now=now, cluster=self._cluster(conn, now), rows=out)

    def workflow(self, workflow_id: str) -> WorkflowSnapshot:
        """One workflow's steps."""
        with self.transaction() as conn:
            now = self._now(conn)
            rows = conn.execute(
                self._sql(
                    "SELECT id, coalesce(workflow_step, id::text), state::text, workflow_deps, workflow_name"
                    " FROM {jobs} WHERE workflow_id = %s::uuid ORDER BY id LIMIT 500"
                ),
                (workflow_id,),
            ).fetchall()
            name = next((r[4] for r in rows if r[4]), "")
            return WorkflowSnapshot(
                now=now, cluster=self._cluster(conn, now), workflow_id=workflow_id, name=name,
                steps=tuple(Step(int(i), s, st, tuple(d or ())) for i, s, st, d, _ in rows),
            )
