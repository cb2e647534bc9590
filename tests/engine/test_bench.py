"""``lysmore bench --history N``: the engine bench runs beside a table of finished jobs, and
leaves them there while it measures."""

from __future__ import annotations

from psycopg import sql

from engine import Engine
from engine.bench import run_bench, seed_history


def test_history_is_finished_jobs_spread_over_a_day(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng: Engine = make_engine()
    seed_history(eng, 1000)
    rows = conn.execute(
        sql.SQL("SELECT state::text, count(*), max(now() - coalesce(completed_at, discarded_at, cancelled_at))"
                " > interval '23 hours' FROM {}.lysmore_jobs GROUP BY 1 ORDER BY 1").format(sql.Identifier(prefix))
    ).fetchall()
    counts = {r[0]: r[1] for r in rows}
    assert counts == {"cancelled": 10, "completed": 970, "discarded": 20}
    assert all(r[2] for r in rows if r[0] == "completed")


def test_the_bench_keeps_the_history_while_it_measures(database_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    import engine.bench as bench

    real_drop = bench._drop

    def count_then_drop(eng: Engine) -> None:
        with eng.connection() as c:
            row = c.execute(sql.SQL("SELECT count(*) FILTER (WHERE args ? 'h'), count(*) FROM {}.lysmore_jobs")
                            .format(sql.Identifier(eng.prefix))).fetchone()
        assert row is not None
        seen.extend(row)
        real_drop(eng)

    monkeypatch.setattr(bench, "_drop", count_then_drop)
    result = run_bench(database_url, jobs=40, singles=10, latency_samples=3, history=500)
    assert result.history == 500 and result.process_per_s > 0
    # the history is all there, beside the bench's own 40 jobs and 3 latency probes, all finished
    assert seen == [500, 543]


def test_the_bench_with_an_async_worker_runs_every_job_on_it(database_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: dict[tuple[str, str], int] = {}
    import engine.bench as bench

    real_drop = bench._drop

    def count_then_drop(eng: Engine) -> None:
        with eng.connection() as c:
            rows = c.execute(sql.SQL("SELECT worker, state::text, count(*) FROM {}.lysmore_jobs GROUP BY 1, 2")
                             .format(sql.Identifier(eng.prefix))).fetchall()
        seen.update({(w, s): n for w, s, n in rows})
        real_drop(eng)

    monkeypatch.setattr(bench, "_drop", count_then_drop)
    result = run_bench(database_url, jobs=40, singles=10, latency_samples=3, async_worker=True)
    assert result.async_worker and result.process_per_s > 0
    assert seen == {("lysmore.bench.async_noop", "completed"): 43}  # the 40 and the 3 latency probes
