"""``lysmore demo --headless`` as a real process, watched from the database while it runs.

One 20-second run at speed 50 on two nodes proves the demo's promises: every state reached,
scheduled and workflow jobs, mailers never started more than 20 per 30 s, media never more than
10 at once across nodes, and a clean stop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers import max_in_window

ROOT = Path(__file__).resolve().parents[2]
RATE_ALLOWED, RATE_PERIOD = 20, timedelta(seconds=30)
MEDIA_LIMIT = 10
SAMPLE_EVERY = 0.015  # seconds between samples of the media queue and the mailers rate log


@dataclass
class Watch:
    """What a separate connection saw while the demo ran."""

    samples: int = 0
    media_max: int = 0
    media_counts: list[int] = field(default_factory=list)
    mailer_starts: set[tuple[int, datetime]] = field(default_factory=set)
    states_seen: set[str] = field(default_factory=set)


def watch(proc: subprocess.Popen[str], conn: psycopg.Connection, prefix: str, timeout: float) -> Watch:
    """Sample the demo's schema every ~15 ms until the process exits (that exit is what we await)."""
    schema = sql.Identifier(prefix)
    media = sql.SQL("SELECT count(*) FROM {}.lysmore_jobs WHERE queue = 'media' AND state = 'executing'").format(schema)
    rate_log = sql.SQL("SELECT job_id, started_at FROM {}.lysmore_rate_log WHERE queue = 'mailers'").format(schema)
    states = sql.SQL("SELECT DISTINCT state::text FROM {}.lysmore_jobs").format(schema)
    seen = Watch()
    deadline = datetime.now() + timedelta(seconds=timeout)
    while True:
        try:
            n = conn.execute(media).fetchone()[0]  # type: ignore[index]
            seen.media_counts.append(n)
            seen.media_max = max(seen.media_max, n)
            seen.mailer_starts.update(conn.execute(rate_log).fetchall())
            if seen.samples % 10 == 0:
                seen.states_seen.update(r[0] for r in conn.execute(states).fetchall())
            seen.samples += 1
        except psycopg.errors.UndefinedTable:
            pass  # not migrated yet
        try:
            proc.wait(timeout=SAMPLE_EVERY)
            return seen
        except subprocess.TimeoutExpired:
            if datetime.now() > deadline:
                proc.kill()
                raise AssertionError(f"the demo did not finish within {timeout}s") from None


def test_the_window_count_matches_the_engines_rule() -> None:
    t0 = datetime(2026, 1, 1)
    at = [t0 + timedelta(seconds=s) for s in (0, 1, 2, 30, 31)]
    assert max_in_window(at, timedelta(seconds=30)) == 3  # 0 leaves the window at exactly 30, 1 at 31
    assert max_in_window([], timedelta(seconds=30)) == 0


@pytest.fixture(params=[2, 3], ids=["2-nodes", "3-nodes"])
def demo_run(
    request: pytest.FixtureRequest, database_url: str, prefix: str, conn: psycopg.Connection,
) -> Iterator[tuple[subprocess.CompletedProcess[str], Watch]]:
    """Run the headless demo for 20 s at speed 50 and watch it; drop its schema afterwards.

    Two nodes is the demo's default (the command the demo promises); three is the smart-limits
    proof that the seed's queue set holds every limit under the demo's load.
    """
    env = {**os.environ, "LYSMORE_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    env.pop("LYSMORE_PREFIX", None)
    cmd = [sys.executable, "-m", "lysmore", "demo", "--headless", "--duration", "20", "--speed", "50",
           "--prefix", prefix, "--every", "4", "--seed", "7"]
    if request.param != 2:
        cmd += ["--nodes", str(request.param)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = watch(proc, conn, prefix, timeout=80)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    yield subprocess.CompletedProcess(cmd, proc.returncode, out, err), seen
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(prefix)))


def rows(conn: psycopg.Connection, query: str, prefix: str, **params: Any) -> list[tuple[Any, ...]]:
    return conn.execute(sql.SQL(query).format(p=sql.Identifier(prefix)), params).fetchall()


