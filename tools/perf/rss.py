"""Memory of one node processing many no-op jobs: RSS at each tenth of the way.

    python tools/perf/rss.py [--jobs 1000000] [--url URL]

Needs psutil (a test dependency). History is kept (no pruning), as a busy instance holds it.
"""

from __future__ import annotations

import argparse
import os
import time

import psutil
from psycopg import sql

from engine import Engine
from engine.bench import QUEUE, BenchNoop

PREFIX = "perf_rss"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    a = p.parse_args()
    client = Engine(a.url, prefix=PREFIX)
    client.migrate()
    table = sql.SQL("{}.lysmore_jobs").format(sql.Identifier(PREFIX))
    with client.connection() as c:
        c.execute(sql.SQL("TRUNCATE {}").format(table))
    for start in range(0, a.jobs, 50_000):
        client.insert_all([BenchNoop.new({"i": i}) for i in range(start, min(a.jobs, start + 50_000))])
    with client.connection() as c:
        c.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
    proc = psutil.Process(os.getpid())

    def mib() -> float:
        return float(proc.memory_info().rss) / 2**20

    node = Engine(a.url, prefix=PREFIX, node="rss", queues={QUEUE: 10}, prune_max_age=None)
    print(f"before start: {mib():.1f} MiB", flush=True)
    started, mark, last = time.perf_counter(), 0, (0, 0.0)
    node.start()
    while True:
        done, now = node.counters["acked"], time.perf_counter() - started
        if done >= mark or done >= a.jobs:
            rate = (done - last[0]) / max(now - last[1], 1e-9)
            print(f"{done:>10,} done  rss {mib():6.1f} MiB  threads {proc.num_threads():3}  {rate:8,.0f}/s since the last line",
                  flush=True)
            last, mark = (done, now), mark + a.jobs // 10
        if done >= a.jobs:
            break
        time.sleep(0.5)
    node.stop()
    print(f"after stop: {mib():.1f} MiB")
    with client.connection() as c:
        c.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(PREFIX)))
    client.stop()


if __name__ == "__main__":
    main()
