"""``lysmore bench --dashboard``: time every read the dashboard refreshes with, filters included,
on a throwaway schema seeded with a realistic million jobs.

The seed is one ``INSERT ... SELECT`` over ``generate_series``; every "random" choice is a hash of
the job id (``hashint8extended``), so two runs over the same row count see the same data. Besides
the usual spread it plants what makes filters hard: values that are common, rare, absent, and
common only among old jobs (a worker, a node and an error that had their day last week).
"""

from __future__ import annotations

import re
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from engine import Engine, InvalidConfig

from .data import Store
from .filters import parse_filter
from .model import SORT_KEYS, STATES, Sort

Progress = Callable[[str], None]

DEFAULT_ROWS = 1_000_000
DEFAULT_REPEAT = 5

QUEUES = ("default", "mailers", "media", "reports", "billing", "webhooks", "archive")
NODES = ("web-1", "web-2", "web-3", "web-4", "web-5", "web-6")

# (label, filter text, the Jobs screen's state list or None): every qualifier, where it matches many
# jobs, few and none, and for worker, node, args and error also many jobs that are all old.
FILTER_CASES: tuple[tuple[str, str, str | None], ...] = (
    ("state common", "state:completed", None),
    ("state rare", "state:executing", None),
    ("state several", "state:retryable,discarded", None),
    ("queue common", "queue:default", None),
    ("queue rare", "queue:archive", None),
    ("queue none", "queue:nope", None),
    ("worker common", "worker:Sync", None),
    ("worker rare", "worker:Audit", None),
    ("worker old", "worker:Backfill", None),
    ("worker none", "worker:Nope", None),
    ("worker several", "worker:Welcome,Thumbnail", None),
    ("worker several old", "worker:Backfill,Audit", None),
    ("bare word common", "Charge", None),
    ("bare word rare", "audit", None),
    ("bare word none", "nothing", None),
    ("node common", "node:web-1", None),
    ("node rare", "node:web-old-9", None),
    ("node old", "node:batch-1", None),
    ("node none", "node:nope", None),
    ("node several rare", "node:web-old-9,nope", None),
    ("tag common", "tag:billing", None),
    ("tag rare", "tag:vip", None),
    ("tag none", "tag:nope", None),
    ("priority", "priority:>5", None),
    ("priority rare", "priority:9", None),
    ("priority none", "priority:7", None),
    ("id one", "id:123456", None),
    ("id range", "id:<1000", None),
    ("attempt", "attempt:>=2", None),
    ("attempt none", "attempt:>10", None),
    ("age common", "age:>1h", None),
    ("age recent", "age:<1m", None),
    ("age none", "age:>30d", None),
    ("args common", "args.report:daily", None),
    ("args rare", "args.account_id:7", None),
    ("args rare string", 'args.account_id:"7"', None),
    ("args none", "args.account_id:999999", None),
    ("args key common", "args.email:*", None),
    ("args key old", "args.batch:*", None),
    ("args key none", "args.nokey:*", None),
    ("args nested none", "args.a.b:1", None),
    ("meta common", "meta.source:api", None),
    ("meta rare", "meta.trace_id:t4042", None),
    ("meta none", "meta.source:nope", None),
    ("meta key", "meta.cron:*", None),
    ("meta key none", "meta.nokey:*", None),
    ("error common", 'error:"timed out"', None),
    ("error rare", 'error:"example.com/4242"', None),
    ("error old", 'error:"upstream 503"', None),
    ("error none", 'error:"no such text"', None),
    ("negated common", "!queue:default", None),
    ("negated rare", "!state:completed", None),
    ("negated tag", "!tag:billing", None),
    ("combo state+worker", "state:retryable worker:Charge", None),
    ("combo queue+args", "queue:billing args.account_id:7", None),
    ("combo state+error", 'state:discarded error:"timed out"', None),
    ("combo tag+state", "tag:billing !state:completed", None),
    ("combo worker+node none", "worker:Audit node:web-6", None),
    ("side completed+worker rare", "worker:Audit", "completed"),
    ("side retryable+args", "args.account_id:7", "retryable"),
    ("side completed+error none", 'error:"no such text"', "completed"),
    ("side available+tag rare", "tag:vip", "available"),
)


