"""``lysmore bench``: insert and processing throughput, and pick-up latency, on a fresh prefix."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from psycopg import sql

from ._engine import Engine
from ._events import Event
from ._job import Job
from ._worker import Worker

QUEUE = "bench"


class BenchNoop(Worker, queue=QUEUE, max_attempts=1, name="lysmore.bench.noop"):
    """Does nothing, so the benchmark measures the engine and not the work."""

    def perform(self, job: Job) -> None:
        return None


class BenchAsyncNoop(Worker, queue=QUEUE, max_attempts=1, name="lysmore.bench.async_noop"):
    """BenchNoop as an async worker (``lysmore bench --async``): its jobs run on the shared loop."""

    async def perform(self, job: Job) -> None:
        return None


@dataclass
class BenchResult:
    jobs: int
    concurrency: int
    insert_single_per_s: float
    insert_bulk_per_s: float  # insert_all of built specs, the Jobs returned
    process_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    options: dict[str, Any]
    history: int = 0  # finished jobs in the table before the bench's own
    insert_many_per_s: float = 0.0  # insert_many of args dicts, a count returned
    async_worker: bool = False  # the jobs' worker was async (BenchAsyncNoop)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _drop_available(eng: Engine) -> None:
    """Delete the bench's own jobs, which are all available between its phases."""
    with eng.connection() as c:
        c.execute(sql.SQL("DELETE FROM {}.lysmore_jobs WHERE state = 'available'").format(sql.Identifier(eng.prefix)))


def _drop(eng: Engine) -> None:
    with eng.connection() as c:
        c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(eng.prefix)))


def _wait_acked(eng: Engine, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while eng.counters.get("acked", 0) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {eng.counters.get('acked', 0)} of {target} jobs finished in {timeout}s")
        time.sleep(0.002)


HISTORY_SQL = """
INSERT INTO {jobs} (state, queue, worker, args, attempt, max_attempts, errors, result,
                    inserted_at, scheduled_at, attempted_at, completed_at, discarded_at, cancelled_at,
                    attempted_by)
SELECT s.state::{state_type}, {queue}, {worker}, jsonb_build_object('h', g), 1, 1,
       CASE WHEN s.state = 'completed' THEN '[]'::jsonb
            ELSE jsonb_build_array(jsonb_build_object('attempt', 1, 'error', 'history'))
       END,
       CASE WHEN s.state = 'completed' THEN '{{}}'::jsonb END,
       t.at - interval '1 second', t.at - interval '1 second', t.at - interval '10 milliseconds',
       CASE WHEN s.state = 'completed' THEN t.at END,
       CASE WHEN s.state = 'discarded' THEN t.at END,
       CASE WHEN s.state = 'cancelled' THEN t.at END,
       ARRAY['history', '00000000-0000-0000-0000-000000000000']
FROM generate_series(1, %(n)s::bigint) AS g,
     LATERAL (SELECT now() - make_interval(secs => 86400.0 * g / %(n)s) AS at) AS t,
     LATERAL (SELECT CASE WHEN g %% 50 = 0 THEN 'discarded' WHEN g %% 97 = 0 THEN 'cancelled'
                          ELSE 'completed' END AS state) AS s
"""


def seed_history(eng: Engine, n: int) -> None:
    """Put ``n`` finished jobs (98% completed, the rest discarded or cancelled) spread over the
    last day into the table, as a pruner keeping a day of history would leave them."""
    with eng.connection() as c:
        c.execute(sql.SQL(HISTORY_SQL).format(
            jobs=eng.q.table("jobs"), state_type=sql.SQL("{}.lysmore_job_state").format(sql.Identifier(eng.prefix)),
            queue=sql.Literal(QUEUE), worker=sql.Literal(BenchNoop.name),
        ), {"n": n})
        c.execute(sql.SQL("VACUUM ANALYZE {}").format(eng.q.table("jobs")))


def run_bench(
    database_url: str | None = None,
    *,
    jobs: int = 20_000,
    history: int = 0,
    concurrency: int = 10,
    singles: int = 2_000,
    latency_samples: int = 200,
    queue_options: dict[str, Any] | None = None,
    progress: Any = None,
    async_worker: bool = False,
) -> BenchResult:
    """Run every measurement on a new prefix, dropped afterwards; with ``async_worker`` the jobs'
    worker is an async one."""
    noop: type[Worker] = BenchAsyncNoop if async_worker else BenchNoop
    prefix = f"bench_{uuid.uuid4().hex[:10]}"
    say = progress or (lambda msg: None)
    queue_spec: Any = {"local_limit": concurrency, **(queue_options or {})} if queue_options else concurrency
    inserter = Engine(database_url, prefix=prefix)
    made = False
    try:
        inserter.migrate()
        made = True
        if history:
            say(f"history: {history} finished jobs")
            seed_history(inserter, history)
        # single inserts, one statement and commit each
        n_single = min(singles, jobs)
        say(f"single inserts: {n_single}")
        t0 = time.perf_counter()
        for i in range(n_single):
            inserter.insert(noop.new({"i": i}))
        insert_single = n_single / (time.perf_counter() - t0)
        _drop_available(inserter)  # the singles go; the history stays

        # bulk insert of every job: by insert_all (then deleted), then by insert_many, which stay
        say(f"bulk insert: {jobs}")
        specs = [noop.new({"i": i}) for i in range(jobs)]
        t0 = time.perf_counter()
        inserter.insert_all(specs)
        insert_bulk = jobs / (time.perf_counter() - t0)
        del specs
        _drop_available(inserter)
        t0 = time.perf_counter()
        inserter.insert_many(noop, [{"i": i} for i in range(jobs)])
        insert_many = jobs / (time.perf_counter() - t0)
        with inserter.connection() as c:
            c.execute("ANALYZE " + f'"{prefix}".lysmore_jobs')

        # processing the backlog
        say(f"processing: {jobs} at concurrency {concurrency}")
        node = Engine(database_url, prefix=prefix, node="bench", queues={QUEUE: queue_spec})
        t0 = time.perf_counter()
        node.start()
        _wait_acked(node, jobs, timeout=max(120.0, jobs / 50))
        process = jobs / (time.perf_counter() - t0)

        # insert-to-start latency on the now idle node
        say(f"latency: {latency_samples} samples")
        started = threading.Event()

        def on_start(event: Event) -> None:
            started.set()

        unsubscribe = node.subscribe(on_start, kinds=["start"])
        samples: list[float] = []
        for i in range(latency_samples):
            started.clear()
            t0 = time.perf_counter()
            inserter.insert(noop.new({"latency": i}))
            if not started.wait(10):
                raise TimeoutError("a job inserted on an idle node did not start within 10s")
            samples.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.002)
        unsubscribe()
        node.stop(grace=5)
        quantiles = statistics.quantiles(samples, n=100)
        return BenchResult(
            jobs=jobs,
            concurrency=concurrency,
            insert_single_per_s=round(insert_single, 1),
            insert_bulk_per_s=round(insert_bulk, 1),
            insert_many_per_s=round(insert_many, 1),
            process_per_s=round(process, 1),
            latency_p50_ms=round(statistics.median(samples), 2),
            latency_p95_ms=round(quantiles[94], 2),
            async_worker=async_worker,
            options=queue_options or {},
            history=history,
        )
    finally:
        try:
            if made:  # nothing to drop when the database could not be reached
                _drop(inserter)
        finally:
            inserter.stop()
