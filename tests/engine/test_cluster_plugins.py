"""Cluster plugins in one process (each Engine is its own node): lifeline, pruner, stats, cron,
queue control across nodes, leadership, counts and status."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest

import engine._inspect
from engine import CronEntry, Engine, InvalidConfig, Job, Worker, testing
from tests.helpers import EventLog, wait_for


class Quick(Worker, queue="q"):
    def perform(self, job: Job) -> str:
        return "ok"


class Flaky(Worker, queue="q", max_attempts=1):
    def perform(self, job: Job) -> None:
        raise RuntimeError("boom")


class Hold(Worker, queue="q"):
    """Runs until told to stop (cancelled, released or rescued)."""

    def perform(self, job: Job) -> str:
        job.wait_cancelled(30)
        return "late"


def _state(conn: psycopg.Connection, prefix: str, job_id: int) -> str:
    row = conn.execute(f'SELECT state::text FROM "{prefix}".lysmore_jobs WHERE id = %s', [job_id]).fetchone()
    assert row is not None
    return str(row[0])


def _lead(eng: Engine) -> None:
    assert eng._leader is not None
    eng._leader.elect()
    assert eng.is_leader


def test_one_leader_among_many_and_a_new_term_after_resign(make_engine) -> None:  # type: ignore[no-untyped-def]
    engines = [make_engine(queues={"q": 1}, node=f"n{i}") for i in range(3)]
    for eng in engines:
        assert eng._leader is not None
        eng._leader.elect()
    leaders = [e for e in engines if e.is_leader]
    assert len(leaders) == 1
    first = leaders[0]
    assert first._leader is not None
    epoch = first._leader.epoch
    first._leader.resign()
    assert not first.is_leader
    other = next(e for e in engines if e is not first)
    assert other._leader is not None
    other._leader.elect()
    assert other.is_leader and other._leader.epoch == (epoch or 0) + 1


def test_local_lease_expiry_stops_leading_without_asking_the_database(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 1}, leader_lease=5.0)
    _lead(eng)
    assert eng._leader is not None
    eng._leader._valid_until = 0.0  # as if the process had been paused past its lease
    assert not eng.is_leader
    assert testing.run_round(eng, "lifeline") == 0 and testing.run_round(eng, "pruner") == 0


def test_lifeline_rescues_dead_nodes_jobs_but_not_live_long_runners(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    live = make_engine(queues={"q": 2}, node="live").start()
    log = EventLog()
    live.subscribe(log, kinds=["start"])
    job = live.insert(Hold.new())
    log.wait(lambda ev: any(e.job.id == job.id for e in ev))
    # A dead node: registered, heartbeat long ago, one job executing.
    dead_id = "00000000-0000-0000-0000-00000000dead"
    conn.execute(
        f"""INSERT INTO "{prefix}".lysmore_nodes (id, name, host, pid, heartbeat_at)
            VALUES (%s, 'dead', 'h', 1, now() - interval '1 hour')""", [dead_id])
    orphan = live.insert(Quick.new(schedule_in=3600))  # not due: the live node cannot take it first
    conn.execute(
        f"""UPDATE "{prefix}".lysmore_jobs SET state = 'executing', attempt = 1, node_id = %s,
            attempted_at = now() - interval '2 hours' WHERE id = %s""", [dead_id, orphan.id])
    # The live node's job has been running "for hours" too: it must not be touched.
    conn.execute(f"""UPDATE "{prefix}".lysmore_jobs SET attempted_at = now() - interval '3 hours' WHERE id = %s""",
                 [job.id])
    _lead(live)
    assert testing.run_round(live, "lifeline") == 1
    wait_for(lambda: _state(conn, prefix, orphan.id) == "completed", what="rescued job to run again")
    rescued = live.get_job(orphan.id)
    assert any("node dead was lost" in e["error"] for e in rescued.errors)
    assert _state(conn, prefix, job.id) == "executing"
    live.cancel_job(job.id)


def test_lifeline_discards_rescued_job_without_attempts_left(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 1}, node="leader")
    eng.start()
    job = eng.insert(Flaky.new(schedule_in=3600))  # not due: the node cannot run it first
    eng.pause_queue("q", wait=30)
    conn.execute(
        f"""INSERT INTO "{prefix}".lysmore_nodes (id, name, host, pid, heartbeat_at)
            VALUES ('00000000-0000-0000-0000-0000000000aa', 'gone', 'h', 1, now() - interval '1 hour')""")
    conn.execute(
        f"""UPDATE "{prefix}".lysmore_jobs SET state = 'executing', attempt = 1,
            node_id = '00000000-0000-0000-0000-0000000000aa' WHERE id = %s""", [job.id])
    _lead(eng)
    assert testing.run_round(eng, "lifeline") == 1
    assert _state(conn, prefix, job.id) == "discarded"


def test_orphans_without_a_producer_are_rescued_after_orphan_after(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 1}, node="leader", orphan_after=60).start()
    eng.pause_queue("q", wait=30)
    young = eng.insert(Quick.new())
    old = eng.insert(Quick.new(queue="nobody_runs_this"))
    conn.execute(
        f"""UPDATE "{prefix}".lysmore_jobs SET state = 'executing', attempt = 1, node_id = %s,
            attempted_at = now() - make_interval(secs => CASE WHEN id = %s THEN 30 ELSE 120 END)
            WHERE id IN (%s, %s)""", [eng.node_id, young.id, young.id, old.id])
    _lead(eng)
    assert testing.run_round(eng, "lifeline") == 1
    assert _state(conn, prefix, old.id) == "available"
    assert _state(conn, prefix, young.id) == "executing"


def test_pruner_deletes_old_finished_jobs_in_batches_and_can_be_off(make_engine, conn, prefix, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import engine._plugins as plugins

    eng = make_engine(queues={"q": 1}, prune_max_age=3600)
    jobs = eng.insert_all([Quick.new() for _ in range(25)])
    keep = eng.insert(Quick.new())
    conn.execute(
        f"""UPDATE "{prefix}".lysmore_jobs SET state = 'completed', completed_at = now() - interval '2 hours'
            WHERE id <> %s""", [keep.id])
    monkeypatch.setattr(plugins, "PRUNE_BATCH", 10)
    _lead(eng)
    assert testing.run_round(eng, "pruner") == len(jobs)
    left = conn.execute(f'SELECT id FROM "{prefix}".lysmore_jobs').fetchall()
    assert [r[0] for r in left] == [keep.id]
    keeper = make_engine(queues={"q": 1}, prune_max_age=None, node="keeps-history")
    conn.execute(f"""UPDATE "{prefix}".lysmore_jobs SET state = 'completed', completed_at = now() - interval '9 days'""")
    _lead(keeper) if not eng.is_leader else None
    assert testing.run_round(keeper, "pruner") == 0


def test_stats_rollups_count_outcomes_per_minute(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 2})
    eng.insert_all([Quick.new() for _ in range(3)] + [Flaky.new()])
    counts = testing.drain(eng, "q")
    assert counts == {"completed": 3, "discarded": 1}
    row = conn.execute(
        f'SELECT sum(completed), sum(discarded), sum(failed) FROM "{prefix}".lysmore_stats_minutely WHERE queue = %s',
        ["q"]).fetchone()
    assert tuple(row) == (3, 1, 0)


def _rollup(conn, prefix, queue="q"):  # type: ignore[no-untyped-def]
    row = conn.execute(
        f'SELECT coalesce(sum(completed), 0), coalesce(sum(discarded), 0) FROM "{prefix}".lysmore_stats_minutely'
        " WHERE queue = %s", [queue]).fetchone()
    return tuple(row)


def test_a_running_node_adds_its_outcomes_to_the_rollups_and_the_rest_when_it_stops(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 2}).start()
    eng.insert_all([Quick.new() for _ in range(5)])
    wait_for(lambda: _rollup(conn, prefix) == (5, 0), what="the rollup loop to add five completions")
    log = EventLog()
    eng.subscribe(log, kinds=["discard"])
    eng.insert(Flaky.new())
    log.wait(lambda events: len(events) == 1)
    eng.stop()  # whatever the loop has not added yet, stop adds
    assert _rollup(conn, prefix) == (5, 1)


def test_rollups_that_could_not_be_written_wait_for_the_next_time(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    from psycopg import sql

    eng = make_engine(queues={"q": 2})
    eng.insert_all([Quick.new() for _ in range(3)])
    real = eng.q.stats.rollup
    eng.q.stats.rollup = sql.SQL("SELECT 1 / 0")  # type: ignore[assignment]
    with pytest.raises(psycopg.errors.DivisionByZero):
        testing.drain(eng, "q")
    assert _rollup(conn, prefix) == (0, 0)
    eng.q.stats.rollup = real
    testing.run_round(eng, "rollups")
    assert _rollup(conn, prefix) == (3, 0)
    testing.run_round(eng, "rollups")  # nothing twice
    assert _rollup(conn, prefix) == (3, 0)


def test_queue_counts_exact_and_estimated(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    eng.insert_all([Quick.new() for _ in range(40)] + [Quick.new(queue="other") for _ in range(10)])
    exact = eng.queue_counts()
    assert not exact.estimated
    assert exact.by_queue == {"q": {"available": 40}, "other": {"available": 10}}
    conn.execute(f'ANALYZE "{prefix}".lysmore_jobs')
    estimated = eng.inspect().counts(exact_below=1)
    assert estimated.estimated
    assert estimated.by_queue["q"]["available"] == pytest.approx(40, abs=2)
    assert estimated.by_queue["other"]["available"] == pytest.approx(10, abs=2)


def test_a_finished_state_is_estimated_sooner_than_a_live_one(make_engine, conn, prefix, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Past the threshold, a finished state (history) is its estimate from a lower count on than a
    live one (work an operator acts on): the same 20 rows are counted when available and
    estimated when completed."""
    eng = make_engine()
    jobs = eng.insert_all([Quick.new() for _ in range(40)])
    conn.execute(f'UPDATE "{prefix}".lysmore_jobs SET state = \'completed\', completed_at = now() '
                 "WHERE id = ANY(%s)", [[j.id for j in jobs[:20]]])
    conn.execute(f'ANALYZE "{prefix}".lysmore_jobs')
    monkeypatch.setattr(engine._inspect, "EXACT_BELOW_FINISHED", 10)
    counts = eng.inspect().counts(exact_below=30)
    assert counts.estimated_states == {"completed"}
    assert counts.by_state["available"] == 20
    assert counts.by_state["completed"] == pytest.approx(20, abs=3)