@dataclass(frozen=True)
class Timing:
    """One measured dashboard read: median and worst of ``repeat`` runs, and how many rows it showed."""

    name: str
    kind: str
    median_ms: float
    max_ms: float
    rows: int


@dataclass
class DashboardBenchResult:
    """Every timing of one run, with what it ran on: ``rows`` jobs (estimated when not seeded)."""

    rows: int
    prefix: str
    seeded: bool
    seed_s: float
    repeat: int
    timings: list[Timing] = field(default_factory=list)

    @property
    def slowest(self) -> Timing | None:
        return max(self.timings, key=lambda t: t.median_ms, default=None)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["timings"] = [asdict(t) for t in sorted(self.timings, key=lambda t: -t.median_ms)]
        slowest = self.slowest
        data["slowest"] = asdict(slowest) if slowest else None
        return data


def _r(salt: int) -> str:
    """A uniform number in [0, 1) drawn from the job id ``g``: the same for every run."""
    return f"((hashint8extended(g, {salt}) & 2147483647)::float8 / 2147483648.0)"


# kind -> (queue, worker); the seed picks a kind per job.
KINDS = (
    ("default", "app.workers.Backfill"),     # 0: only in an old stretch of ids
    ("archive", "app.workers.Audit"),        # 1: rare
    ("default", "app.workers.Sync"),         # 2
    ("default", "app.workers.Report"),       # 3
    ("default", "app.workers.Cleanup"),      # 4
    ("mailers", "app.workers.Welcome"),      # 5
    ("mailers", "app.workers.Newsletter"),   # 6
    ("media", "app.workers.Thumbnail"),      # 7
    ("media", "app.workers.Resize"),         # 8
    ("reports", "app.workers.Export"),       # 9
    ("billing", "app.workers.Charge"),       # 10
    ("webhooks", "app.workers.Deliver"),     # 11
)

