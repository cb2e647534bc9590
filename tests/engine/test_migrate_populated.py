"""Upgrading a populated jobs table (migration 6 splits it into live and finished sides): nothing is
lost, nothing changes state, ids go on from where they were, unique keys keep holding."""

from __future__ import annotations

import psycopg
from psycopg import sql

from engine import Engine, apply_migrations
from engine._schema import current_version, latest_version, migrations
from engine._sql import Queries

from .test_unique import Mailer

ROWS = 100_000
STATES = ["available", "scheduled", "executing", "retryable", "completed", "discarded", "cancelled", "held"]

POPULATE = """
INSERT INTO {jobs} (state, queue, worker, args, meta, tags, priority, attempt, max_attempts, errors,
                    result, scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at,
                    attempted_by, node_id, workflow_id, workflow_name, workflow_step, workflow_deps)
SELECT s.state::{state_t}, 'q' || (g %% 7), 'tests.W' || (g %% 5), jsonb_build_object('n', g),
       CASE WHEN g %% 11 = 0 THEN jsonb_build_object('m', g) ELSE '{{}}' END,
       CASE WHEN g %% 13 = 0 THEN ARRAY['t' || (g %% 3)] ELSE ARRAY[]::text[] END,
       g %% 10, CASE WHEN s.state IN ('available', 'scheduled', 'held') THEN 0 ELSE 1 + g %% 3 END, 20,
       CASE WHEN s.state IN ('retryable', 'discarded')
            THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'error', 'boom ' || g)) ELSE '[]' END,
       CASE WHEN s.state = 'completed' AND g %% 17 = 0 THEN jsonb_build_object('r', g) END,
       now() + make_interval(secs => CASE WHEN s.state IN ('scheduled', 'retryable') THEN 3600 ELSE -g END),
       CASE WHEN s.state IN ('available', 'scheduled', 'held') THEN NULL ELSE now() - make_interval(secs => g) END,
       CASE WHEN s.state = 'completed' THEN now() END,
       CASE WHEN s.state = 'cancelled' THEN now() END,
       CASE WHEN s.state = 'discarded' THEN now() END,
       CASE WHEN s.state IN ('available', 'scheduled', 'held') THEN NULL ELSE ARRAY['n1', gen_random_uuid()::text] END,
       CASE WHEN s.state = 'executing' THEN gen_random_uuid() END,
       CASE WHEN g %% 19 = 0 THEN md5((g / 38)::text)::uuid END,
       CASE WHEN g %% 19 = 0 THEN 'flow' END,
       CASE WHEN g %% 19 = 0 THEN 'step' || g END,
       ARRAY[]::text[]
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT (%(states)s::text[])[1 + g %% 8] AS state) AS s
"""


def _snapshot(conn: psycopg.Connection, prefix: str) -> tuple[object, ...]:
    jobs = sql.Identifier(prefix, "lysmore_jobs")
    row = conn.execute(sql.SQL(
        "SELECT count(*), max(id), md5(string_agg(j::text, '|' ORDER BY id)) FROM {} AS j").format(jobs)).fetchone()
    by_state = dict(conn.execute(sql.SQL("SELECT state::text, count(*) FROM {} GROUP BY 1").format(jobs)).fetchall())
    assert row is not None
    return (*row, by_state)


def test_a_table_of_100000_jobs_in_every_state_upgrades_whole(database_url: str, conn: psycopg.Connection,
                                                              prefix: str) -> None:
    q = Queries(prefix)
    before_six = [(v, q.compose(f"migrations/{name}")) for v, name in migrations() if v < 6]
    apply_migrations(conn, prefix, before_six, table="lysmore_migrations", lock="lysmore.migrate")
    assert current_version(conn, prefix) == 5
    jobs = sql.Identifier(prefix, "lysmore_jobs")
    conn.execute(sql.SQL(POPULATE).format(jobs=jobs, state_t=sql.Identifier(prefix, "lysmore_job_state")),
                 {"rows": ROWS, "states": STATES})
    # A unique job holding its key (inserted by version 5's rules: the key is on the row).
    held = Mailer.new({"to": "kept"})
    assert held.unique is not None
    held_id = conn.execute(
        sql.SQL("INSERT INTO {} (state, queue, worker, args, unique_key, unique_states)"
                " VALUES ('completed', 'mail', %s, %s, %s, %s::text[]::{}[]) RETURNING id").format(
            jobs, sql.Identifier(prefix, "lysmore_job_state")),
        [held.worker, psycopg.types.json.Jsonb(held.args), held.unique["key"], held.unique["states"]],
    ).fetchone()[0]  # type: ignore[index]
    count, max_id, digest, by_state = _snapshot(conn, prefix)
    assert count == ROWS + 1 and set(by_state) == set(STATES)

    eng = Engine(database_url, prefix=prefix)
    try:
        assert eng.migrate() == list(range(6, latest_version() + 1))
        assert _snapshot(conn, prefix) == (count, max_id, digest, by_state)  # every row, every column
        sides = dict(conn.execute(sql.SQL(
            "SELECT tableoid::regclass::text, count(*) FROM {} GROUP BY 1").format(jobs)).fetchall())
        live = sum(n for s, n in by_state.items() if s not in ("completed", "discarded", "cancelled"))
        assert sides == {f"{prefix}.lysmore_jobs_live": live, f"{prefix}.lysmore_jobs_finished": count - live}

        fresh = eng.insert(Mailer.new({"to": "new"}))
        assert fresh.id > max_id and not fresh.conflict
        again = eng.insert(Mailer.new({"to": "kept"}))  # the key held before the upgrade still holds
        assert again.conflict and again.id == held_id
        assert eng.get_job(held_id).state.value == "completed"
    finally:
        eng.stop()