def test_pause_and_scale_reach_every_node_and_persist_across_restart(make_engine) -> None:  # type: ignore[no-untyped-def]
    a = make_engine(queues={"q": 3}, node="a").start()
    b = make_engine(queues={"q": 3}, node="b").start()
    wait_for(lambda: len(a.status()["nodes"]) == 2, what="both nodes registered")
    result = a.pause_queue("q", wait=30)
    assert sorted(result.acked) == ["a", "b"] and result.pending == []
    assert b._producers["q"].paused
    result = b.scale_queue("q", 7, node="a", wait=30)
    assert result.acked == ["a"]
    assert a._producers["q"].limit == 7 and b._producers["q"].limit == 3
    a.stop()
    again = make_engine(queues={"q": 3}, node="a").start()
    wait_for(lambda: again._producers["q"].limit == 7, what="persisted scale applied")
    assert again._producers["q"].paused
    result = again.resume_queue("q", wait=30)  # a loaded machine may take more than the default 2 s
    assert sorted(result.acked) == ["a", "b"] and result.pending == []
    assert not again._producers["q"].paused and not b._producers["q"].paused


def test_paused_queue_runs_nothing_until_resumed(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 2}).start()
    eng.pause_queue("q", wait=30)
    job = eng.insert(Quick.new())
    done = threading.Event()
    eng.subscribe(lambda e: done.set(), kinds=["success"])
    assert not done.wait(0.5)  # paused: the job has had ample chances to be fetched
    assert _state(conn, prefix, job.id) == "available"
    eng.resume_queue("q", wait=30)
    assert done.wait(5)