_SEED_TEMPLATE = """
INSERT INTO {jobs} (
    id, state, queue, worker, args, meta, tags, priority, attempt, max_attempts, errors,
    inserted_at, scheduled_at, attempted_at, completed_at, discarded_at, cancelled_at,
    attempted_by, node_id, workflow_id, workflow_name, workflow_step)
SELECT g, s.st::{state_t}, (%(queues)s::text[])[k.kind + 1], (%(workers)s::text[])[k.kind + 1],
       a.args, m.meta, t.tags, p.prio,
       CASE s.st WHEN 'completed' THEN 1 + e.n WHEN 'discarded' THEN e.n WHEN 'retryable' THEN e.n
                 WHEN 'executing' THEN 1 ELSE 0 END,
       CASE s.st WHEN 'discarded' THEN 3 ELSE 20 END,
       CASE WHEN e.n = 0 THEN '[]'::jsonb ELSE (
           SELECT jsonb_agg(jsonb_build_object(
               'attempt', i, 'at', b.ins + i * interval '1 minute', 'error', x.msg,
               'traceback', 'Traceback (most recent call last):' || chr(10) || '  File "app/workers.py", line '
                            || (40 + i) || ', in perform' || chr(10) || '    raise error' || chr(10) || x.msg)
               ORDER BY i)
           FROM generate_series(1, e.n) AS i,
           LATERAL (SELECT CASE
               WHEN b.burst_error THEN 'ConnectionError: upstream 503 during failover'
               ELSE (ARRAY['RuntimeError: connection refused', 'TimeoutError: gateway timed out',
                           'DeadlockDetected: deadlock detected', 'ValueError: card declined',
                           'HTTPError: 502 Bad Gateway from https://hooks.example.com/'
                               || (hashint8extended(g, 100 + i) & 1048575)])
                    [1 + (hashint8extended(g, 200 + i) & 2147483647) %% 5]
               END AS msg) AS x) END,
       b.ins,
       CASE s.st WHEN 'scheduled' THEN now() + R(11) * interval '2 hours'
                 WHEN 'retryable' THEN now() + R(11) * interval '10 minutes' ELSE b.ins END,
       CASE WHEN n.node IS NOT NULL THEN b.ins + interval '1 second' END,
       CASE s.st WHEN 'completed' THEN b.ins + interval '2 seconds' END,
       CASE s.st WHEN 'discarded' THEN b.ins + interval '3 seconds' END,
       CASE s.st WHEN 'cancelled' THEN b.ins + interval '4 seconds' END,
       CASE WHEN n.node IS NOT NULL THEN ARRAY[n.node, md5(n.node)::uuid::text] END,
       CASE WHEN n.node IS NOT NULL THEN md5(n.node)::uuid END,
       CASE WHEN (g / 4) %% 100 = 0 THEN md5('wf' || (g / 4))::uuid END,
       CASE WHEN (g / 4) %% 100 = 0 THEN 'ingest' END,
       CASE WHEN (g / 4) %% 100 = 0 THEN (ARRAY['fetch', 'resize', 'scan', 'publish'])[g %% 4 + 1] END
FROM generate_series(1, %(n)s::bigint) AS g,
LATERAL (SELECT now() - interval '7 days' + interval '7 days' * g / %(n)s AS ins,
                g > %(n)s * 0.97 AS recent,
                g BETWEEN %(n)s * 0.10 AND %(n)s * 0.15 AS burst_worker,
                g BETWEEN %(n)s * 0.20 AND %(n)s * 0.22 AS burst_node,
                g BETWEEN %(n)s * 0.30 AND %(n)s * 0.31 AS burst_error,
                R(1) AS r1, R(2) AS r2, R(3) AS r3, R(4) AS r4, R(5) AS r5) AS b,
LATERAL (SELECT CASE
    WHEN b.recent THEN CASE WHEN b.r1 < 0.003 THEN 'executing' WHEN b.r1 < 0.50 THEN 'available'
                            WHEN b.r1 < 0.70 THEN 'scheduled' WHEN b.r1 < 0.80 THEN 'retryable'
                            WHEN b.r1 < 0.83 THEN 'held' ELSE 'completed' END
    WHEN b.burst_error AND b.r1 < 0.5 THEN 'discarded'
    WHEN b.r1 < 0.945 THEN 'completed' WHEN b.r1 < 0.97 THEN 'discarded' WHEN b.r1 < 0.985 THEN 'cancelled'
    WHEN b.r1 < 0.99 THEN 'retryable' ELSE 'scheduled' END AS st) AS s,
LATERAL (SELECT CASE
    WHEN b.burst_worker AND b.r2 < 0.5 THEN 0
    WHEN g %% 20000 = 7 THEN 1
    WHEN b.r2 < 0.5 THEN CASE WHEN b.r3 < 0.5 THEN 2 WHEN b.r3 < 0.8 THEN 3 ELSE 4 END
    WHEN b.r2 < 0.7 THEN CASE WHEN b.r3 < 0.6 THEN 5 ELSE 6 END
    WHEN b.r2 < 0.8 THEN CASE WHEN b.r3 < 0.7 THEN 7 ELSE 8 END
    WHEN b.r2 < 0.88 THEN 9 WHEN b.r2 < 0.94 THEN 10 ELSE 11 END AS kind) AS k,
LATERAL (SELECT (b.r4 * 5000)::int AS account,
                (ARRAY['daily', 'weekly', 'monthly'])[1 + (hashint8extended(g, 6) & 255) %% 3] AS report) AS v,
LATERAL (SELECT CASE k.kind
    WHEN 0 THEN jsonb_build_object('batch', g / 1000)
    WHEN 1 THEN jsonb_build_object('account_id', v.account, 'full', true)
    WHEN 2 THEN jsonb_build_object('account_id', v.account)
    WHEN 3 THEN jsonb_build_object('account_id', v.account, 'report', v.report)
    WHEN 4 THEN '{{}}'::jsonb
    WHEN 5 THEN jsonb_build_object('email', 'user' || (hashint8extended(g, 7) & 65535) || '@example.com')
    WHEN 6 THEN jsonb_build_object('issue', g / 10000, 'email', 'user' || (hashint8extended(g, 7) & 65535)
                                   || '@example.com')
    WHEN 7 THEN jsonb_build_object('image', 'img' || g || '.png', 'w', 64 << ((hashint8extended(g, 8) & 255) %% 3)::int)
    WHEN 8 THEN jsonb_build_object('image', 'img' || g || '.png', 'size', 640)
    WHEN 9 THEN jsonb_build_object('account_id', v.account, 'report', v.report, 'format', 'csv')
    WHEN 10 THEN jsonb_build_object('account_id', v.account, 'cents', (hashint8extended(g, 9) & 65535))
    ELSE jsonb_build_object('url', 'https://hooks.example.com/' || (hashint8extended(g, 10) & 1023),
                            'event', 'invoice.paid')
    END AS args) AS a,
LATERAL (SELECT CASE WHEN g %% 1000 = 42 THEN jsonb_build_object('trace_id', 't' || g)
                     WHEN b.r5 < 0.10 THEN '{{"source": "api"}}'::jsonb
                     WHEN b.r5 < 0.15 THEN '{{"source": "cron", "cron": "nightly"}}'::jsonb
                     ELSE '{{}}'::jsonb END AS meta) AS m,
LATERAL (SELECT CASE WHEN k.kind IN (5, 6) THEN ARRAY['email']
                     WHEN k.kind = 10 AND R(12) < 0.2 THEN ARRAY['billing', 'priority']
                     WHEN k.kind = 10 THEN ARRAY['billing']
                     WHEN k.kind = 9 THEN ARRAY['reports']
                     ELSE ARRAY[]::text[] END
                || CASE WHEN g %% 10000 = 3 THEN ARRAY['vip'] ELSE ARRAY[]::text[] END AS tags) AS t,
LATERAL (SELECT CASE WHEN R(13) < 0.9 THEN 0
                     ELSE (ARRAY[1, 2, 5, 9])[1 + (hashint8extended(g, 14) & 255) %% 4] END AS prio) AS p,
LATERAL (SELECT CASE s.st WHEN 'discarded' THEN 3
                          WHEN 'retryable' THEN 1 + (hashint8extended(g, 15) & 255) %% 3
                          WHEN 'completed' THEN CASE WHEN R(16) < 0.04 THEN 1 ELSE 0 END
                          ELSE 0 END AS n) AS e,
LATERAL (SELECT CASE
    WHEN s.st NOT IN ('completed', 'discarded', 'retryable', 'executing')
         AND NOT (s.st = 'cancelled' AND R(17) < 0.3) THEN NULL
    WHEN b.burst_node THEN 'batch-1'
    WHEN g %% 25000 = 3 THEN 'web-old-9'
    ELSE 'web-' || (1 + (hashint8extended(g, 18) & 255) %% 6) END AS node) AS n
"""
_SEED_JOBS = re.sub(r"\bR\((\d+)\)", lambda m: _r(int(m.group(1))), _SEED_TEMPLATE)


