"""Where a batch spends its time: a fetch-then-record loop on one connection, no threads.

Fills a scratch prefix (or a plain table) with no-op jobs, then claims ``K`` at a time and records
them, until none is left. Each variant swaps one part: the plain queue's statements for
Lysmore's, or drops some of Lysmore's indexes. Prints jobs per second, median of the rounds.

    python tools/perf/sql_loop.py [--jobs 20000] [--rounds 3] [--url URL]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from engine import Engine, JobState, testing
from engine._runner import Outcome
from engine.bench import BenchNoop

PREFIX = "perf_sql_loop"
K = 10
DASHBOARD = ["worker_idx", "node_idx", "tags_idx", "args_idx", "meta_idx", "attempt_idx", "priority_idx",
             "inserted_brin", "id_brin", "errors_idx"]
PLAIN_TABLE = """
CREATE TABLE {t} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, queue text NOT NULL DEFAULT 'default',
    state text NOT NULL DEFAULT 'available', priority smallint NOT NULL DEFAULT 0,
    args jsonb NOT NULL DEFAULT '{{}}', attempt int NOT NULL DEFAULT 0,
    inserted_at timestamptz NOT NULL DEFAULT now(), attempted_at timestamptz, completed_at timestamptz);
CREATE INDEX ON {t} (queue, priority, id) WHERE state = 'available'
"""
PLAIN_FETCH = """
UPDATE {t} SET state = 'executing', attempt = attempt + 1, attempted_at = now()
WHERE id IN (SELECT id FROM {t} WHERE queue = %(queue)s AND state = 'available'
             ORDER BY {order} LIMIT %(k)s FOR UPDATE SKIP LOCKED)
RETURNING id
"""
PLAIN_ACK = "UPDATE {t} SET state = 'completed', completed_at = now() WHERE id = ANY(%(ids)s)"


def plain_loop(url: str, jobs: int, lysmore_table: bool, drop: list[str]) -> float:
    """The plain queue's statements, on its own table or on Lysmore's (less ``drop``)."""
    eng = None
    with psycopg.connect(url, autocommit=True) as c:
        if lysmore_table:
            eng = _filled(url, jobs, drop)
            t, queue = sql.SQL("{}.lysmore_jobs").format(sql.Identifier(PREFIX)), "bench"
            order = sql.SQL("priority, scheduled_at, id")  # the order of Lysmore's fetch index
        else:
            t, queue = sql.Identifier("perf_plain_queue"), "default"
            order = sql.SQL("priority, id")
            c.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=t))
            c.execute(sql.SQL(PLAIN_TABLE).format(t=t))
            c.execute(sql.SQL("INSERT INTO {t} (args) SELECT jsonb_build_object('i', g) FROM generate_series(1, %s) g")
                      .format(t=t), [jobs])
            c.execute(sql.SQL("VACUUM ANALYZE {t}").format(t=t))
        fetch, ack = sql.SQL(PLAIN_FETCH).format(t=t, order=order), sql.SQL(PLAIN_ACK).format(t=t)
        started, done = time.perf_counter(), 0
        while ids := [r[0] for r in c.execute(fetch, {"queue": queue, "k": K}).fetchall()]:
            c.execute(ack, {"ids": ids})
            done += len(ids)
        rate = done / (time.perf_counter() - started)
        if not lysmore_table:
            c.execute(sql.SQL("DROP TABLE {t}").format(t=t))
    if eng is not None:
        _drop(eng)
    return rate


def lysmore_loop(url: str, jobs: int, drop: list[str]) -> float:
    """Lysmore's own fetch and record (``engine.testing``), on its table less ``drop``."""
    eng = _filled(url, jobs, drop)
    started, done = time.perf_counter(), 0
    while claimed := testing.fetch(eng, "bench", K):
        testing.record(eng, [Outcome(job, JobState.COMPLETED) for job in claimed])
        done += len(claimed)
    rate = done / (time.perf_counter() - started)
    _drop(eng)
    return rate


def _filled(url: str, jobs: int, drop: list[str]) -> Engine:
    eng = Engine(url, prefix=PREFIX)
    eng.migrate()
    with eng.connection() as c:
        c.execute(sql.SQL("TRUNCATE {}.lysmore_jobs").format(sql.Identifier(PREFIX)))
        for name in drop:
            c.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(PREFIX, f"lysmore_jobs_{name}")))
    eng.insert_all([BenchNoop.new({"i": i}) for i in range(jobs)])
    with eng.connection() as c:
        c.execute(sql.SQL("VACUUM ANALYZE {}.lysmore_jobs").format(sql.Identifier(PREFIX)))
    return eng


def _drop(eng: Engine) -> None:
    with eng.connection() as c:
        c.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(PREFIX)))
    eng.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    a = p.parse_args()
    variants: dict[str, Callable[[], float]] = {
        "plain queue": lambda: plain_loop(a.url, a.jobs, False, []),
        "plain statements, Lysmore's table": lambda: plain_loop(a.url, a.jobs, True, []),
        "plain statements, no dashboard/state idx": lambda: plain_loop(a.url, a.jobs, True, [*DASHBOARD, "state_idx"]),
        "Lysmore": lambda: lysmore_loop(a.url, a.jobs, []),
        "Lysmore, no dashboard/state idx": lambda: lysmore_loop(a.url, a.jobs, [*DASHBOARD, "state_idx"]),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(a.rounds):
        for name, run in variants.items():
            rates[name].append(run())
    for name, values in rates.items():
        print(f"{name:42} {statistics.median(values):8,.0f}/s  ({', '.join(f'{v:,.0f}' for v in values)})")


if __name__ == "__main__":
    main()