def test_headless_demo_reaches_every_state_within_the_seeds_limits(
    demo_run: tuple[subprocess.CompletedProcess[str], Watch], conn: psycopg.Connection, prefix: str,
) -> None:
    result, seen = demo_run
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) >= 3
    assert all("jobs/s" in line and "mailers 20/30s" in line and "/10 global" in line for line in progress)
    assert any(line.startswith("Lysmore demo ran") for line in lines)
    assert any(line.strip().startswith("errors") and "discarded" in line for line in lines)

    counts = dict(rows(conn, "SELECT state::text, count(*) FROM {p}.lysmore_jobs GROUP BY 1", prefix))
    # every state the dashboard shows had jobs in it
    ever = seen.states_seen | set(counts)
    assert {"available", "scheduled", "executing", "retryable", "completed", "discarded", "held"} <= ever, ever
    assert counts.get("completed", 0) > 100 and counts.get("discarded", 0) > 0
    # jobs that failed an attempt and ran again went through retryable
    retried = rows(conn, "SELECT count(*) FROM {p}.lysmore_jobs WHERE jsonb_array_length(errors) > 0 "
                         "AND attempt > (errors -> 0 ->> 'attempt')::int", prefix)[0][0]
    assert retried > 0
    scheduled = rows(conn, "SELECT count(*) FROM {p}.lysmore_jobs "
                           "WHERE scheduled_at > inserted_at + interval '900 ms'", prefix)[0][0]
    assert scheduled > 0
    # workflows: steps exist, and a step that completed ran only after all its dependencies completed
    steps = rows(conn, "SELECT count(*), count(DISTINCT workflow_id) FROM {p}.lysmore_jobs "
                       "WHERE workflow_id IS NOT NULL", prefix)[0]
    assert steps[0] > 0 and steps[1] > 0
    early = rows(conn, """
        SELECT s.id FROM {p}.lysmore_jobs s
        JOIN {p}.lysmore_jobs d ON d.workflow_id = s.workflow_id AND d.workflow_step = ANY(s.workflow_deps)
        WHERE s.state = 'completed' AND (d.state <> 'completed' OR d.completed_at > s.attempted_at)""", prefix)
    assert early == []
    done_steps = rows(conn, "SELECT count(*) FROM {p}.lysmore_jobs WHERE state = 'completed' "
                            "AND cardinality(workflow_deps) > 0", prefix)[0][0]
    assert done_steps > 0
    # unique jobs were inserted
    assert rows(conn, "SELECT count(*) FROM {p}.lysmore_jobs WHERE meta ? 'dedupe'", prefix)[0][0] > 0

    # media: never more than 10 executing at once across both nodes
    assert seen.samples > 200
    assert 0 < seen.media_max <= MEDIA_LIMIT, seen.media_max
    # mailers: never more than 20 started in any 30 s, from the rate log and from attempted_at
    attempted = rows(conn, "SELECT id, attempted_at FROM {p}.lysmore_jobs "
                           "WHERE queue = 'mailers' AND attempted_at IS NOT NULL", prefix)
    starts = {(i, t) for i, t in attempted} | seen.mailer_starts
    assert len(starts) >= RATE_ALLOWED  # the limit was reached, so the check means something
    assert max_in_window([t for _, t in starts], RATE_PERIOD) <= RATE_ALLOWED
    assert counts_of(conn, prefix, "mailers", "available") > RATE_ALLOWED  # so mailers piles up

    # a clean stop: no node left registered, nothing left executing
    assert rows(conn, "SELECT count(*) FROM {p}.lysmore_nodes", prefix)[0][0] == 0
    assert counts.get("executing", 0) == 0


def counts_of(conn: psycopg.Connection, prefix: str, queue: str, state: str) -> int:
    return int(rows(conn, "SELECT count(*) FROM {p}.lysmore_jobs WHERE queue = %(q)s AND state::text = %(s)s",
                    prefix, q=queue, s=state)[0][0])
