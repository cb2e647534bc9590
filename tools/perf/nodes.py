"""Throughput of 1, 2 and 4 node processes on one database: each node is its own process with its
own Engine, all running the bench queue at the same local limit, over one backlog of no-op jobs.

    python tools/perf/nodes.py [--jobs 40000] [--nodes 1 2 4] [--concurrency 10] [--rounds 2] [--url URL]

Prints jobs/s from the first job started to the last one finished, median of the rounds. On a
machine with fewer cores than nodes + PostgreSQL's backends this reports contention, not scaling.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from engine import Engine
from engine.bench import QUEUE, BenchNoop

PREFIX = "perf_nodes"


def node(url: str, concurrency: int, go: Any, stop: Any) -> None:
    eng = Engine(url, prefix=PREFIX, queues={QUEUE: concurrency}, node=f"perf-{mp.current_process().pid}")
    go.wait()
    eng.start()
    stop.wait()
    eng.stop(grace=5)


def run(url: str, jobs: int, nodes: int, concurrency: int) -> float:
    eng = Engine(url, prefix=PREFIX)
    eng.migrate()
    table = sql.Identifier(PREFIX, "lysmore_jobs")
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(sql.SQL("TRUNCATE {}").format(table))
    for start in range(0, jobs, 20_000):
        eng.insert_all([BenchNoop.new({"i": i}) for i in range(start, min(jobs, start + 20_000))])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
    ctx = mp.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    procs = [ctx.Process(target=node, args=(url, concurrency, go, stop)) for _ in range(nodes)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let the processes import and build their engines before the clock starts
    go.set()
    remaining = sql.SQL("SELECT count(*) FROM {} WHERE state <> 'completed'").format(table)
    first = sql.SQL("SELECT min(attempted_at), max(completed_at) FROM {}").format(table)
    with psycopg.connect(url, autocommit=True) as c:
        while c.execute(remaining).fetchone()[0]:  # type: ignore[index]
            time.sleep(0.05)
        started, finished = c.execute(first).fetchone()  # type: ignore[misc]
    stop.set()
    for p in procs:
        p.join(30)
    eng.stop()
    return jobs / (finished - started).total_seconds()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=40_000)
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    a = p.parse_args()
    rates: dict[int, list[float]] = {n: [] for n in a.nodes}
    for _ in range(a.rounds):
        for n in a.nodes:
            rates[n].append(run(a.url, a.jobs, n, a.concurrency))
    with psycopg.connect(a.url, autocommit=True) as c:
        c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(PREFIX)))
    for n, values in rates.items():
        print(f"{n} node(s) x {a.concurrency}: {statistics.median(values):8,.0f} jobs/s  "
              f"({', '.join(f'{v:,.0f}' for v in values)})")


if __name__ == "__main__":
    main()