def _seed(conn: psycopg.Connection, prefix: str, rows: int) -> None:
    """Fill the migrated, empty schema ``prefix`` with ``rows`` jobs and the tables around them."""
    schema = sql.Identifier(prefix)

    def t(name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(schema, sql.Identifier(f"lysmore_{name}"))

    state_t = sql.SQL("{}.lysmore_job_state").format(schema)
    with conn.transaction():
        conn.execute(
            sql.SQL(_SEED_JOBS).format(jobs=t("jobs"), state_t=state_t),
            {"n": rows, "queues": [q for q, _ in KINDS], "workers": [w for _, w in KINDS]},
        )
        conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                     (sql.Identifier(prefix, "lysmore_jobs").as_string(conn), rows))
        conn.execute(
            sql.SQL("INSERT INTO {} (id, name, host, pid, started_at, heartbeat_at)"
                    " SELECT md5(name)::uuid, name, 'host-' || name, 1000 + i, now() - interval '1 day',"
                    " CASE WHEN name LIKE 'web-old%%' THEN now() - interval '1 hour' ELSE now() + interval '1 hour' END"
                    " FROM unnest(%s::text[]) WITH ORDINALITY AS x(name, i)").format(t("nodes")),
            ([*NODES, "web-old-9"],),
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (node_id, queue, local_limit, paused, running)"
                    " SELECT md5(n)::uuid, q, 10, q = 'archive', 2 FROM unnest(%s::text[]) AS n,"
                    " unnest(%s::text[]) AS q").format(t("producers")),
            (list(NODES), list(QUEUES)),
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (node_id, node_name, expires_at)"
                    " VALUES (md5('web-1')::uuid, 'web-1', now() + interval '1 hour')").format(t("leader"))
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (queue, node, paused, local_limit, global_limit, rate_limit) VALUES"
                    " ('billing', '*', NULL, NULL, '{{\"allowed\": 5, \"partition\": {{\"fields\": [\"args\"],"
                    " \"keys\": [\"account_id\"]}}}}', NULL),"
                    " ('webhooks', '*', NULL, NULL, NULL, '{{\"allowed\": 100, \"period\": 60}}'),"
                    " ('archive', '*', true, NULL, NULL, NULL)").format(t("queue_settings"))
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (at, actor, action, targets, outcome, detail)"
                    " SELECT now() - i * interval '1 minute', 'ops', 'retry_jobs', jsonb_build_array(i),"
                    " 'allowed', '{{}}' FROM generate_series(1, 5000) AS i").format(t("audit"))
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (queue, minute, completed, failed)"
                    " SELECT q, date_trunc('minute', now()) - i * interval '1 minute', 100 + i, i %% 3"
                    " FROM unnest(%s::text[]) AS q, generate_series(0, 59) AS i").format(t("stats_minutely")),
            (list(QUEUES),),
        )
    # As autovacuum would have by the time a table holds this many rows: hint bits, visibility map,
    # planner statistics.
    conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(t("jobs")))
    conn.execute(sql.SQL("ANALYZE {}, {}, {}").format(t("nodes"), t("producers"), t("audit")))