def test_a_pause_waits_for_a_fetch_in_flight_before_it_is_acknowledged(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    """A fetch begun before the pause (the second fetcher polls) and slow to reach the database must
    not claim a job inserted after the caller saw the pause acknowledged."""
    eng = make_engine(queues={"q": 2}).start()
    path = eng._producers["q"].rt.path
    real_fetch = path.fetch
    in_flight, release = threading.Event(), threading.Event()

    def held_fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not release.is_set():
            in_flight.set()
            release.wait(30)
        return real_fetch(*args, **kwargs)

    path.fetch = held_fetch
    eng._producers["q"].wake()
    assert in_flight.wait(10)
    paused: list[object] = []
    pausing = threading.Thread(target=lambda: paused.append(eng.pause_queue("q", wait=30)))
    pausing.start()
    pausing.join(0.5)
    assert pausing.is_alive()  # not acknowledged while the fetch is on its way
    release.set()
    pausing.join(30)
    assert not pausing.is_alive() and paused[0].acked  # type: ignore[attr-defined]
    job = eng.insert(Quick.new())
    done = threading.Event()
    eng.subscribe(lambda e: done.set(), kinds=["success"])
    assert not done.wait(0.5)
    assert _state(conn, prefix, job.id) == "available"


def test_heartbeat_brings_back_a_node_taken_for_dead(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 1}, heartbeat_interval=0.1).start()
    conn.execute(f'DELETE FROM "{prefix}".lysmore_nodes WHERE id = %s', [eng.node_id])
    wait_for(lambda: conn.execute(
        f'SELECT count(*) FROM "{prefix}".lysmore_producers WHERE node_id = %s', [eng.node_id]).fetchone()[0] == 1,
        what="node and producer registered again")


