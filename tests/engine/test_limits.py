"""Smart limits across real worker processes: global limits, rate limits, partitions, recovery."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from engine import Engine, InvalidConfig
from tests.cluster import Node, create_ledger
from tests.cluster_app import LedgerJob, OtherLedgerJob
from tests.helpers import max_in_window, wait_for

pytestmark = pytest.mark.slow


class Sampler:
    """Samples executing and available counts of one queue every 10 ms on its own connection."""

    def __init__(self, url: str, prefix: str, queue: str, by: str | None = None) -> None:
        self.url, self.prefix, self.queue, self.by = url, prefix, queue, by
        self.samples: list[tuple[int, int]] = []
        self.max_by: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as c:
            while not self._stop.is_set():
                row = c.execute(
                    f"""SELECT count(*) FILTER (WHERE state = 'executing'), count(*) FILTER (WHERE state = 'available')
                        FROM "{self.prefix}".lysmore_jobs WHERE queue = %s""", [self.queue]).fetchone()
                assert row is not None
                self.samples.append((row[0], row[1]))
                if self.by:
                    for key, n in c.execute(
                        f"""SELECT {self.by}, count(*) FROM "{self.prefix}".lysmore_jobs
                            WHERE queue = %s AND state = 'executing' GROUP BY 1""", [self.queue]).fetchall():
                        self.max_by[str(key)] = max(self.max_by[str(key)], n)
                self._stop.wait(0.01)


def _done(conn: psycopg.Connection, prefix: str, total: int) -> bool:
    row = conn.execute(f"""SELECT count(*) FROM "{prefix}".lysmore_jobs WHERE state = 'completed'""").fetchone()
    return row is not None and row[0] == total


def _start(nodes: list[Node], count: int, url: str, prefix: str, queues: dict[str, Any], **env: str) -> list[Node]:
    made = [Node(f"n{i}", url, prefix, CLUSTER_QUEUES=json.dumps(queues), **env).start() for i in range(count)]
    nodes.extend(made)
    return made


def test_global_limit_holds_across_five_nodes_and_keeps_slots_busy(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine()
    create_ledger(conn, prefix)
    total = 3000
    eng.insert_all([LedgerJob.new({"ms": [20, 200]}, queue="media") for _ in range(total)])
    with Sampler(database_url, prefix, "media") as sampler:
        _start(nodes, 5, database_url, prefix, {"media": {"local_limit": 10, "global_limit": 10}})
        wait_for(lambda: _done(conn, prefix, total), timeout=120, what="all media jobs")
    busy = [ex for ex, avail in sampler.samples if avail > 0]
    assert max(ex for ex, _ in sampler.samples) <= 10
    # Skip the start-up (nodes booting): from the first moment the limit was reached.
    first_full = next(i for i, ex in enumerate(busy) if ex == 10)
    steady = busy[first_full:]
    assert sum(steady) / len(steady) >= 8, sum(steady) / len(steady)
    per_node = dict(conn.execute(f'SELECT node, count(*) FROM "{prefix}".ledger GROUP BY node').fetchall())
    assert sorted(per_node) == [f"n{i}" for i in range(5)], per_node


def test_rate_limit_holds_over_three_nodes_and_runs_near_ideal(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine()
    create_ledger(conn, prefix)
    total = 200
    eng.insert_all([LedgerJob.new({"ms": [5, 50]}, queue="mail") for _ in range(total)])
    _start(nodes, 3, database_url, prefix, {"mail": {"local_limit": 10, "rate_limit": {"allowed": 20, "period": 3}}})
    wait_for(lambda: _done(conn, prefix, total), timeout=90, what="all mail jobs")
    starts = [r[0] for r in conn.execute(
        f'SELECT attempted_at FROM "{prefix}".lysmore_jobs ORDER BY attempted_at').fetchall()]
    assert max_in_window(starts, timedelta(seconds=3)) <= 20
    ideal = (total / 20 - 1) * 3  # the last window opens 27 s after the first start
    took = (starts[-1] - starts[0]).total_seconds()
    assert took <= ideal * 1.15, (took, ideal)


def test_partitioned_global_limit_per_worker(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine()
    create_ledger(conn, prefix)
    jobs = [LedgerJob.new({"ms": [50, 100]}, queue="part") for _ in range(100)]
    jobs += [OtherLedgerJob.new({"ms": [50, 100]}, queue="part") for _ in range(100)]
    eng.insert_all(jobs)
    queues = {"part": {"local_limit": 10, "global_limit": {"allowed": 2, "partition": {"fields": ["worker"]}}}}
    with Sampler(database_url, prefix, "part", by="worker") as sampler:
        _start(nodes, 3, database_url, prefix, queues)
        wait_for(lambda: _done(conn, prefix, 200), timeout=90, what="all partitioned jobs")
    assert set(sampler.max_by) == {LedgerJob.name, OtherLedgerJob.name}
    assert max(sampler.max_by.values()) <= 2
    assert max(ex for ex, _ in sampler.samples) <= 4
    assert max(ex for ex, _ in sampler.samples) >= 3  # both partitions ran at once


def test_partitioned_rate_limit_per_account(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine()
    create_ledger(conn, prefix)
    # Account 1 has far more work than its rate allows; account 2 must not wait behind it.
    eng.insert_all([LedgerJob.new({"account_id": 1, "ms": [5, 10]}, queue="acct") for _ in range(30)])
    eng.insert_all([LedgerJob.new({"account_id": 2, "ms": [5, 10]}, queue="acct") for _ in range(10)])
    queues = {"acct": {"local_limit": 10, "rate_limit": {
        "allowed": 5, "period": 2, "partition": {"fields": ["args"], "keys": ["account_id"]}}}}
    _start(nodes, 2, database_url, prefix, queues)
    wait_for(lambda: conn.execute(
        f"""SELECT count(*) FROM "{prefix}".lysmore_jobs WHERE args->>'account_id' = '2' AND state = 'completed'"""
    ).fetchone()[0] == 10, timeout=30, what="account 2 done")
    for account in (1, 2):
        starts = [r[0] for r in conn.execute(
            f"""SELECT attempted_at FROM "{prefix}".lysmore_jobs WHERE args->>'account_id' = %s
                AND attempted_at IS NOT NULL ORDER BY attempted_at""", [str(account)]).fetchall()]
        assert max_in_window(starts, timedelta(seconds=2)) <= 5
    # Account 1 is still far from done when account 2 finished: the partitions are independent.
    left = conn.execute(
        f"""SELECT count(*) FROM "{prefix}".lysmore_jobs WHERE args->>'account_id' = '1' AND state <> 'completed'"""
    ).fetchone()[0]
    assert left > 0


def test_killed_node_slots_come_back_after_lifeline_without_exceeding(make_engine, conn, database_url, prefix, nodes) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine()
    create_ledger(conn, prefix)
    total = 400
    eng.insert_all([LedgerJob.new({"ms": [100, 300]}, queue="media") for _ in range(total)])
    env = {"CLUSTER_NODE_TTL": "2", "CLUSTER_LEASE": "2", "CLUSTER_HEARTBEAT": "0.5"}
    with Sampler(database_url, prefix, "media") as sampler:
        made = _start(nodes, 3, database_url, prefix, {"media": {"local_limit": 10, "global_limit": 6}}, **env)
        wait_for(lambda: conn.execute(
            f"""SELECT count(*) FROM "{prefix}".lysmore_jobs WHERE state = 'executing'""").fetchone()[0] >= 6,
            timeout=30, what="slots in use")
        holders = dict(conn.execute(
            f"""SELECT attempted_by[1], count(*) FROM "{prefix}".lysmore_jobs WHERE state = 'executing' GROUP BY 1"""
        ).fetchall())
        victim = max(holders, key=lambda name: holders[name])
        next(n for n in made if n.name == victim).kill()
        wait_for(lambda: _done(conn, prefix, total), timeout=120, what="all jobs after the kill")
    assert max(ex for ex, _ in sampler.samples) <= 6
    rescued = conn.execute(
        f"""SELECT count(*) FROM "{prefix}".lysmore_jobs WHERE errors::text LIKE %s""", [f"%node {victim} was lost%"]
    ).fetchone()[0]
    assert rescued >= 1


def test_limits_config_is_validated() -> None:
    with pytest.raises(InvalidConfig, match="rate_limit"):
        Engine("postgresql://x/y", queues={"q": {"rate_limit": {"allowed": 5}}})
    with pytest.raises(InvalidConfig, match="partition fields"):
        Engine("postgresql://x/y", queues={"q": {"global_limit": {"allowed": 2, "partition": {"fields": ["color"]}}}})
    with pytest.raises(InvalidConfig, match="keys need 'args'"):
        Engine("postgresql://x/y", queues={"q": {"global_limit": {"allowed": 2, "partition": {"fields": ["worker"], "keys": ["a"]}}}})
    with pytest.raises(InvalidConfig, match="unknown options"):
        Engine("postgresql://x/y", queues={"q": {"global": 3}})


def test_scaling_global_and_rate_limits_at_runtime_persists(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"media": {"global_limit": 10}}, node="a").start()
    eng.scale_queue("media", global_limit=3, rate_limit={"allowed": 5, "period": 1}, wait=30)
    wait_for(lambda: eng._producers["media"].effective.global_limit.allowed == 3, what="global limit applied")
    assert eng._producers["media"].effective.rate_limit.allowed == 5
    eng.stop()
    again = make_engine(queues={"media": {"global_limit": 10}}, node="a").start()
    wait_for(lambda: again._producers["media"].effective.global_limit.allowed == 3, what="persisted")
    with pytest.raises(InvalidConfig):
        again.scale_queue("media", wait=30)
