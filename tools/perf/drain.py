"""One node draining a backlog: ``--jobs`` no-op jobs inserted up front, a node at concurrency
``--concurrency`` started, timed until the live side is empty. Runs the ``engine`` it imports, so
two virtualenvs (two checkouts installed) compare two versions on the same database in turn.

    python tools/perf/drain.py [--url URL] [--jobs 20000] [--concurrency 50] [--async] [--sql SQL]

Also prints the CPU time a job took in PostgreSQL's processes (all of them, read from /proc) and in
this process while draining. ``--sql`` runs after the migration, ``{p}`` standing for the schema:
a way to try a schema change (an index dropped, a function replaced) before writing a migration.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import psycopg

from engine import Engine, Job, Worker


def pgcpu() -> float:
    """Seconds of CPU every process named postgres on this machine has used."""
    tot = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                parts = f.read().rsplit(")", 1)
                name = parts[0].split("(", 1)[1]
                if not name.startswith("postgres"):
                    continue
                fields = parts[1].split()
                tot += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return tot / os.sysconf("SC_CLK_TCK")


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
    parser.add_argument("--sql", default="", help="SQL run after the migration ({p} is the schema)")
    parser.add_argument("--async", dest="async_worker", action="store_true", help="an async worker's jobs")
    args = parser.parse_args()
    prefix = f"perf_drain_{uuid.uuid4().hex[:8]}"
    inserter = Engine(args.url, prefix=prefix)
    try:
        inserter.migrate()
        if args.sql:
            with psycopg.connect(args.url, autocommit=True) as c:
                c.execute(args.sql.replace("{p}", f'"{prefix}"'))
        worker: type[Worker] = AsyncNoop if args.async_worker else Noop
        inserter.insert_all([worker.new({"i": i}) for i in range(args.jobs)])
        with psycopg.connect(args.url, autocommit=True) as c:
            c.execute(f'ANALYZE "{prefix}".lysmore_jobs')
            c.execute("CHECKPOINT")
            node = Engine(args.url, prefix=prefix, node="drain", queues={"drain": args.concurrency})
            started = time.perf_counter()
            pg0, me0 = pgcpu(), os.times()
            node.start()
            while c.execute(f'SELECT count(*) FROM "{prefix}".lysmore_jobs_live').fetchone()[0]:  # type: ignore[index]
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            pg1, me1 = pgcpu(), os.times()
            print(f"pg cpu {1e6*(pg1-pg0)/args.jobs:.1f} us/job, node cpu {1e6*((me1.user+me1.system)-(me0.user+me0.system))/args.jobs:.1f} us/job")
            node.stop(grace=5)
        print(f"{args.jobs / elapsed:,.0f} jobs/s at concurrency {args.concurrency}")
    finally:
        with psycopg.connect(args.url, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE')
        inserter.stop()


if __name__ == "__main__":
    main()
