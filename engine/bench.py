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


@dataclass
class BenchResult:
    jobs: int
    concurrency: int
    insert_single_per_s: float
    insert_bulk_per_s: float
    process_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    options: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _drop(eng: Engine) -> None:
    with eng.connection() as c:
        c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(eng.prefix)))


def _wait_acked(eng: Engine, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while eng.counters.get("acked", 0) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {eng.counters.get('acked', 0)} of {target} jobs finished in {timeout}s")
        time.sleep(0.002)


def run_bench(
    database_url: str | None = None,
    *,
    jobs: int = 20_000,
    concurrency: int = 10,
    singles: int = 2_000,
    latency_samples: int = 200,
    queue_options: dict[str, Any] | None = None,
    progress: Any = None,
) -> BenchResult:
    """Run every measurement on a new prefix, dropped afterwards."""
    prefix = f"bench_{uuid.uuid4().hex[:10]}"
    say = progress or (lambda msg: None)
    queue_spec: Any = {"local_limit": concurrency, **(queue_options or {})} if queue_options else concurrency
    inserter = Engine(database_url, prefix=prefix)
    made = False
    try:
        inserter.migrate()
        made = True
        # single inserts, one statement and commit each
        n_single = min(singles, jobs)
        say(f"single inserts: {n_single}")
        t0 = time.perf_counter()
        for i in range(n_single):
            inserter.insert(BenchNoop.new({"i": i}))
        insert_single = n_single / (time.perf_counter() - t0)
        with inserter.connection() as c:
            c.execute(sql.SQL("DELETE FROM {}.lysmore_jobs").format(sql.Identifier(prefix)))

        # bulk insert of every job
        say(f"bulk insert: {jobs}")
        specs = [BenchNoop.new({"i": i}) for i in range(jobs)]
        t0 = time.perf_counter()
        inserter.insert_all(specs)
        insert_bulk = jobs / (time.perf_counter() - t0)
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
            inserter.insert(BenchNoop.new({"latency": i}))
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
            process_per_s=round(process, 1),
            latency_p50_ms=round(statistics.median(samples), 2),
            latency_p95_ms=round(quantiles[94], 2),
            options=queue_options or {},
        )
    finally:
        try:
            if made:  # nothing to drop when the database could not be reached
                _drop(inserter)
        finally:
            inserter.stop()
