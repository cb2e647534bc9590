"""Rollups with execution times for the Charts screen's tests: a day of minutes of two queues and
three workers before ``NOW``, fixed numbers (no other screen reads these, so they live apart from
``seed``)."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from engine._timings import BUCKETS, bucket_of
from tests.tui.seed import NOW

# worker -> (queue, typical execution time in seconds, slow one in seconds)
WORKERS = {
    "app.workers.Report": ("default", 0.040, 1.5),
    "app.workers.Charge": ("default", 0.180, 2.5),
    "app.workers.Welcome": ("mailers", 0.012, 0.3),
}


def _minute_counts(worker: str, m: int) -> tuple[int, int, list[int]]:
    """Completed, failed and the time buckets of ``worker`` in the ``m``-th minute before NOW."""
    queue, typical, slow = WORKERS[worker]
    seed = sum(map(ord, worker))
    completed = (m * 7 + seed) % 9 + (3 if queue == "default" else 1) + (4 if 20 <= m < 35 else 0)
    failed = 1 if (m + seed) % 13 == 0 else 0
    buckets = [0] * BUCKETS
    slowish = 1 + (m // 10) % 3
    buckets[bucket_of(typical * (1 + (m % 5) / 10))] += max(0, completed + failed - slowish)
    buckets[bucket_of(slow * (1 + (m % 3) / 5))] += slowish
    return completed, failed, buckets


def seed_rollups(conn: psycopg.Connection, prefix: str, minutes: int = 24 * 60) -> None:
    """Per-worker and per-queue rollups of every complete minute of the day before NOW (the
    per-queue rows are the per-worker ones summed, as a node writes them)."""
    end = NOW.replace(second=0, microsecond=0)
    workers = sql.Identifier(prefix, "lysmore_stats_workers")
    queues = sql.Identifier(prefix, "lysmore_stats_minutely")
    rows = []
    done: dict[tuple[str, datetime], int] = {}
    bad: dict[tuple[str, datetime], int] = {}
    times: dict[tuple[str, datetime], list[int]] = {}
    for m in range(1, minutes + 1):
        minute = end - timedelta(minutes=m)
        for worker, (queue, _, _) in WORKERS.items():
            completed, failed, buckets = _minute_counts(worker, m)
            rows.append((worker, queue, minute, completed, failed, buckets))
            key = (queue, minute)
            done[key] = done.get(key, 0) + completed
            bad[key] = bad.get(key, 0) + failed
            times[key] = [a + b for a, b in zip(times.get(key, [0] * BUCKETS), buckets, strict=True)]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} (worker, queue, minute, completed, failed, exec_buckets)"
                    " VALUES (%s, %s, %s, %s, %s, %s)").format(workers), rows)
        cur.executemany(
            sql.SQL("INSERT INTO {} AS s (queue, minute, completed, failed, exec_buckets) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (queue, minute) DO UPDATE SET completed = excluded.completed,"
                    " failed = excluded.failed, exec_buckets = excluded.exec_buckets").format(queues),
            [(q, minute, done[q, minute], bad[q, minute], times[q, minute]) for q, minute in done])
