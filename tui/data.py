"""Read-only data access for the dashboard: each method runs a few bounded queries and returns a
frozen snapshot.

Every read runs in a read-only transaction with a statement timeout. All values are bound
parameters and the schema is quoted with ``psycopg.sql``; filters arrive parsed
(``tui.filters``) and are mapped to fixed SQL fragments here. Every rule about the engine's
tables (counts and their estimates, settings in force, node liveness, limits, job rows) is the
engine's read model's (``engine.Inspector``); this module adds the filter language and paging.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from engine import (
    FINAL_STATES,
    UNSETTLED,
    Counts,
    DatabaseUnavailable,
    Engine,
    GlobalLimit,
    Job,
    JobState,
    ProducerStatus,
    QueueSetting,
    RateLimit,
    SentNotification,
    attempts,
    state_list,
)

from .charts import SPANS, ChartsSnapshot, Subject
from .filters import Filter, Term
from .model import (
    STATES,
    WAITING_STATES,
    AuditRow,
    AuditSnapshot,
    Cluster,
    Count,
    CronsSnapshot,
    JobDetail,
    JobDetailSnapshot,
    JobRow,
    JobsSnapshot,
    NodeQueue,
    NodeRow,
    NodesSnapshot,
    QueueDetailSnapshot,
    QueueNode,
    QueueRow,
    QueuesSnapshot,
    Selection,
    Sort,
    Step,
    WaitFacts,
    WorkflowRow,
    WorkflowSnapshot,
    WorkflowsSnapshot,
)

log = logging.getLogger("lysmore.tui")

STATS_MINUTES = 30
PAGE_SIZE = 100
SELECT_CAP = 10_000
AUDIT_ROWS = 200
NOTIFICATION_ROWS = 50
QUEUE_JOBS = 50  # the newest jobs the queue detail lists (the Jobs view, filtered, pages on)
WORKFLOW_ROWS = 100
QUEUE_STATES = ("available", "scheduled", "retryable", "executing")
Clock = Callable[[], datetime]

_OPS = {op: sql.SQL(op) for op in ("=", ">", ">=", "<", "<=")}
_AGE_OPS = {">": sql.SQL("<"), ">=": sql.SQL("<="), "<": sql.SQL(">"), "<=": sql.SQL(">=")}
_NUMBER_COLUMNS = {"priority": ("priority", "int"), "id": ("id", "bigint"), "attempt": ("attempt", "int")}
# Filter fields a filter index (migration 5) serves; age, state, queue and id have none there.
_SERVED = frozenset({"worker", "text", "node", "tag", "attempt", "priority", "error", "args", "meta"})
_JOB_COLUMNS = sql.SQL(
    "id, state::text, queue, worker, attempt, max_attempts, priority, left(args::text, 200), tags, inserted_at,"
    " scheduled_at, attempted_at, coalesce(completed_at, cancelled_at, discarded_at), attempted_by[1],"
    " left(errors -> -1 ->> 'error', 200)"
)
# The filter indexes (migration 5) skip the engine's unsettled states; these two conditions, spelled
# as the indexes' predicates are, split a search into the part they hold and the rest.
_SETTLED = sql.SQL("state NOT IN ({})").format(state_list(UNSETTLED))
_UNSETTLED = sql.SQL("state IN ({})").format(state_list(UNSETTLED))
# The two sides of the jobs table (migration 6), by their states: a condition on one of these reads
# that side only.
_FINISHED = sql.SQL("state IN ({})").format(state_list(FINAL_STATES))
_WAITING = sql.SQL("state IN ({})").format(state_list(frozenset(JobState) - FINAL_STATES - UNSETTLED))
_LIVE = sql.SQL("state IN ({})").format(state_list(frozenset(JobState) - FINAL_STATES))
RECENT_WINDOW = 5_000  # newest ids a filtered page reads in id order before it asks the filter's indexes
SPAN_GROWTH = 4  # each older span of ids a filtered page then searches is this many times the last
WORKER_NAMES_MAX = 1_000  # distinct workers a worker pattern is resolved against; beyond that, ILIKE on rows
# A sort no index returns in order (all but id) reads at most the newest this many ids of a big table:
# at a million jobs, reading 100,000 took 35 to 55 ms of a 50 ms budget; 50,000 about half that.
SORT_WINDOW = 50_000
# Sort keys as SQL: a job's duration is how long its last attempt ran (so far, while it executes);
# a job never attempted has none and sorts last either way (-1 longest first, infinity shortest
# first). Age sorts by insert time, the other way round. date_part, not extract: extract's numeric
# made the duration of each of a window's rows about a tenth dearer to compute.
_SORT_KEYS: dict[str, sql.Composable] = {
    "id": sql.SQL("id"),
    "attempt": sql.SQL("attempt"),
    "priority": sql.SQL("priority"),
    "age": sql.SQL("inserted_at"),
    "duration": sql.SQL(
        "coalesce(date_part('epoch', coalesce(CASE WHEN state = 'executing' THEN %(sort_now)s::timestamptz END,"
        " completed_at, cancelled_at, discarded_at) - attempted_at), %(sort_missing)s::float8)"
    ),
}
Cursor = tuple[Any, int]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _nest(path: Sequence[str], value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value


@dataclass(slots=True)
class _Where:
    """A compiled job filter: its conditions, their bound parameters, and whether an index returns
    the matches newest first (the filter pins one worker or one node, or a few: ``fanout``).

    ``hints`` are conditions every settled match (neither available nor executing) meets anyway,
    ``tags <> '{}'`` or the worker names a pattern resolves to, that let the planner use the
    filter indexes. They go only where settled jobs are searched through those indexes: the planner
    takes them for independent conditions, so elsewhere they would make it underestimate matches.
    """

    conds: list[sql.Composable] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    hints: list[sql.Composable] = field(default_factory=list)
    ordered: bool = False
    # (expression, parameter): a settled match has one of the values the parameter lists, and an
    # index on (expression, id) lists the settled jobs of each value newest first.
    fanout: tuple[sql.Composable, str] | None = None
    # Whether a filter index (migration 5) serves one of the terms: those indexes hold waiting jobs
    # too, so the live side is then searched in two parts, waiting jobs through them.
    served: bool = False

    def clause(self, hints: bool = False) -> sql.Composable:
        """The conditions joined with AND (``true`` when there are none)."""
        conds = [*self.conds, *self.hints] if hints else self.conds
        return sql.SQL(" AND ").join(conds) if conds else sql.SQL("true")


class Store:
    """The dashboard's read side over one engine instance (prefix)."""

    def __init__(self, engine: Engine, clock: Clock | None = None, timeout_ms: int = 5000) -> None:
        self.engine = engine
        self.inspector = engine.inspect()
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.prefix = engine.prefix
        self.schema = sql.Identifier(engine.prefix)
        self.t = {name: self.inspector.table(name) for name in ("jobs", "audit", "stats_minutely")}
        self.state_type = self.inspector.state_type
        self._filter_indexes = False
        self.closed = False

    def close(self) -> None:
        """Read no more: the app is closing. A read still running in a worker thread would otherwise
        open the engine's pool again after the app closed it, and leave those connections behind."""
        self.closed = True

    # -- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A read-only transaction with the dashboard's statement timeout."""
        if self.closed:
            raise DatabaseUnavailable("the dashboard is closing: it reads no more")
        with self.engine.connection() as conn, conn.transaction():
            # One round trip (a read waits for the GIL after each one while the screen is drawn).
            # Plans depend on the values (a rare worker or a common one): never a generic plan,
            # even for statements psycopg has prepared.
            # One snapshot for every statement of a read (repeatable read), so counts read one after
            # the other agree: an executing count and the limits beside it are of the same moment.
            conn.execute(sql.SQL(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = {};"
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

    # -- header -------------------------------------------------------------------------------
    def _cluster(self, conn: psycopg.Connection, now: datetime) -> Cluster:
        summary = self.inspector.summary(conn, now)
        return Cluster(nodes=summary.live_nodes, leader=summary.leader)

    @staticmethod
    def _state_counts(counts: Counts) -> dict[str, Count]:
        """Jobs per state over every queue, each marked exact or estimated as the engine counted it."""
        return {s: Count(counts.total(s), counts.exact(s)) for s in STATES}

    # -- queues -------------------------------------------------------------------------------
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
        self, conn: psycopg.Connection, now: datetime, counts: Counts, only: str | None = None
    ) -> tuple[list[QueueRow], list[ProducerStatus], dict[tuple[str, str], QueueSetting], dict[tuple[str, str], int]]:
        settings = self.inspector.settings(conn, only)
        producers = self.inspector.producers(conn, now, only, settings=settings)
        executing = {(q, str(node or "")): n for (q, node), n in self.inspector.executing(conn, only).items()}
        stats = self._stats(conn, now)
        names = {p.queue for p in producers} | {q for q, _ in settings} | set(stats)
        names |= set(counts.by_queue) | {q for q, _ in executing}
        if only is not None:
            names = {only} & names
        ordered = sorted(names)
        oldest = self._oldest_available(conn, ordered)
        rows = []
        for name in ordered:
            mine = [p for p in producers if p.queue == name]
            every = settings.get((name, "*"))
            global_limit, rate_limit = self.inspector.queue_limits(name, producers, settings)
            done, failed = stats.get(name, ([0] * STATS_MINUTES, [0] * STATS_MINUTES))

            def count(state: str, queue: str = name) -> Count:
                """A queue with no jobs in ``state`` (none found) has exactly none."""
                n = counts.get(queue, state)
                return Count(n, counts.exact(state) or not n)

            # Jobs still marked executing by a node whose lease lapsed (until the lifeline rescues them)
            # are not within any live node's limit: counted apart, so exec/limit never reads 61/60.
            live = {str(p.node_id) for p in mine}
            rows.append(QueueRow(
                name=name,
                executing=sum(n for (q, node), n in executing.items() if q == name and node in live),
                orphaned=sum(n for (q, node), n in executing.items() if q == name and node not in live),
                local_limit=sum(p.local_limit for p in mine),
                nodes=len(mine),
                nodes_paused=sum(1 for p in mine if p.paused),
                paused_everywhere=bool(every and every.paused),
                available=count("available"),
                scheduled=count("scheduled"),
                retryable=count("retryable"),
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
            counts = self.inspector.counts(conn, states=QUEUE_STATES)
            rows, *_ = self._queue_rows(conn, now, counts)
            return QueuesSnapshot(
                now=now, cluster=self._cluster(conn, now), states=tuple(self._state_counts(counts).items()),
                queues=tuple(rows),
            )

    def queue_detail(self, queue: str) -> QueueDetailSnapshot:
        """One queue with a row per live node running it."""
        with self.transaction() as conn:
            now = self._now(conn)
            rows, producers, settings, executing = self._queue_rows(conn, now, self.inspector.counts(conn, states=QUEUE_STATES), only=queue)
            nodes = tuple(
                QueueNode(
                    node_id=str(p.node_id), name=p.node, host=p.host, local_limit=p.local_limit,
                    executing=executing.get((queue, str(p.node_id)), 0), paused=p.paused,
                    heartbeat_at=p.heartbeat_at, live=p.live,
                )
                for p in producers
            )
            every = settings.get((queue, "*"))
            flt = Filter(f"queue:{queue}", (Term("queue", (queue,)),))
            where = self._job_where(conn, None, flt, now, None)
            jobs = _job_rows(self._page(conn, where, True, None, QUEUE_JOBS))
            return QueueDetailSnapshot(
                now=now, cluster=self._cluster(conn, now), queue=rows[0] if rows else None, nodes=nodes,
                setting_paused=every.paused if every else None, setting_limit=every.local_limit if every else None,
                jobs=jobs,
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
            where.served = where.served or (indexed and not term.negated and term.field in _SERVED)
            if term.negated:
                cond = sql.SQL("NOT coalesce(({}), false)").format(cond)
            where.conds.append(cond)
        if len(flt.terms) != 1:  # with more terms, let spans find them
            where.ordered, where.fanout = False, None
        return where

    def _has_filter_indexes(self, conn: psycopg.Connection) -> bool:
        """Whether this schema has migration 5 (the filter indexes); remembered once true."""
        if not self._filter_indexes:
            self._filter_indexes = self._exists(conn, "regprocedure", "lysmore_error_text(jsonb)")
        return self._filter_indexes

    def _worker_names(
        self, conn: psycopg.Connection, patterns: Sequence[str]
    ) -> tuple[list[str], list[str]] | None:
        """The distinct workers of jobs the worker index holds that match any ILIKE pattern, and all
        of them, found by skipping through it (one probe per worker); None when there are too many
        to list."""
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
        return [name for name, hit in rows if hit], [name for name, _ in rows]

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
            found = self._worker_names(conn, params[name]) if conn is not None and not term.negated else None
            if found is not None:  # a settled match has one of these workers: the worker index's terms
                names, known = found
                hint = sql.Placeholder(f"{name}_w")
                params[f"{name}_w"] = names[0] if len(names) == 1 else names
                where.hints.append(
                    sql.SQL("false") if not names
                    else sql.SQL("worker = {}").format(hint) if len(names) == 1
                    else sql.SQL("worker = ANY({}::text[])").format(hint)
                )
                where.ordered = True
                if len(names) > 1:
                    where.fanout = (sql.SQL("worker"), f"{name}_w")
                # The same rows, with ILIKE only for a worker the index does not list (one that never
                # settled a job): a list lookup costs far less than ILIKE on every job, and a live
                # side of available jobs has no worker index.
                params[f"{name}_hit"], params[f"{name}_known"] = names, known
                return sql.SQL(
                    "(worker = ANY({}::text[]) OR (worker <> ALL({}::text[]) AND worker ILIKE ANY({}::text[])))"
                ).format(sql.Placeholder(f"{name}_hit"), sql.Placeholder(f"{name}_known"), p)
            return sql.SQL("worker ILIKE ANY({}::text[])").format(p)
        if field == "node":
            # attempted_by IS NOT NULL: the node index holds only jobs that were attempted.
            if len(term.values) == 1:
                params[name] = term.values[0]
                where.ordered = where.ordered or (conn is not None and not term.negated)
                return sql.SQL("attempted_by IS NOT NULL AND attempted_by[1] = {}::text").format(p)
            params[name] = list(term.values)
            if conn is not None and not term.negated:
                where.ordered, where.fanout = True, (sql.SQL("attempted_by[1]"), name)
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
        so that the planner never walks the whole table in id order looking for them). With a
        ``fanout``, the settled ones are the newest of each value, each read in index order."""
        settled = self._sql(
            "SELECT id FROM {jobs} WHERE {hinted} AND {settled} ORDER BY id DESC LIMIT %(limit)s",
            hinted=where.clause(hints=True), settled=_SETTLED,
        )
        if where.fanout is not None:
            expr, values = where.fanout
            settled = self._sql(
                "SELECT v.id FROM unnest({values}::text[]) AS k(value),"
                " LATERAL (SELECT id FROM {jobs} WHERE {expr} = k.value AND {where} AND {settled}"
                "          ORDER BY id DESC LIMIT %(limit)s) AS v"
                " ORDER BY v.id DESC LIMIT %(limit)s",
                values=sql.Placeholder(values), expr=expr, where=where.clause(), settled=_SETTLED,
            )
        return self._sql(
            "WITH rest AS MATERIALIZED (SELECT id FROM {jobs} WHERE {where} AND {unsettled})"
            " SELECT {cols} FROM {jobs} WHERE id IN (({settled_ids}) UNION ALL"
            " (SELECT id FROM rest ORDER BY id DESC LIMIT %(limit)s)"
            ") ORDER BY id DESC LIMIT %(limit)s",
            cols=cols, settled_ids=settled, where=where.clause(), unsettled=_UNSETTLED,
        )

    def _page(
        self, conn: psycopg.Connection, where: _Where, filtered: bool, before: int | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` matching jobs, newest first.

        Unfiltered lists are one ordered query, and so are filters an index returns newest first
        (workers, nodes). Other filters read the newest ``RECENT_WINDOW`` ids in id order, which
        fills the page when matches are common. When it does not, matches are rare or old, and
        walking the primary key further could read the whole table, so one more statement searches
        the live side whole (once, or in two parts when a filter index serves the filter) and the
        finished side's older ids in spans, each ``SPAN_GROWTH`` times
        the last, newest first: in each span the filter's indexes collect the matches (bitmaps
        only, so the planner cannot go back to the id order), which are sorted. A span costs about
        its matches, and the search stops at the first span that fills the page.
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
        if len(rows) >= limit:
            return rows
        # The rest in one statement, planned once. The live side (jobs that can still run, as many
        # as the backlog) is searched whole, not in spans, which would cost a scan each where it has
        # no index for the filter (age, say): its waiting jobs through the filter indexes when one
        # serves the filter, else together with the others, one scan rather than two. The finished
        # side is taken in spans, newest first, each searched in turn (a lateral subquery) until
        # the LIMIT has its rows, which stops there: a span's rows arrive sorted and the spans in
        # order, so that LIMIT keeps the side's newest. The last span, all the rest, is searched
        # through the filter's indexes alone: an id range as wide as most of the table only makes
        # their bitmaps lossy. The newest of both sides are the page.
        live = (
            " (SELECT id FROM {jobs} WHERE {hinted} AND {waiting} AND id < %(lo)s ORDER BY id DESC LIMIT %(limit)s)"
            " UNION ALL"
            " (SELECT id FROM {jobs} WHERE {where} AND {unsettled} AND id < %(lo)s ORDER BY id DESC LIMIT %(limit)s)"
            if where.served
            else " (SELECT id FROM {jobs} WHERE {where} AND {live} AND id < %(lo)s ORDER BY id DESC LIMIT %(limit)s)"
        )
        older = self._sql(
            "SELECT {cols} FROM {jobs} WHERE id IN ("
            + live
            + " UNION ALL"
            " (SELECT found.id FROM unnest(%(span_lo)s::bigint[], %(span_hi)s::bigint[]) AS span(lo, hi), LATERAL ("
            "   SELECT id FROM {jobs} WHERE {hinted} AND {finished} AND id >= span.lo AND id < span.hi"
            "   ORDER BY id DESC LIMIT %(limit)s) AS found"
            "  UNION ALL"
            "  (SELECT id FROM {jobs} WHERE {hinted} AND {finished} AND (id < %(rest)s) IS TRUE"
            "   ORDER BY id DESC LIMIT %(limit)s)"
            "  LIMIT %(limit)s)"
            ") ORDER BY id DESC LIMIT %(limit)s",
            cols=_JOB_COLUMNS, hinted=where.clause(hints=True), where=where.clause(), waiting=_WAITING,
            finished=_FINISHED, unsettled=_UNSETTLED, live=_LIVE,
        )
        spans: list[tuple[int, int]] = []
        hi, size = params["lo"], RECENT_WINDOW * SPAN_GROWTH
        while hi - size > 0:
            spans.append((hi - size, hi))
            hi, size = hi - size, size * SPAN_GROWTH
        params.update(limit=limit - len(rows), span_lo=[lo for lo, _ in spans], span_hi=[h for _, h in spans],
                      rest=hi)
        # In a span, a plain index scan would be the primary key walked over the whole span (the
        # planner prices it low because ids follow the heap): only bitmaps, which intersect. One
        # round trip for the three statements.
        with conn.pipeline():
            conn.execute("SET LOCAL enable_indexscan = off")
            cur = conn.execute(older, params)
            conn.execute("RESET enable_indexscan")
        return rows + cur.fetchall()

    def jobs(
        self, state: str | None = None, flt: Filter | None = None, before: int | None = None,
        page: int = 1, limit: int = PAGE_SIZE, sort: Sort | None = None, after: Cursor | None = None,
    ) -> JobsSnapshot:
        """One page of jobs, newest first after the id ``before``, or in ``sort``'s order after the
        (sort value, id) ``after`` (keyset paging either way)."""
        flt = flt or Filter()
        sort = sort or Sort()
        with self.transaction() as conn:
            now = self._now(conn)
            states = self._state_counts(self.inspector.counts(conn, states=()))
            window: int | None = None
            if sort.newest_first:
                before = after[1] if after is not None else before
                where = self._job_where(conn, state, flt, now, before)
                rows = self._page(conn, where, bool(flt), before, limit + 1)
            else:
                where = self._job_where(conn, state, flt, now, None)
                window = self._sort_window(conn, sort, state, states, where)
                rows = self._sorted_page(conn, where, sort, now, after, limit + 1)
            jobs = _job_rows(rows[:limit])
            total = states[state] if state else Count(
                sum(c.value for c in states.values()), all(c.exact for c in states.values())
            )
            last = rows[min(limit, len(rows)) - 1] if rows else None
            next_cursor = None if last is None else (
                (last[-1], last[0]) if not sort.newest_first else (last[0], last[0])
            )
            return JobsSnapshot(
                now=now, cluster=self._cluster(conn, now), state=state, filter_text=flt.text, rows=jobs,
                has_more=len(rows) > limit, page=page, states=tuple(states.items()), total=total,
                sort=sort, next_cursor=next_cursor, sort_window=window,
            )

    def _sort_window(
        self, conn: psycopg.Connection, sort: Sort, state: str | None, states: dict[str, Count], where: _Where
    ) -> int | None:
        """Bound a sort no index returns in order: over the newest ``SORT_WINDOW`` ids when the jobs
        it would read (the state's, or the whole table's) are more than that; None when all are read."""
        reads = states[state].value if state else sum(c.value for c in states.values())
        if sort.key == "id" or reads <= SORT_WINDOW:  # the primary key lists ids in order
            return None
        where.params["window_lo"] = self._top(conn, None) - SORT_WINDOW
        where.conds.append(sql.SQL("id >= {}").format(sql.Placeholder("window_lo")))
        return SORT_WINDOW

    def _sorted_page(
        self, conn: psycopg.Connection, where: _Where, sort: Sort, now: datetime, after: Cursor | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` matching jobs in ``sort``'s order, after the keyset ``after`` (sort value,
        id); each row ends with its sort value, the next page's cursor."""
        key = _SORT_KEYS[sort.key]
        ascending = sort.ascending_sql
        params: dict[str, Any] = {**where.params, "limit": limit, "sort_now": now,
                                  "sort_missing": math.inf if ascending else -1.0}
        conds = [where.clause()]
        if after is not None:
            params["after_key"], params["after_id"] = after
            conds.append(sql.SQL("({}, id) {} (%(after_key)s, %(after_id)s)").format(
                key, sql.SQL(">" if ascending else "<")))
        direction = sql.SQL("ASC" if ascending else "DESC")
        # The page's ids and sort values first, then the listed columns of those rows only: the
        # columns (args as text, the last error) cost more to make than the sort itself, and a sort
        # over its window makes them for every row it reads (at a million jobs, a sort of the
        # newest 100,000 by duration took 121 ms one way and 58 ms this way).
        query = self._sql(
            "SELECT {cols}, page.sort_key FROM ("
            " SELECT id AS page_id, {key} AS sort_key FROM {jobs} WHERE {where}"
            " ORDER BY sort_key {dir}, id {dir} LIMIT %(limit)s"
            ") AS page JOIN {jobs} ON id = page.page_id ORDER BY page.sort_key {dir}, page.page_id {dir}",
            cols=_JOB_COLUMNS, key=key, where=sql.SQL(" AND ").join(conds), dir=direction,
        )
        return conn.execute(query, params).fetchall()

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
            found = self.inspector.job(job_id, conn)
            if found is None:
                return JobDetailSnapshot(now=now, cluster=cluster, job_id=job_id, job=None)
            job = _detail(found)
            steps: tuple[Step, ...] = ()
            if found.workflow_id is not None:
                steps = _steps(self.inspector.workflow_steps(found.workflow_id, conn))
            facts = self._wait_facts(conn, now, job) if job.state in WAITING_STATES else WaitFacts()
            return JobDetailSnapshot(now=now, cluster=cluster, job_id=job_id, job=job, steps=steps, facts=facts)

    def _exists(self, conn: psycopg.Connection, kind: str, name: str) -> bool:
        """Whether a table (``regclass``) or function (``regprocedure``) of this schema exists yet."""
        qualified = f"{sql.Identifier(self.prefix).as_string(conn)}.{name}"
        func = {"regclass": "to_regclass", "regprocedure": "to_regprocedure"}[kind]
        row = conn.execute(sql.SQL("SELECT {}(%s) IS NOT NULL").format(sql.Identifier(func)), (qualified,)).fetchone()
        return bool(row and row[0])

    def _partition_sql(self, limit: GlobalLimit | RateLimit, params: dict[str, Any], tag: str,
                       worker: sql.Composable, args: sql.Composable) -> sql.Composable:
        """The engine's partition key of a job (``lysmore_partition``) for ``limit``, as SQL."""
        assert limit.partition is not None
        params.update(limit.partition.params(tag))
        return sql.SQL("{}.lysmore_partition({}, {}, {}, {}, {}::text[])").format(
            self.schema, worker, args, sql.Placeholder(f"{tag}_worker"), sql.Placeholder(f"{tag}_args"),
            sql.Placeholder(f"{tag}_keys"),
        )

    def _wait_facts(self, conn: psycopg.Connection, now: datetime, job: JobDetail) -> WaitFacts:
        settings = self.inspector.settings(conn, job.queue)
        producers = self.inspector.producers(conn, now, job.queue, settings=settings)
        every = settings.get((job.queue, "*"))
        global_limit, rate_limit = self.inspector.queue_limits(job.queue, producers, settings)
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
        if rate_limit is not None:
            since = now - timedelta(seconds=rate_limit.period)
            if self._exists(conn, "regclass", "lysmore_rate_log"):
                where: sql.Composable = sql.SQL("true")
                if rate_limit.partitioned and partition_fn:
                    where = sql.SQL("partition = {}").format(self._partition_sql(
                        rate_limit, params, "r", sql.Placeholder("worker"),
                        sql.SQL("{}::jsonb").format(sql.Placeholder("args")),
                    ))
                query: sql.Composed = sql.SQL(
                    "SELECT count(*), min(started_at) FROM {}"
                    " WHERE queue = %(queue)s AND started_at > %(since)s AND {}"
                ).format(self.inspector.table("rate_log"), where)
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
            queue_nodes=tuple(p.node for p in producers),
            paused_nodes=tuple(p.node for p in producers if p.paused),
            paused_everywhere=bool(every and every.paused),
            executing_in_queue=sum(int(n) for _, n in holders),
            local_limit_total=sum(p.local_limit for p in producers),
            global_limit=global_limit,
            holders=tuple((str(name), int(n)) for name, n in holders),
            rate_limit=rate_limit,
            rate_used=rate_used,
            rate_next_at=rate_next,
            ahead=ahead,
            ahead_higher_priority=higher,
        )

    # -- charts -------------------------------------------------------------------------------
    def charts(self, subject: Subject, span: str) -> ChartsSnapshot:
        """The rollups of ``subject`` over the last hour or day of complete minutes, and the queues
        and workers that have rollups in the last day."""
        if span not in SPANS:
            raise ValueError(f"a chart spans {' or '.join(SPANS)}, not {span!r}")
        slots, step = SPANS[span]
        with self.transaction() as conn:
            now = self._now(conn)
            end = now.replace(second=0, microsecond=0)
            start = end - timedelta(seconds=slots * step)
            series = self.inspector.rollups(start, slots, step, queue=subject.queue, worker=subject.worker, conn=conn)
            queues, workers = self.inspector.rollup_names(end - timedelta(days=1), conn=conn)
            return ChartsSnapshot(now=now, subject=subject, span=span, series=series, queues=tuple(queues),
                                  workers=tuple(workers), cluster=self._cluster(conn, now))

    # -- nodes, audit, workflows -------------------------------------------------------------
    def nodes(self) -> NodesSnapshot:
        """Every registered node with its lease, leadership and queues."""
        with self.transaction() as conn:
            now = self._now(conn)
            producers = self.inspector.producers(conn, now, live_only=False)
            executing: dict[str, int] = {}
            for (_, node), n in self.inspector.executing(conn).items():
                executing[str(node)] = executing.get(str(node), 0) + n
            rows = tuple(
                NodeRow(
                    id=str(n.id), name=n.name, host=n.host, pid=n.pid, started_at=n.started_at,
                    heartbeat_at=n.heartbeat_at, leader=n.leader, live=n.live, executing=executing.get(str(n.id), 0),
                    queues=tuple(NodeQueue(p.queue, p.local_limit, p.paused, p.running)
                                 for p in producers if p.node_id == n.id),
                )
                for n in self.inspector.nodes(conn, now)
            )
            return NodesSnapshot(now=now, cluster=self._cluster(conn, now), nodes=rows)

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
                now=now, cluster=self._cluster(conn, now), notifications=self._notifications(conn),
                rows=tuple(
                    AuditRow(id=r[0], at=r[1], actor=r[2], action=r[3],
                             targets=tuple(r[4]) if isinstance(r[4], list) else (r[4],),
                             outcome=r[5], filter=r[6], detail=r[7])
                    for r in rows
                ),
            )

    def _notifications(self, conn: psycopg.Connection) -> tuple[SentNotification, ...]:
        """The reporter's newest notifications; none where the prefix predates them (migration 10)."""
        row = conn.execute("SELECT to_regclass(%s)", [self.inspector.table("notifications").as_string(conn)]).fetchone()
        if row is None or row[0] is None:
            return ()
        return tuple(self.inspector.notifications(NOTIFICATION_ROWS, conn))

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
            jobs = self.inspector.workflow_steps(workflow_id, conn)
            return WorkflowSnapshot(
                now=now, cluster=self._cluster(conn, now), workflow_id=workflow_id,
                name=next((j.workflow_name for j in jobs if j.workflow_name), ""), steps=_steps(jobs),
            )

    # -- crons --------------------------------------------------------------------------------
    def crons(self) -> CronsSnapshot:
        """Every cron entry a leader recorded, with its last and next run and its newest runs."""
        with self.transaction() as conn:
            now = self._now(conn)
            return CronsSnapshot(now=now, cluster=self._cluster(conn, now),
                                 entries=tuple(self.inspector.crons(conn, now)))


def _job_rows(rows: Sequence[tuple[Any, ...]]) -> tuple[JobRow, ...]:
    """Rows of ``_JOB_COLUMNS`` (and anything after them) as the jobs tables show them."""
    return tuple(
        JobRow(
            id=r[0], state=r[1], queue=r[2], worker=r[3], attempt=r[4], max_attempts=r[5], priority=r[6],
            args_preview=r[7] or "", tags=tuple(r[8] or ()), inserted_at=r[9], scheduled_at=r[10],
            attempted_at=r[11], finished_at=r[12], node=r[13], last_error=r[14],
        )
        for r in rows
    )


def _steps(jobs: Sequence[Job]) -> tuple[Step, ...]:
    """A workflow's steps as the dashboard shows them (a step without a name goes by its id)."""
    return tuple(Step(j.id, j.workflow_step or str(j.id), j.state.value, tuple(j.workflow_deps)) for j in jobs)


def _detail(job: Job) -> JobDetail:
    """The engine's job as the job detail screen shows it."""
    return JobDetail(
        id=job.id, state=job.state.value, queue=job.queue, worker=job.worker, args=job.args, meta=job.meta,
        tags=tuple(job.tags), priority=job.priority, attempt=job.attempt, max_attempts=job.max_attempts,
        errors=tuple(attempts(job)), result=job.result, inserted_at=job.inserted_at, scheduled_at=job.scheduled_at,
        attempted_at=job.attempted_at, completed_at=job.completed_at, cancelled_at=job.cancelled_at,
        discarded_at=job.discarded_at, node=job.attempted_by[0] if job.attempted_by else None,
        unique_key=job.unique_key, workflow_id=str(job.workflow_id) if job.workflow_id else None,
        workflow_name=job.workflow_name, workflow_step=job.workflow_step, workflow_deps=tuple(job.workflow_deps),
    )
