"""Cron entries in the database: the leader records its crontab for readers, and a paused entry
inserts nothing, on any node, until it is resumed (the instants in between are skipped)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from engine import CronEntry, Engine, InvalidConfig, Job, Worker
from engine._cron import Cron, next_instant

MINUTELY = "minutely"


class Tick(Worker, queue="cron"):
    def perform(self, job: Job) -> None:
        return None


def _entry(**kw: Any) -> CronEntry:
    return CronEntry("* * * * *", Tick, name=MINUTELY, tolerance=3600, args={"n": 1}, **kw)


class Shifted:
    """The database clock moved on by ``shift``: the cron's notion of now, as if minutes passed."""

    def __init__(self, eng: Engine) -> None:
        self.shift = timedelta(0)
        self._real = eng.store.now

    def __call__(self, c: psycopg.Connection) -> datetime:
        return self._real(c) + self.shift


def _lead(eng: Engine, monkeypatch: pytest.MonkeyPatch) -> Shifted:
    eng._leader.elect()
    assert eng.is_leader
    clock = Shifted(eng)
    monkeypatch.setattr(eng.store, "now", clock)
    return clock


def _tick(eng: Engine) -> int:
    """One round of a cron as a freshly started node runs it (nothing remembered in memory)."""
    return Cron(eng.store, eng._leader, eng.crontab).tick()


def _jobs(conn: psycopg.Connection, prefix: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(prefix, "lysmore_jobs"))).fetchone()
    assert row is not None
    return int(row[0])


def _runs(conn: psycopg.Connection, prefix: str) -> list[tuple[bool, bool]]:
    """(paused, inserted a job) of each recorded run, oldest first."""
    rows = conn.execute(sql.SQL("SELECT paused, job_id IS NOT NULL FROM {} ORDER BY instant").format(
        sql.Identifier(prefix, "lysmore_cron_runs"))).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_a_paused_entry_inserts_nothing_on_any_node_until_resumed(
    make_engine: Any, conn: psycopg.Connection, prefix: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = make_engine(crontab=[_entry()], node="one")
    clock = _lead(one, monkeypatch)
    assert _tick(one) == 1
    assert one.pause_cron(MINUTELY) is True
    assert one.pause_cron(MINUTELY) is False  # already paused: nothing changed

    clock.shift = timedelta(minutes=1)
    assert _tick(one) == 0  # a restarted node: the pause is in the table, not in memory
    assert _jobs(conn, prefix) == 1
    assert _runs(conn, prefix) == [(False, True), (True, False)]  # the instant passed, with no job

    # Another node takes over: the pause holds there too.
    one._leader.resign()
    two = make_engine(crontab=[_entry()], node="two")
    clock_two = _lead(two, monkeypatch)
    clock_two.shift = timedelta(minutes=2)
    assert _tick(two) == 0
    assert _jobs(conn, prefix) == 1

    assert two.resume_cron(MINUTELY) is True
    assert two.resume_cron(MINUTELY) is False
    assert _tick(two) == 0  # resuming does not run the instants skipped while paused
    clock_two.shift = timedelta(minutes=3)
    assert _tick(two) == 1  # the next instant runs
    assert _jobs(conn, prefix) == 2
    assert _runs(conn, prefix) == [(False, True), (True, False), (True, False), (False, True)]


def test_a_pause_is_per_prefix(make_engine: Any, conn: psycopg.Connection, prefix: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    here = make_engine(crontab=[_entry()])
    there_prefix = f"{prefix}_b"
    there = make_engine(crontab=[_entry()], prefix=there_prefix)
    _lead(here, monkeypatch)
    _lead(there, monkeypatch)
    _tick(here)
    _tick(there)  # both leaders recorded the same entry name in their own prefix
    here.pause_cron(MINUTELY)
    assert [c.paused for c in there.inspect().crons()] == [False]
    monkeypatch.setattr(here.store, "now", lambda c, real=here.store.now: real(c) + timedelta(minutes=1))
    monkeypatch.setattr(there.store, "now", lambda c, real=there.store.now: real(c) + timedelta(minutes=1))
    assert _tick(here) == 0
    assert _tick(there) == 1
    assert (_jobs(conn, prefix), _jobs(conn, there_prefix)) == (1, 2)


def test_pausing_an_unknown_entry_names_the_known_ones(make_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = make_engine(crontab=[_entry()])
    with pytest.raises(InvalidConfig, match="no cron entry named 'nightly'.*none recorded yet"):
        eng.pause_cron("nightly")
    _lead(eng, monkeypatch)
    _tick(eng)
    with pytest.raises(InvalidConfig, match="no cron entry named 'nightly'.*'minutely'"):
        eng.resume_cron("nightly")
    with pytest.raises(InvalidConfig, match="non-empty string"):
        eng.pause_cron("")


def test_the_leader_records_its_crontab_and_readers_see_runs(
    make_engine: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hourly = CronEntry("0 * * * *", Tick, name="hourly", timezone="Europe/Oslo", tolerance=3600)
    eng = make_engine(crontab=[_entry(), hourly])
    clock = _lead(eng, monkeypatch)
    assert eng.inspect().crons() == []  # nothing recorded before a leader ticks
    _tick(eng)
    clock.shift = timedelta(minutes=1)
    _tick(eng)
    crons = {c.name: c for c in eng.inspect().crons()}
    assert set(crons) == {"hourly", MINUTELY}
    m = crons[MINUTELY]
    assert (m.expression, m.timezone, m.worker, m.queue, m.args) == ("* * * * *", "UTC", Tick.name, "cron", {"n": 1})
    assert m.active and not m.paused and m.recorded_by == eng.node_name
    assert [r.state for r in m.recent] == ["available", "available"]
    assert m.last_run == m.recent[0].instant and m.recent[0].instant > m.recent[1].instant
    assert m.next_run is not None and m.next_run.second == 0 and m.next_run > m.recent[1].instant
    h = crons["hourly"]
    assert h.timezone == "Europe/Oslo" and h.next_run is not None and h.next_run.minute == 0

    eng.pause_cron(MINUTELY)
    paused = next(c for c in eng.inspect().crons() if c.name == MINUTELY)
    assert paused.paused and paused.paused_at is not None and paused.next_run is None

    # A new leader whose crontab dropped the entry: it stays listed, inactive, still paused.
    eng._leader.resign()
    other = make_engine(crontab=[hourly], node="other")
    _lead(other, monkeypatch)
    _tick(other)
    gone = next(c for c in other.inspect().crons() if c.name == MINUTELY)
    assert not gone.active and gone.paused and gone.next_run is None
    assert [c.name for c in other.inspect().crons()] == ["hourly", MINUTELY]  # active ones first


def test_next_instant_follows_the_zone_and_refuses_nothing() -> None:
    after = datetime.fromisoformat("2026-03-29T00:30:00+00:00")
    # 02:30 Berlin does not exist that night: the next run is at 03:00 CEST, 01:00 UTC.
    assert next_instant("30 2 * * *", "Europe/Berlin", after) == datetime.fromisoformat("2026-03-29T01:00:00+00:00")
    assert next_instant("*/15 * * * *", "UTC", after) == datetime.fromisoformat("2026-03-29T00:45:00+00:00")
    assert next_instant("not cron", "UTC", after) is None
    assert next_instant("* * * * *", "Mars/Olympus", after) is None
