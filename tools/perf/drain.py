"""One node draining a backlog: ``--jobs`` no-op jobs inserted up front, a node at concurrency
``--concurrency`` started, timed until the live side is empty. Runs the ``engine`` it imports, so
two virtualenvs (two checkouts installed) compare two versions on the same database in turn.

    python tools/perf/drain.py [--url URL] [--jobs 20000] [--concurrency 50] [--async]
"""

from __future__ import annotations

import argparse
import time
import uuid

import psycopg

from engine import Engine, Job, Worker


class Noop(Worker, queue="drain", max_attempts=1, name="perf.drain.noop"):
    def perform(self, job: Job) -> None:
        return None


class AsyncNoop(Worker, queue="drain", max_attempts=1, name="perf.drain.async_noop"):
    async def perform(self, job: Job) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--async", dest="async_worker", action="store_true", help="an async worker's jobs")
    args = parser.parse_args()
    prefix = f"perf_drain_{uuid.uuid4().hex[:8]}"
    inserter = Engine(args.url, prefix=prefix)
    try:
        inserter.migrate()
        worker: type[Worker] = AsyncNoop if args.async_worker else Noop
        inserter.insert_all([worker.new({"i": i}) for i in range(args.jobs)])
        with psycopg.connect(args.url, autocommit=True) as c:
            c.execute(f'ANALYZE "{prefix}".lysmore_jobs')
            c.execute("CHECKPOINT")
            node = Engine(args.url, prefix=prefix, node="drain", queues={"drain": args.concurrency})
            started = time.perf_counter()
            node.start()
            while c.execute(f'SELECT count(*) FROM "{prefix}".lysmore_jobs_live').fetchone()[0]:  # type: ignore[index]
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            node.stop(grace=5)
        print(f"{args.jobs / elapsed:,.0f} jobs/s at concurrency {args.concurrency}")
    finally:
        with psycopg.connect(args.url, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE')
        inserter.stop()


if __name__ == "__main__":
    main()
