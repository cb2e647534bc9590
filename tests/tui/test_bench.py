"""``lysmore bench --dashboard``: seeds a throwaway schema, times every dashboard read, drops it."""

from __future__ import annotations

import json

import psycopg
import pytest

from engine import InvalidConfig
from lysmore.cli import main
from tui.bench import FILTER_CASES, run_dashboard_bench


def test_dashboard_bench_seeds_times_every_read_and_drops_the_schema(
    database_url: str, conn: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "--dashboard", "--rows", "3000", "--repeat", "1", "--json", "--database-url", database_url])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seeded"] and result["rows"] == 3000
    kinds = [t["kind"] for t in result["timings"]]
    assert kinds.count("filter") == len(FILTER_CASES)
    names = {t["name"] for t in result["timings"]}
    assert {"queues", "jobs all", "jobs completed page 2", "nodes", "audit", "workflows"} <= names
    assert {"jobs all by id asc", "jobs completed by duration desc", "jobs all by priority desc page 2"} <= names
    assert result["slowest"]["median_ms"] == max(t["median_ms"] for t in result["timings"])
    gone = conn.execute("SELECT to_regnamespace(%s)", (result["prefix"],)).fetchone()
    assert gone == (None,)


def test_the_seed_has_what_makes_filters_hard(database_url: str, conn: psycopg.Connection) -> None:
    result = run_dashboard_bench(database_url, rows=4000, repeat=1, keep=True)
    jobs = f'"{result.prefix}".lysmore_jobs'
    try:
        states = dict(conn.execute(f"SELECT state::text, count(*) FROM {jobs} GROUP BY 1").fetchall())
        assert states["completed"] > 3000 and {"available", "scheduled", "retryable", "discarded", "cancelled"} <= set(states)
        facts = conn.execute(
            f"SELECT count(DISTINCT worker), count(*) FILTER (WHERE errors <> '[]'),"
            f" count(*) FILTER (WHERE state = 'discarded' AND errors = '[]'),"
            f" count(*) FILTER (WHERE state = 'completed' AND attempted_by IS NULL),"
            f" count(*) FILTER (WHERE tags <> '{{}}'), count(*) FILTER (WHERE args ? 'account_id'),"
            f" count(*) FILTER (WHERE meta <> '{{}}')"
            f" FROM {jobs}"
        ).fetchone()
        assert facts is not None
        workers, failed, discarded_clean, completed_nowhere, tagged, accounts, with_meta = facts
        assert workers >= 10 and failed > 0 and discarded_clean == 0 and completed_nowhere == 0
        assert tagged > 0 and accounts > 0 and with_meta > 0
        # every read ran and none failed
        assert all(t.median_ms >= 0 for t in result.timings)
    finally:
        conn.execute(f'DROP SCHEMA "{result.prefix}" CASCADE')


def test_dashboard_bench_on_an_existing_schema_leaves_it_alone(
    database_url: str, seeded: str, conn: psycopg.Connection
) -> None:
    result = run_dashboard_bench(database_url, prefix=seeded, repeat=1)
    assert not result.seeded and result.prefix == seeded
    jobs = next(t for t in result.timings if t.name == "jobs all")
    assert jobs.rows == 18
    count = conn.execute(f'SELECT count(*) FROM "{seeded}".lysmore_jobs').fetchone()
    assert count == (18,)


def test_dashboard_bench_never_takes_over_a_schema_it_did_not_make(database_url: str) -> None:
    with pytest.raises(InvalidConfig, match="holds no Lysmore instance"):
        run_dashboard_bench(database_url, prefix="public", repeat=1)
