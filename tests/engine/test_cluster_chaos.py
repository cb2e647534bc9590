"""Cluster proofs with real processes and real signals: kill -9 chaos, leader failover, cron."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import psycopg
import pytest

from engine import Engine
from tests.cluster import Node, create_ledger
from tests.cluster_app import LedgerJob
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def _count(conn: psycopg.Connection, prefix: str, where: str) -> int:
    row = conn.execute(f'SELECT count(*) FROM "{prefix}".lysmore_jobs WHERE {where}').fetchone()
    assert row is not None
    return int(row[0])


def _leader(conn: psycopg.Connection, prefix: str) -> tuple[Any, ...] | None:
    return conn.execute(
        f'SELECT node_name, epoch FROM "{prefix}".lysmore_leader WHERE expires_at > now()'
    ).fetchone()


def test_kill_nine_chaos_loses_nothing(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine()
    create_ledger(conn, prefix)
    total = 10_000
    eng.insert_all([LedgerJob.new({"n": i}) for i in range(total)])
    names = ["n1", "n2", "n3"]
    procs = {name: Node(name, database_url, prefix).start() for name in names}
    nodes.extend(procs.values())
    rng = random.Random(7)
    end = time.monotonic() + 30
    kills = 0
    while time.monotonic() < end:
        time.sleep(2)  # the chaos schedule itself: one kill every two seconds
        name = rng.choice(names)
        procs[name].kill()
        kills += 1
        procs[name] = Node(name, database_url, prefix).start()
        nodes.append(procs[name])
    last_kill = time.monotonic()

    wait_for(lambda: _count(conn, prefix, "state = 'completed'") == total, timeout=60,
             what="every job completed")
    assert time.monotonic() - last_kill < 15 or _count(conn, prefix, "state = 'executing'") == 0
    assert _count(conn, prefix, "state = 'executing'") == 0
    assert _count(conn, prefix, "state <> 'completed'") == 0
    # A job ran to the end more than once only if it was rescued from a killed node.
    doubles = conn.execute(
        f'''SELECT l.job_id, count(*) FROM "{prefix}".ledger l
            JOIN "{prefix}".lysmore_jobs j ON j.id = l.job_id
            WHERE NOT (j.errors::text LIKE '%%rescued%%')
            GROUP BY l.job_id HAVING count(*) > 1'''
    ).fetchall()
    assert doubles == []
    ran = conn.execute(f'SELECT count(DISTINCT job_id) FROM "{prefix}".ledger').fetchone()
    assert ran is not None and ran[0] == total
    assert kills >= 10


def test_leader_killed_one_new_leader_and_cron_exact(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    make_engine()
    create_ledger(conn, prefix)
    env = {"CLUSTER_CRON": "* * * * * */2", "CLUSTER_LEASE": "3", "CLUSTER_NODE_TTL": "3"}
    procs = {name: Node(name, database_url, prefix, **env).start() for name in ("a", "b", "c")}
    nodes.extend(procs.values())
    first = wait_for(lambda: _leader(conn, prefix), timeout=20, what="a leader")
    wait_for(lambda: _count(conn, prefix, "meta ? 'cron'") >= 3, timeout=20, what="cron jobs")
    procs[first[0]].kill()
    second = wait_for(
        lambda: (row := _leader(conn, prefix)) and row[0] != first[0] and row, timeout=20,
        what="a new leader",
    )
    assert second[1] == first[1] + 1
    # Let cron run a few more instants under the new leader.
    t_new = conn.execute("SELECT now()").fetchone()[0]
    wait_for(
        lambda: conn.execute(
            f'SELECT count(*) FROM "{prefix}".lysmore_cron_runs WHERE instant > %s', [t_new]
        ).fetchone()[0] >= 3,
        timeout=20, what="cron under the new leader",
    )
    for proc in procs.values():
        proc.stop()
    # Exactly one job per instant, and no instant dropped between the first and the last.
    runs = conn.execute(
        f'SELECT instant, job_id FROM "{prefix}".lysmore_cron_runs WHERE name = %s ORDER BY instant', ["tick"]
    ).fetchall()
    instants = [r[0] for r in runs]
    assert len(instants) == len(set(instants))
    gaps = {(b - a).total_seconds() for a, b in zip(instants, instants[1:], strict=False)}
    assert gaps == {2.0}, gaps
    jobs = conn.execute(
        f"""SELECT meta->>'cron_instant', count(*) FROM "{prefix}".lysmore_jobs
            WHERE meta ? 'cron' GROUP BY 1 HAVING count(*) > 1"""
    ).fetchall()
    assert jobs == []
    assert _count(conn, prefix, "meta ? 'cron'") == len(instants)


def test_paused_leader_loses_lease_and_stays_follower(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    make_engine()
    env = {"CLUSTER_LEASE": "2", "CLUSTER_NODE_TTL": "3"}
    procs = {name: Node(name, database_url, prefix, **env).start() for name in ("a", "b")}
    nodes.extend(procs.values())
    first = wait_for(lambda: _leader(conn, prefix), timeout=20, what="a leader")
    stopped = procs[first[0]]
    stopped.signal(signal.SIGSTOP)
    try:
        second = wait_for(
            lambda: (row := _leader(conn, prefix)) and row[0] != first[0] and row, timeout=20,
            what="the other node to take the lease",
        )
    finally:
        stopped.signal(signal.SIGCONT)
    assert second[1] == first[1] + 1
    # Resumed, the old leader does not take the lease back while the new one renews it.
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        row = conn.execute(f'SELECT node_name, epoch FROM "{prefix}".lysmore_leader').fetchone()
        assert row is not None and tuple(row) == tuple(second)
        time.sleep(0.2)


def test_restarted_node_with_same_name_is_new_and_orphans_are_rescued(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine()
    create_ledger(conn, prefix)
    env = {"CLUSTER_NODE_TTL": "2", "CLUSTER_LEASE": "2"}
    old = Node("same", database_url, prefix, **env).start()
    nodes.append(old)
    jobs = eng.insert_all([LedgerJob.new({"ms": [3000, 3000]}) for _ in range(3)])
    ids = [j.id for j in jobs]
    wait_for(lambda: _count(conn, prefix, "state = 'executing'") == 3, timeout=20, what="jobs running")
    old_id = conn.execute(f'SELECT id FROM "{prefix}".lysmore_nodes WHERE name = %s', ["same"]).fetchone()[0]
    old.kill()
    new = Node("same", database_url, prefix, **env).start()
    nodes.append(new)
    wait_for(
        lambda: conn.execute(
            f'SELECT count(*) FROM "{prefix}".lysmore_nodes WHERE name = %s AND id <> %s', ["same", old_id]
        ).fetchone()[0] == 1,
        timeout=20, what="the new node",
    )
    wait_for(lambda: _count(conn, prefix, "state = 'completed'") == 3, timeout=40, what="rescued jobs done")
    for job in eng.get_jobs(ids):
        assert any("rescued: node same was lost" in e["error"] for e in job.errors), job.errors
        assert job.attempt == 2
        assert job.attempted_by is not None and job.attempted_by[1] != str(old_id)
