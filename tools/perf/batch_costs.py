"""What one statement of the job path costs, against the plain queue's, on one connection.

A scratch prefix of Lysmore and a plain table (bench_raw.py's) side by side, then, in interleaved
rounds: a fetch of ``--batch`` jobs, the ack of such a batch (all completed, no result), and a
single insert (committed alone, and inside one transaction, which leaves the commit out). Prints
the median of the rounds. No threads: what the statements cost, not how a node overlaps them.

    python tools/perf/batch_costs.py [--url URL] [--batch 50] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable

import psycopg
from psycopg import sql
from sql_loop import PLAIN_ACK, PLAIN_FETCH, PLAIN_TABLE  # the plain queue's table and statements

from engine import Engine
from engine._pool import configure

PREFIX = "perf_batch_costs"
PLAIN = sql.Identifier("perf_batch_plain")
PLAIN_INSERT = """
WITH ins AS (INSERT INTO {t} (queue, args) VALUES (%(queue)s, %(args)s) RETURNING id)
SELECT id, pg_notify('perf_batch_plain', %(queue)s) FROM ins
"""
FILL = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    opts = parser.parse_args()
    eng = Engine(opts.url, prefix=PREFIX)
    with psycopg.connect(opts.url, autocommit=True) as c:
        configure(c)
        c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(PREFIX)))
        c.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(PLAIN))
        eng.migrate()
        c.execute(sql.SQL(PLAIN_TABLE).format(t=PLAIN))
        try:
            _measure(c, eng, opts.batch, opts.rounds)
        finally:
            eng.stop()
            c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(PREFIX)))
            c.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(PLAIN))


def _measure(c: psycopg.Connection, eng: Engine, batch: int, rounds: int) -> None:
    q = eng.store.q.jobs
    jobs = sql.SQL("{}.lysmore_jobs").format(sql.Identifier(PREFIX))
    node = uuid.uuid4()
    fetch_params = {"queue": "q", "demand": batch, "node_id": node, "node_name": "perf"}
    plain_fetch = sql.SQL(PLAIN_FETCH).format(t=PLAIN, order=sql.SQL("priority, id"))
    plain_ack = sql.SQL(PLAIN_ACK).format(t=PLAIN)

    def fill() -> None:
        c.execute(sql.SQL("TRUNCATE {} CASCADE").format(jobs))
        c.execute(sql.SQL("TRUNCATE {}").format(PLAIN))
        c.execute(sql.SQL("INSERT INTO {} (state, queue, worker, args) SELECT 'available', 'q', 'perf', "
                          "jsonb_build_object('i', g) FROM generate_series(1, %s) g").format(jobs), [FILL])
        c.execute(sql.SQL("INSERT INTO {} (queue, args) SELECT 'q', jsonb_build_object('i', g) "
                          "FROM generate_series(1, %s) g").format(PLAIN), [FILL])
        c.execute(sql.SQL("VACUUM ANALYZE {}.lysmore_jobs_live").format(sql.Identifier(PREFIX)))
        c.execute(sql.SQL("VACUUM ANALYZE {}").format(PLAIN))

    def path(fetch: Callable[[], list[int]], ack: Callable[[list[int]], None]) -> tuple[float, float]:
        """Fetch and ack batches until a fifth of the table is done: ms a fetch, ms an ack."""
        spent_fetch = spent_ack = 0.0
        count = FILL // 5 // batch
        for _ in range(count):
            t = time.perf_counter()
            ids = fetch()
            spent_fetch += time.perf_counter() - t
            t = time.perf_counter()
            ack(ids)
            spent_ack += time.perf_counter() - t
        return spent_fetch / count * 1000, spent_ack / count * 1000

    def lysmore_fetch() -> list[int]:
        return [row[0] for row in c.execute(q.fetch, fetch_params).fetchall()]

    def lysmore_ack(ids: list[int]) -> None:
        c.execute(q.ack_completed, {"id": ids, "attempt": [1] * len(ids), "node_id": node, "wake": [],
                                    "channel": "perf"}).fetchall()

    def plain_fetch_ids() -> list[int]:
        return [row[0] for row in c.execute(plain_fetch, {"queue": "q", "k": batch}).fetchall()]

    def plain_ack_ids(ids: list[int]) -> None:
        c.execute(plain_ack, {"ids": ids})

    def inserts(one: Callable[[int], None], in_transaction: bool, n: int = 300) -> float:
        t = time.perf_counter()
        if in_transaction:
            with c.transaction():
                for i in range(n):
                    one(i)
        else:
            for i in range(n):
                one(i)
        return (time.perf_counter() - t) / n * 1e6

    def lysmore_insert(i: int) -> None:
        c.execute(q.insert_one, {
            "queue": "q", "worker": "perf", "args": json.dumps({"i": i}), "meta": "{}", "tags": [],
            "priority": 0, "max_attempts": 1, "scheduled_at": None, "schedule_in": None, "channel": "perf",
        }).fetchone()

    plain_insert = sql.SQL(PLAIN_INSERT).format(t=PLAIN)

    def plain_insert_one(i: int) -> None:
        c.execute(plain_insert, {"queue": "q", "args": json.dumps({"i": i})}).fetchone()

    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        fill()
        for name, (fetch, ack) in {"plain": (plain_fetch_ids, plain_ack_ids),
                                   "lysmore": (lysmore_fetch, lysmore_ack)}.items():
            f, a = path(fetch, ack)
            results.setdefault(f"{name} fetch of {batch} (ms)", []).append(f)
            results.setdefault(f"{name} ack of {batch} (ms)", []).append(a)
        for name, one in {"plain": plain_insert_one, "lysmore": lysmore_insert}.items():
            for in_tx in (False, True):
                label = f"{name} single insert, {'in one transaction' if in_tx else 'committed alone'} (us)"
                results.setdefault(label, []).append(inserts(one, in_tx))
    for label, values in results.items():
        print(f"{label:55s} {statistics.median(values):8.2f}")


if __name__ == "__main__":
    main()