def _time(fn: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    fn()  # warm the caches and the connection
    samples: list[float] = []
    shown = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        shown = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 2), round(max(samples), 2), shown


def measure(store: Store, repeat: int = DEFAULT_REPEAT, progress: Progress | None = None) -> list[Timing]:
    """Time every read the screens refresh with, on whatever ``store``'s schema holds."""
    say = progress or (lambda msg: None)
    timings: list[Timing] = []

    def add(name: str, kind: str, fn: Callable[[], int]) -> None:
        median, worst, shown = _time(fn, repeat)
        timings.append(Timing(name, kind, median, worst, shown))

    def jobs(state: str | None, text: str = "", before: int | None = None) -> Callable[[], int]:
        flt = parse_filter(text)
        return lambda: len(store.jobs(state, flt, before, page=2 if before else 1).rows)

    def sorted_jobs(state: str | None, sort: Sort, page_two: bool = False) -> Callable[[], int]:
        after = store.jobs(state, sort=sort).next_cursor if page_two else None
        return lambda: len(store.jobs(state, sort=sort, after=after, page=2 if after else 1).rows)

    def queue_detail(queue: str) -> Callable[[], int]:
        return lambda: len(store.queue_detail(queue).nodes)

    def job(job_id: int) -> Callable[[], int]:
        return lambda: 0 if store.job(job_id).job is None else 1

    def workflow(workflow_id: str) -> Callable[[], int]:
        return lambda: len(store.workflow(workflow_id).steps)

    say("timing the screens")
    add("queues", "screen", lambda: len(store.queues().queues))
    for queue in [q.name for q in store.queues().queues][:3]:
        add(f"queue detail {queue}", "screen", queue_detail(queue))
    for state in (None, *STATES):
        label = f"jobs {state or 'all'}"
        add(label, "screen", jobs(state))
        page = store.jobs(state).rows
        if len(page) > 1:
            add(f"{label} page 2", "screen", jobs(state, before=page[-1].id))
    for sort in (Sort("id", descending=False), *(Sort(key) for key in SORT_KEYS if key != "id")):
        order = f"{sort.key} {'desc' if sort.descending else 'asc'}"
        for state in (None, "completed", "available"):
            add(f"jobs {state or 'all'} by {order}", "sort", sorted_jobs(state, sort))
        add(f"jobs all by {order} page 2", "sort", sorted_jobs(None, sort, page_two=True))
    for state in ("discarded", "available", "completed"):
        rows = store.jobs(state, None, limit=1).rows
        if rows:
            add(f"job detail ({state})", "screen", job(rows[0].id))
    add("nodes", "screen", lambda: len(store.nodes().nodes))
    add("audit", "screen", lambda: len(store.audit().rows))
    add("workflows", "screen", lambda: len(store.workflows().rows))
    flows = store.workflows().rows
    if flows:
        add("workflow detail", "screen", workflow(flows[0].id))
    say(f"timing {len(FILTER_CASES)} filters")
    for label, text, side in FILTER_CASES:
        add(f"{label}: {text}" + (f" (in {side})" if side else ""), "filter", jobs(side, text))
    return timings


