"""The Charts view: the presenter's drawing (pure), the screen driven by keys over seeded rollups,
and snapshots at 80x24 (block characters, and ASCII for TERM=vt100)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from engine import Rollup, RollupSeries
from engine._timings import BUCKETS, bucket_of, merged, percentile
from tests.tui.charts_seed import WORKERS, _minute_counts, seed_rollups
from tests.tui.conftest import AppFactory, _fixed_schema
from tests.tui.helpers import screen_text, settle
from tests.tui.seed import clock, seed
from tui.app import DashboardApp
from tui.charts import (
    ALL,
    ChartsSnapshot,
    Subject,
    bars,
    chart_lines,
    duration_text,
    step_subject,
    subjects,
)
from tui.model import Cluster
from tui.screens.charts import ChartsScreen

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def _times(*pairs: tuple[float, int]) -> tuple[int, ...]:
    buckets = [0] * BUCKETS
    for seconds, n in pairs:
        buckets[bucket_of(seconds)] += n
    return tuple(buckets)


def _snapshot(slots: list[Rollup], span: str = "hour", subject: Subject = ALL) -> ChartsSnapshot:
    step = 60.0 if span == "hour" else 1200.0
    return ChartsSnapshot(now=NOW, subject=subject, span=span, series=RollupSeries(NOW, step, tuple(slots)),
                          queues=("default", "mailers"), workers=("app.W",), cluster=Cluster(2, "node-a"))


# -- the presenter ---------------------------------------------------------------------------------

def test_an_hour_fits_80_columns_with_its_axis_and_totals() -> None:
    slots = [Rollup() for _ in range(60)]
    slots[-1] = Rollup(completed=12, failed=1, discarded=1, buckets=_times((0.020, 12), (2.0, 2)))
    slots[0] = Rollup(completed=6, buckets=_times((0.020, 6)))
    lines = chart_lines(_snapshot(slots), 78, 22)
    text = [line.plain for line in lines]
    assert len(text) <= 22 and all(len(t) <= 78 for t in text)
    assert text[0].startswith("all queues (1/4)") and "[hour]" in text[0]
    assert text[1].startswith("18 completed · 2 failed · p50 ") and "p95 1.7s" in text[1]  # 2 of 20 took 2 s: p95 is in their bucket
    completed = next(i for i, t in enumerate(text) if t.startswith("completed / min"))
    assert text[completed + 1].startswith("    12│") and text[completed + 1].endswith("█")  # the top is the max
    assert text[-1].strip().endswith("now") and "-60m" in text[-1]


def test_a_terminal_without_block_characters_gets_ascii() -> None:
    slots = [Rollup(completed=i % 4, failed=i % 2, buckets=_times((0.003 * (i + 1), 3))) for i in range(72)]
    lines = chart_lines(_snapshot(slots, span="day"), 80, 22, plain=True)
    text = "\n".join(line.plain for line in lines)
    assert text.isascii()
    assert "#" in text and "|" in text and "-24h" in text and "(average of 20 min)" in text


def test_the_width_keeps_the_newest_slots() -> None:
    slots = [Rollup(completed=1) for _ in range(59)] + [Rollup(completed=100)]
    lines = chart_lines(_snapshot(slots), 40, 20)
    assert all(len(line.plain) <= 40 for line in lines)
    completed = next(i for i, line in enumerate(lines) if line.plain.startswith("completed / min"))
    assert lines[completed + 1].plain.endswith("█")  # the newest minute (the max) is the last column


def test_bars_scale_to_the_top_and_always_show_a_nonzero_value() -> None:
    rows = [r.plain for r in bars([0, 1, 50, 100], 100, 2, "", plain=False)]
    assert rows == ["   █", " ▁██"]
    assert [r.plain for r in bars([0, 1, 100], 100, 2, "", plain=True)] == ["  #", " .#"]


def test_durations_read_at_a_glance() -> None:
    assert [duration_text(s) for s in (None, 0.0004, 0.018, 0.5, 1.23, 125, 4800)] == \
        ["-", "0.4ms", "18ms", "500ms", "1.2s", "2m05s", "1h20m"]


def test_subjects_step_round_all_queues_then_workers() -> None:
    choices = subjects(["default"], ["app.W"])
    assert [s.label for s in choices] == ["all queues", "queue default", "worker app.W"]
    assert step_subject(ALL, choices, -1) == Subject("worker", "app.W")
    assert step_subject(Subject("queue", "gone"), choices, 1) == ALL
    with pytest.raises(ValueError, match="a chart is of all, a queue or a worker, not 'node'"):
        Subject("node", "n1")
    with pytest.raises(ValueError, match="needs a name"):
        Subject("queue")


# -- the screen --------------------------------------------------------------------------------

def _totals(minutes: range, worker: str | None = None) -> tuple[int, int]:
    done = bad = 0
    for m in minutes:
        for w in WORKERS:
            if worker in (None, w):
                c, f, _ = _minute_counts(w, m)
                done, bad = done + c, bad + f
    return done, bad


@pytest.fixture
def charted(seeded: str, conn: psycopg.Connection) -> str:
    seed_rollups(conn, seeded)
    return seeded


@pytest.mark.anyio
async def test_charts_show_each_subject_and_span_and_open_on_the_queue_in_view(
        make_app: AppFactory, charted: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await settle(pilot)
        assert isinstance(app.screen, ChartsScreen)
        text = screen_text(app)
        done, bad = _totals(range(1, 61))
        assert "all queues (1/6)" in text and f"{done:,} completed · {bad:,} failed" in text
        assert "Charts · all queues" in text  # the header names the subject

        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert "queue default (2/6)" in screen_text(app)
        for _ in range(3):  # mailers, then the workers by name: Charge, Report
            await pilot.press("right_square_bracket")
        await settle(pilot)
        text = screen_text(app)
        done, bad = _totals(range(1, 61), "app.workers.Report")
        assert "worker app.workers.Report (5/6)" in text and f"{done:,} completed · {bad:,} failed" in text
        times = merged(_minute_counts("app.workers.Report", m)[2] for m in range(1, 61))
        assert f"p50 {duration_text(percentile(times, 0.5))} · p95 {duration_text(percentile(times, 0.95))}" in text
        assert "p95 2.4s" in text  # Report's slow runs (1.5 to 2.1 s) are more than 5% of its runs

        await pilot.press("t")
        await settle(pilot)
        text = screen_text(app)
        done, bad = _totals(range(1, 24 * 60 + 1), "app.workers.Report")
        assert "[day]" in text and f"{done:,} completed" in text and "-24h" in text

        await pilot.press("1")  # Queues; open default's detail, then 7 charts that queue
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("7")
        await settle(pilot)
        assert isinstance(app.screen, ChartsScreen)
        assert "queue default (2/6)" in screen_text(app)


@pytest.mark.anyio
async def test_charts_of_an_instance_with_no_rollups_say_so(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        text = screen_text(app)
        assert "all queues (1/3)" in text  # the seed's two queues have outcome counts, no times
        assert "no times recorded" in text and "p50 -" in text


# -- snapshots -----------------------------------------------------------------------------------

@pytest.fixture
def charts_prefix(database_url: str) -> Iterator[str]:
    """The deterministic data set and a day of rollups with times, under the snapshot schema name."""
    def fill(conn: psycopg.Connection, prefix: str) -> None:
        seed(conn, prefix)
        seed_rollups(conn, prefix)
    yield from _fixed_schema(database_url, fill)


@pytest.fixture
def shoot(snap_compare: Callable[..., bool], database_url: str, charts_prefix: str) -> Callable[..., bool]:
    def take(keys: tuple[str, ...]) -> bool:
        app = DashboardApp(database_url=database_url, prefix=charts_prefix, clock=clock, database_name="db/test",
                           cursor_blink=False, refresh=60, confirm_delay=0.0)

        async def run_before(pilot: Any) -> None:
            await settle(pilot)
            for key in keys:
                await pilot.press(key)
                await settle(pilot)

        return snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    return take


def test_snapshot_charts_of_a_queue_over_the_hour(shoot: Callable[..., bool]) -> None:
    assert shoot(("7", "right_square_bracket"))


def test_snapshot_charts_in_ascii_over_the_day(shoot: Callable[..., bool], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "vt100")
    assert shoot(("7", "t"))
