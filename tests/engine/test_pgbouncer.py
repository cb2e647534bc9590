"""Behind a real PgBouncer in transaction mode, the way most production PostgreSQL is reached:
nodes in real processes, a global limit, every job once, no prepared-statement errors."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable

import psycopg
import pytest

from engine import Engine
from engine._pool import behind_pooler
from tests.cluster import Node, create_ledger
from tests.cluster_app import LedgerJob
from tests.engine.test_limits import Sampler
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

QUEUE = "bounced"
TOTAL = 2000
LIMIT = 3


def test_the_pooler_is_detected_and_a_direct_connection_is_not(database_url: str, pgbouncer: Callable[[str], str]) -> None:
    with psycopg.connect(pgbouncer(database_url), autocommit=True, prepare_threshold=None) as conn:
        assert behind_pooler(conn)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert not behind_pooler(conn)
    eng = Engine(pgbouncer(database_url), prefix="t_pooler")
    try:
        eng.migrate()
        assert eng.pooler is True
    finally:
        eng.stop()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA t_pooler CASCADE")


def _pickup_ms(conn: psycopg.Connection, eng: Engine, prefix: str, n: int = 15) -> list[float]:
    """Insert ``n`` jobs one at a time into an idle queue; each one's insert-to-start time."""
    times = []
    for i in range(n):
        job = eng.insert(LedgerJob.new({"ms": [1, 2]}, queue=QUEUE))
        ran = f'SELECT 1 FROM "{prefix}".ledger WHERE job_id = {int(job.id)}'
        wait_for(lambda q=ran: conn.execute(q).fetchone(), 30, f"pick-up {i}")
        row = conn.execute(f'SELECT extract(epoch FROM attempted_at - inserted_at) * 1000 FROM "{prefix}".lysmore_jobs '
                           "WHERE id = %s", [job.id]).fetchone()
        assert row is not None
        times.append(float(row[0]))
    return times


@pytest.mark.parametrize("mode", ["poll", "listen"])
def test_two_nodes_behind_pgbouncer_run_every_job_once_within_the_global_limit(  # type: ignore[no-untyped-def]
    mode: str, make_engine, conn, database_url, prefix, nodes, pgbouncer
) -> None:
    eng: Engine = make_engine()
    create_ledger(conn, prefix)
    eng.insert_all([LedgerJob.new({"ms": [1, 5]}, queue=QUEUE) for _ in range(TOTAL)])
    env = {"CLUSTER_ENGINE_DB": pgbouncer(database_url), "CLUSTER_POLL": "1",
           "CLUSTER_QUEUES": json.dumps({QUEUE: {"local_limit": LIMIT, "global_limit": LIMIT}})}
    if mode == "listen":
        env["LYSMORE_LISTEN_URL"] = database_url  # LISTEN on a direct connection
    with Sampler(database_url, prefix, QUEUE) as sampler:
        for name in ("b1", "b2"):
            nodes.append(Node(name, database_url, prefix, **env).start())
        wait_for(lambda: conn.execute(f"""SELECT count(*) = {TOTAL} FROM "{prefix}".lysmore_jobs
                                           WHERE state = 'completed'""").fetchone()[0],  # type: ignore[index]
                 timeout=180, what="every job through PgBouncer")
    assert max(ex for ex, _ in sampler.samples) <= LIMIT
    runs, jobs = conn.execute(f'SELECT count(*), count(DISTINCT job_id) FROM "{prefix}".ledger').fetchone()  # type: ignore[misc]
    assert (runs, jobs) == (TOTAL, TOTAL)  # every job ran, and none twice
    assert {r[0] for r in conn.execute(f'SELECT DISTINCT node FROM "{prefix}".ledger')} == {"b1", "b2"}
    pickup = _pickup_ms(conn, eng, prefix)
    logs = "".join(node.log.read_text(errors="replace") for node in nodes)
    assert "prepared statement" not in logs and "bind message" not in logs
    assert "heartbeat failed" not in logs and "rescued" not in logs
    print(f"\nPgBouncer {mode}: {TOTAL} jobs, global limit {LIMIT}, max executing seen "
          f"{max(ex for ex, _ in sampler.samples)}; pick-up p50 {statistics.median(pickup):.1f} ms, "
          f"max {max(pickup):.1f} ms")