def _schema(eng: Engine, conn: psycopg.Connection, prefix: str) -> tuple[bool, int | None]:
    """Whether schema ``prefix`` exists, and the jobs its instance holds by estimate (None: none)."""
    row = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (sql.Identifier(prefix).as_string(conn),)).fetchone()
    assert row is not None
    return bool(row[0]), eng.inspect().estimated_rows(conn)


def run_dashboard_bench(
    database_url: str | None = None,
    *,
    rows: int = DEFAULT_ROWS,
    repeat: int = DEFAULT_REPEAT,
    prefix: str | None = None,
    keep: bool = False,
    progress: Progress | None = None,
) -> DashboardBenchResult:
    """Seed ``rows`` jobs into a new schema and time the dashboard's reads on it, then drop the
    schema unless ``keep``; or, when ``prefix`` names an existing instance, time it as it is
    (read only: it is neither seeded, migrated nor dropped)."""
    say = progress or (lambda msg: None)
    name = prefix or f"bench_dash_{uuid.uuid4().hex[:10]}"
    eng = Engine(database_url, prefix=name)
    created = False
    try:
        with eng.connection() as conn:  # the engine's pool: a bad address fails in one line
            exists, jobs = _schema(eng, conn, name)
            if exists and jobs is None:
                raise InvalidConfig(f"schema {name!r} exists and holds no Lysmore instance: name a new one")
            seed_s = 0.0
            if not exists:
                created = True
                say(f"seeding {rows:,} jobs into schema {name}")
                t0 = time.perf_counter()
                eng.migrate()
                _seed(conn, name, rows)
                seed_s = round(time.perf_counter() - t0, 1)
                say(f"seeded in {seed_s}s")
            else:
                rows = int(jobs or 0)
                say(f"timing the existing schema {name}, about {rows:,} jobs (not seeded, not dropped)")
        result = DashboardBenchResult(rows=rows, prefix=name, seeded=created, seed_s=seed_s, repeat=repeat)
        result.timings = measure(Store(eng), repeat, progress=say)
        return result
    finally:
        try:
            if created and not keep:
                with eng.connection() as c:
                    c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        finally:
            eng.stop()