class Tick(Worker, queue="cron"):
    def perform(self, job: Job) -> None:
        return None


def test_cron_inserts_one_job_per_instant_even_with_two_evaluators(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    from engine._cron import Cron

    entry = CronEntry("* * * * *", Tick, name="minutely", tolerance=3600)
    eng = make_engine(crontab=[entry])
    _lead(eng)
    first, second = Cron(eng.store, eng._leader, [entry]), Cron(eng.store, eng._leader, [entry])
    assert first.tick() == 1
    assert second.tick() == 0  # the same instant, claimed already
    rows = conn.execute(f'SELECT name, job_id FROM "{prefix}".lysmore_cron_runs').fetchall()
    assert len(rows) == 1 and rows[0][1] is not None


def test_cron_does_nothing_without_a_live_term(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    from engine._cron import Cron

    entry = CronEntry("* * * * *", Tick, name="m", tolerance=3600)
    eng = make_engine(crontab=[entry])
    assert Cron(eng.store, eng._leader, [entry]).tick() == 0
    _lead(eng)
    conn.execute(f'UPDATE "{prefix}".lysmore_leader SET epoch = epoch + 1')  # someone else's term now
    assert Cron(eng.store, eng._leader, [entry]).tick() == 0
    assert conn.execute(f'SELECT count(*) FROM "{prefix}".lysmore_jobs').fetchone()[0] == 0


def test_cron_missed_policies() -> None:
    skip = CronEntry("0 * * * *", Tick, tolerance=60)
    run_once = CronEntry("0 * * * *", Tick, tolerance=60, missed="run_once")
    now = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert skip.instants(now) == [datetime(2026, 5, 1, 10, 0, tzinfo=UTC)]  # newest, but late
    assert run_once.instants(now) == skip.instants(now)


def test_cron_daylight_saving_rules() -> None:
    fixed = CronEntry("30 2 * * *", Tick, timezone="Europe/Berlin", tolerance=3 * 86400)
    spring = fixed.instants(datetime(2026, 3, 30, 12, tzinfo=UTC))
    # 02:30 does not exist on 29 March: it runs once, at 03:00 CEST (01:00 UTC).
    assert datetime(2026, 3, 29, 1, 0, tzinfo=UTC) in spring
    assert len([i for i in spring if i.date() == datetime(2026, 3, 29).date()]) == 1
    autumn = fixed.instants(datetime(2026, 10, 26, 12, tzinfo=UTC))
    # 02:30 happens twice on 25 October: a fixed-time job runs once, at the first.
    on_day = [i for i in autumn if i.date() == datetime(2026, 10, 25).date()]
    assert on_day == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]
    hourly = CronEntry("@hourly", Tick, timezone="Europe/Berlin", tolerance=4 * 3600)
    hours = hourly.instants(datetime(2026, 10, 25, 3, 30, tzinfo=UTC))
    assert len(hours) == 4 and len(set(hours)) == 4  # every real hour, the repeated one too


def test_bad_cron_entries_are_refused() -> None:
    with pytest.raises(InvalidConfig, match="not valid"):
        CronEntry("61 * * * *", Tick)
    with pytest.raises(InvalidConfig, match="IANA"):
        CronEntry("* * * * *", Tick, timezone="Mars/Olympus")
    with pytest.raises(InvalidConfig, match="missed"):
        CronEntry("* * * * *", Tick, missed="sometimes")
    with pytest.raises(InvalidConfig, match="duplicate"):
        Engine("postgresql://x/y", crontab=[("* * * * *", Tick), ("* * * * *", Tick)])


def test_status_reports_nodes_leader_and_queues(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 4}, node="solo").start()
    eng.insert(Quick.new(queue="q"))
    _lead(eng)
    status = eng.status()
    assert [n["name"] for n in status["nodes"]] == ["solo"]
    assert status["nodes"][0]["leader"] is True
    queue = next(q for q in status["queues"] if q["queue"] == "q")
    assert queue["nodes"][0]["limit"] == 4


