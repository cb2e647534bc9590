"""The dashboard's tables (issue #16): sorting with keyset paging, what a revisited or paused screen
says about its data, durations that are never cut, stable widths, the queue's jobs and the
workflow's steps that open their jobs."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from engine import Engine
from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle
from tests.tui.seed import NOW, clock
from tests.tui.test_app import open_jobs, table_keys
from tui.data import Store
from tui.model import SORT_KEYS, Sort
from tui.widgets import KeyedTable

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(database_url: str, seeded: str) -> Iterator[Store]:
    eng = Engine(database_url=database_url, prefix=seeded)
    yield Store(eng, clock=clock)
    eng.stop()


def expected_order(conn: psycopg.Connection, prefix: str, sort: Sort, state: str | None = None) -> list[int]:
    """Every job's id in ``sort``'s order, worked out in Python from the rows (ties by id, the same way)."""
    rows = conn.execute(
        sql.SQL("SELECT id, state::text, attempt, priority, inserted_at, attempted_at,"
                " coalesce(completed_at, cancelled_at, discarded_at) FROM {}.lysmore_jobs")
        .format(sql.Identifier(prefix))
    ).fetchall()

    def key(r: tuple[Any, ...]) -> tuple[Any, int]:
        job_id, st, attempt, priority, inserted, attempted, finished = r
        if sort.key == "duration":
            end = NOW if st == "executing" else finished
            missing = math.inf if sort.ascending_sql else -1.0  # never ran: last, either way
            value: Any = (end - attempted).total_seconds() if end and attempted else missing
        else:
            value = {"id": job_id, "attempt": attempt, "priority": priority, "age": inserted}[sort.key]
        return value, job_id

    rows = [r for r in rows if state is None or r[1] == state]
    ordered = sorted(rows, key=key, reverse=not sort.ascending_sql)
    return [r[0] for r in ordered]


def all_pages(store: Store, sort: Sort, state: str | None = None, limit: int = 4) -> list[list[int]]:
    pages: list[list[int]] = []
    after = None
    while True:
        snap = store.jobs(state, sort=sort, after=after, page=len(pages) + 1, limit=limit)
        pages.append([j.id for j in snap.rows])
        assert snap.sort == sort
        if not snap.has_more:
            return pages
        after = snap.next_cursor
        assert len(pages) < 20


@pytest.mark.parametrize("key", SORT_KEYS)
@pytest.mark.parametrize("descending", [True, False])
def test_every_sort_pages_by_keyset_through_ties(store: Store, conn: psycopg.Connection, seeded: str,
                                                 key: str, descending: bool) -> None:
    sort = Sort(key, descending)
    pages = all_pages(store, sort)
    assert [len(p) for p in pages[:-1]] == [4] * (len(pages) - 1)
    flat = [i for p in pages for i in p]
    assert flat == expected_order(conn, seeded, sort)  # no job twice, none left out, ties by id


def test_sorts_with_ties_across_a_page_boundary(store: Store, conn: psycopg.Connection, seeded: str) -> None:
    # Ten jobs of one priority: any page boundary falls inside the tie, and the id decides.
    conn.execute(sql.SQL("INSERT INTO {}.lysmore_jobs (queue, worker, state, priority, inserted_at, scheduled_at)"
                         " SELECT 'bulk', 'Bulk', 'completed', 3, %s, %s FROM generate_series(1, 10)")
                 .format(sql.Identifier(seeded)), (NOW, NOW))
    for descending in (True, False):
        sort = Sort("priority", descending)
        pages = all_pages(store, sort, state="completed", limit=3)
        flat = [i for p in pages for i in p]
        assert flat == expected_order(conn, seeded, sort, state="completed")
        assert len(set(flat)) == len(flat) == 14


def test_a_sort_key_that_does_not_exist_is_named() -> None:
    with pytest.raises(ValueError, match="unknown sort key 'size': use one of id, attempt"):
        Sort("size")


def test_a_large_table_sorts_only_its_newest_ids_by_keys_no_index_keeps(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.data

    monkeypatch.setattr(tui.data, "SORT_WINDOW", 5)
    snap = store.jobs(sort=Sort("priority"), limit=50)
    assert snap.sort_window == 5 and sorted(j.id for j in snap.rows) == [14, 15, 16, 17, 18]
    assert store.jobs(sort=Sort("id", False), limit=50).sort_window is None  # the primary key: every job


async def test_sort_keys_cycle_and_invert_and_page_in_that_order(make_app: AppFactory, conn: psycopg.Connection,
                                                                  seeded: str) -> None:
    conn.execute(sql.SQL("INSERT INTO {}.lysmore_jobs (queue, worker, state, attempt, inserted_at, scheduled_at)"
                         " SELECT 'bulk', 'Bulk', 'completed', 1, %s, %s FROM generate_series(1, 120)")
                 .format(sql.Identifier(seeded)), (NOW, NOW))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_jobs(pilot)
        assert "sort id ↓ newest" in screen_text(app)
        await pilot.press("o")  # id -> attempt
        await settle(pilot)
        assert screen.sort == Sort("attempt") and "sort attempt ↓ most" in screen_text(app)
        first = table_keys(app, "jobs-table")
        want = [str(i) for i in expected_order(conn, seeded, Sort("attempt"))]
        assert first == want[:100]
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert table_keys(app, "jobs-table") == want[100:] and "page 2" in screen_text(app)
        await pilot.press("i")  # the other way, from the first page
        await settle(pilot)
        assert "sort attempt ↑ fewest" in screen_text(app) and "page 1" in screen_text(app)
        assert table_keys(app, "jobs-table") == [str(i) for i in expected_order(conn, seeded, Sort("attempt", False))][:100]
        assert app.screen.query_one("#jobs-table", KeyedTable).cursor_row == 0
        await pilot.press("o", "o", "o", "o")  # priority, age, duration, back to id
        await settle(pilot)
        assert screen.sort == Sort("id") and table_keys(app, "jobs-table")[0] == str(expected_order(conn, seeded, Sort())[0])


def jobs_sql(conn: psycopg.Connection, prefix: str, text: str, *params: Any) -> None:
    conn.execute(sql.SQL(text).format(jobs=sql.Identifier(prefix, "lysmore_jobs")), params)


def column_widths(app: Any) -> dict[str, int]:
    table = app.screen.query_one("#jobs-table", KeyedTable)
    return {str(key.value): col.width for key, col in table.columns.items()}


async def test_when_is_never_cut_at_80x24(make_app: AppFactory, conn: psycopg.Connection, seeded: str) -> None:
    long_worker = "app.workers.reporting.NightlyAnalyticsExport"
    for job_id, state, waited, started in ((1234567, "available", 13, None), (1234568, "available", 7500, None),
                                           (1234569, "executing", None, 312), (1234570, "executing", None, 86399)):
        jobs_sql(conn, seeded, "INSERT INTO {jobs} (id, queue, worker, state, attempt, scheduled_at, attempted_at)"
                 " VALUES (%s, 'analytics-nightly', %s, %s, %s, %s, %s)",
                 job_id, long_worker, state, 1 if started else 0,
                 NOW - timedelta(seconds=waited or 0), NOW - timedelta(seconds=started) if started else None)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_jobs(pilot)
        text = screen_text(app)
        for when in ("waits 13s", "waits 2h 5m", "running 5m 12s", "running 23h 59m"):
            assert f" {when} " in text or text.split(when)[1][:1] in ("\n", " "), when
        assert "1234570" in text and "NightlyAnalyti…" in text  # the id whole; the worker's name is what gives


async def test_running_jobs_show_how_long_they_have_run(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(140, 30)) as pilot:
        await open_jobs(pilot)
        table = app.screen.query_one("#jobs-table", KeyedTable)
        took = {k: str(table.get_cell(k, "took")) for k in table.keys()}
        assert took["6"] == "12s" and took["17"] == "40s"  # executing: so far
        assert took["1"] == "4s" and took["3"] == "2s"  # finished: start to end
        assert took["13"] == "" and took["9"] == ""  # never run
        assert "running 12s" in screen_text(app)


async def test_column_widths_hold_across_refreshes_with_other_data(make_app: AppFactory, conn: psycopg.Connection,
                                                                   seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await open_jobs(pilot)
        before = column_widths(app)
        assert before["when"] == len("running 23h 59m") and before["state"] == len("◷ scheduled")
        # The widest worker, queue and args go, and every time gets shorter.
        jobs_sql(conn, seeded, "DELETE FROM {jobs} WHERE worker IN ('app.workers.Newsletter', 'app.workers.Thumbnail')"
                 " OR queue = 'reports' OR id = 1")
        jobs_sql(conn, seeded, "UPDATE {jobs} SET inserted_at = %s, scheduled_at = %s, attempted_at = %s,"
                 " completed_at = NULL, cancelled_at = NULL, discarded_at = NULL", NOW, NOW, NOW)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "Newsletter" not in screen_text(app)
        assert column_widths(app) == before
        await pilot.press("o")  # another list: sized from its own rows
        await settle(pilot)
        assert column_widths(app)["worker"] < before["worker"]


def header(app: Any) -> str:
    return screen_text(app).splitlines()[0]


async def test_a_screen_shown_again_says_its_data_is_old_until_the_new_read_arrives(
        make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await open_jobs(pilot)
        assert "stale" not in header(app)
        await pilot.press("1")
        await settle(pilot)
        held = threading.Event()
        read = app.store.jobs

        def held_read(*args: Any, **kwargs: Any) -> Any:
            held.wait(timeout=30)
            return read(*args, **kwargs)

        monkeypatch.setattr(app.store, "jobs", held_read)
        await pilot.press("2")  # the old rows are on screen while the new read waits
        for _ in range(5):
            await pilot.pause()
        # How many seconds old depends on the machine's speed; that it says stale does not.
        assert re.search(r"stale \d+s", header(app)) and "Publish" in screen_text(app)
        held.set()
        await settle(pilot)
        assert "stale" not in header(app) and "⟳ 60s" in header(app)


async def test_a_dialog_that_holds_refreshes_says_paused_not_stale(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app._slow = True  # as after a slow read: the header counts how old the data is
        app.update_header()
        assert "stale" in header(app)
        await pilot.press("P")  # a confirmation: no refresh while it is open, on purpose
        await settle(pilot)
        app._tick_header()  # the header's clock, once a second
        await pilot.pause()
        assert "paused" in header(app) and "stale" not in header(app)
        await pilot.press("n")
        await settle(pilot)
        assert "paused" not in header(app)


async def test_queue_detail_lists_the_queues_jobs_and_enter_opens_one(make_app: AppFactory) -> None:
    from tui.screens.job import JobScreen
    from tui.screens.queues import QueueScreen

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # the queue under the cursor: default
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen) and app.screen.queue == "default"
        assert table_keys(app, "queue-jobs") == ["18", "17", "14", "13", "9", "6", "4", "3", "1"]  # newest first
        assert table_keys(app, "queue-nodes") and "waits 20s" in screen_text(app)
        await pilot.press("enter")  # from the nodes table: to the jobs
        assert app.screen.query_one("#queue-jobs", KeyedTable).has_focus
        await pilot.press("j", "enter")
        await settle(pilot)
        assert isinstance(app.screen, JobScreen) and app.screen.job_id == 17
        assert "job 17" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)


async def test_enter_on_a_workflow_step_opens_its_job(make_app: AppFactory) -> None:
    from tests.tui.seed import WORKFLOW
    from tui.screens.job import JobScreen
    from tui.screens.workflow import WorkflowScreen

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, WorkflowScreen) and app.screen.workflow_id == WORKFLOW
        assert table_keys(app, "workflow-steps") == ["15", "16", "18", "17"]  # tree order: publish under resize
        await pilot.press("j", "j", "enter")
        await settle(pilot)
        assert isinstance(app.screen, JobScreen) and app.screen.job_id == 18
        assert "workflow dependency still pending" in screen_text(app)


def test_jobs_of_a_lost_node_are_not_counted_against_live_limits(store: Store, conn: psycopg.Connection,
                                                                 seeded: str) -> None:
    from tests.tui.seed import NODE_OLD

    jobs_sql(conn, seeded, "INSERT INTO {jobs} (queue, worker, state, attempt, attempted_at, node_id)"
             " SELECT 'default', 'Lost', 'executing', 1, %s, %s FROM generate_series(1, 19)", NOW, NODE_OLD)
    default = next(q for q in store.queues().queues if q.name == "default")
    assert (default.executing, default.local_limit, default.orphaned) == (2, 20, 19)  # not 21/20
    from tui.presenters import queue_row
    assert queue_row(default, NOW)[1][1].plain.endswith("2/20 +19✗")


async def test_the_palette_sorts_the_jobs(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_jobs(pilot)
        names = [name for name, _, _ in screen.palette_commands()]
        assert {"jobs: sort by duration", "jobs: invert the sort"} <= set(names)
        dict((n, run) for n, _, run in screen.palette_commands())["jobs: sort by priority"]()
        await settle(pilot)
        assert screen.sort == Sort("priority") and "sort priority ↓" in screen_text(app)