@pytest.mark.parametrize(("policy", "expected"), [("skip", 0), ("run_once", 1)])
def test_cron_instants_missed_while_no_node_ran(make_engine, conn, prefix, policy, expected) -> None:  # type: ignore[no-untyped-def]
    from engine._cron import Cron

    entry = CronEntry("* * * * *", Tick, name="m", tolerance=1, missed=policy)
    eng = make_engine(crontab=[entry])
    conn.execute(
        f"""INSERT INTO "{prefix}".lysmore_cron_runs (name, instant)
            VALUES ('m', date_trunc('minute', now()) - interval '3 hours')""")
    now = conn.execute("SELECT now()").fetchone()[0]
    if (now - now.replace(second=0, microsecond=0)).total_seconds() <= 1:
        pytest.skip("too close to a minute boundary for a one-second tolerance")
    _lead(eng)
    assert Cron(eng.store, eng._leader, [entry]).tick() == expected
    assert Cron(eng.store, eng._leader, [entry]).tick() == 0  # and never twice


def test_reconcile_releases_rows_whose_fetch_answer_was_lost(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 2}).start()
    eng.pause_queue("q", wait=30)
    job = eng.insert(Quick.new())
    # The fetch committed, but the node never saw the rows (the connection died on the way back).
    conn.execute(
        f"""UPDATE "{prefix}".lysmore_jobs SET state = 'executing', attempt = 1, node_id = %s,
            attempted_at = now() - interval '1 minute' WHERE id = %s""", [eng.node_id, job.id])
    assert testing.reconcile(eng, "q") == 1
    stored = eng.get_job(job.id)
    assert stored.state.value == "available" and stored.attempt == 0
    assert testing.reconcile(eng, "q") == 0


def test_reset_queue_forgets_persisted_control(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 3}, node="a").start()
    eng.pause_queue("q", wait=30)
    eng.scale_queue("q", 9, wait=30)
    assert eng._producers["q"].paused and eng._producers["q"].limit == 9
    eng.reset_queue("q")
    wait_for(lambda: not eng._producers["q"].paused and eng._producers["q"].limit == 3, what="config again")


def test_unreachable_database_is_a_clear_lysmore_error() -> None:
    from engine import DatabaseUnavailable

    eng = Engine("postgresql://someone:hunter2@127.0.0.1:1/nowhere", connect_timeout=1)
    with pytest.raises(DatabaseUnavailable, match="127.0.0.1") as caught:
        eng.migrate()
    assert "hunter2" not in str(caught.value)


def test_prune_on_demand_and_job_prefix(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    keeper = make_engine(prune_max_age=None)
    pruner = make_engine(prune_max_age=60, node="p")
    job = keeper.insert(Quick.new())
    conn.execute(f"""UPDATE "{prefix}".lysmore_jobs SET state = 'completed', completed_at = now() - interval '1 hour'""")
    assert keeper.prune() == 0
    assert pruner.prune() == 1
    assert keeper.insert(Quick.new()).prefix is None  # not handed out by a node
    fetched = testing.fetch(keeper, "q", 1)[0]
    fetched._engine = keeper
    assert fetched.prefix == prefix and fetched.id != job.id


def test_the_leader_vacuums_the_live_side_once_dead_rows_pile_up(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 10}, node="leader")
    eng.insert_all([Quick.new() for _ in range(1500)])
    assert testing.drain(eng, "q")["completed"] == 1500  # two dead row versions each on the live side
    live = f'"{prefix}".lysmore_jobs_live'

    def vacuums() -> int:
        row = conn.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = %s::regclass", [live])
        return int(row.fetchone()[0])  # type: ignore[index]

    assert testing.run_round(eng, "tidy") is None  # not the leader: nothing
    _lead(eng)
    # The server publishes a backend's row counts when it goes idle, within about ten seconds.
    wait_for(lambda: eng.store.live_side()[1] > 1000 + eng.store.live_side()[0] // 5, timeout=30,
             what="the dead row versions to be counted")
    before = vacuums()
    assert testing.run_round(eng, "tidy") == "vacuum"
    assert vacuums() == before + 1
    assert eng.store.live_side()[1] < 1000  # reclaimed
    assert testing.run_round(eng, "tidy") is None
