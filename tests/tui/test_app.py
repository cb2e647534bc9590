"""The dashboard driven by real keys (Textual's pilot) against a real, seeded PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle, toasts
from tests.tui.test_gate import OnlyRetry, audit_rows, settings, state_of
from tui.app import DashboardApp
from tui.screens.base import DataScreen
from tui.screens.jobs import JobsScreen
from tui.screens.modals import ConfirmScreen, HelpScreen, ScaleScreen
from tui.screens.queues import QueuesScreen
from tui.widgets import KeyedTable, KeyFooter

pytestmark = pytest.mark.anyio


async def open_jobs(pilot: Any, filter_text: str = "") -> JobsScreen:
    """Switch to Jobs and (optionally) apply a filter the way a user does: / text enter."""
    await pilot.press("2")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, JobsScreen)
    if filter_text:
        await pilot.press("slash")
        field = pilot.app.focused
        field.value = ""
        field.insert_text_at_cursor(filter_text)
        await pilot.press("enter")
        await settle(pilot)
    return screen


def table_keys(app: DashboardApp, table_id: str) -> list[str]:
    return app.screen.query_one(f"#{table_id}", KeyedTable).keys()


async def test_pause_a_queue_with_P_and_see_it_paused(make_app: AppFactory, conn: psycopg.Connection,
                                                     seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        assert table_keys(app, "queues-table") == ["default", "mailers", "media", "reports"]
        await pilot.press("P")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Pause queue default on 2 nodes?" in screen_text(app)
        assert app.focused is not None and app.focused.id == "no"  # focus starts on Cancel
        await pilot.press("y")
        await settle(pilot)
        assert settings(conn, seeded)[("default", "*")][0] is True
        text = screen_text(app)
        assert "‖ default" in text and "2/2 paused" in text
        assert "Paused default on 2 nodes" in toasts(app)
        assert audit_rows(conn, seeded)[-1][1:4:2] == ("pause_queue", "allowed")
        await pilot.press("P", "y")
        await settle(pilot)
        assert settings(conn, seeded)[("default", "*")][0] is False
        assert "‖ default" not in screen_text(app)


async def test_queue_detail_pauses_and_scales_one_node(make_app: AppFactory, conn: psycopg.Connection,
                                                      seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.title_text() == "Queue default"
        assert "node-a" in screen_text(app)
        await pilot.press("P", "y")
        await settle(pilot)
        assert settings(conn, seeded)[("default", "node-a")][0] is True
        assert "‖ paused" in screen_text(app), screen_text(app)
        await pilot.press("j", "S")
        await settle(pilot)
        assert isinstance(app.screen, ScaleScreen)
        field = app.focused
        field.value = "abc"
        await pilot.press("enter")
        await settle(pilot)
        assert "whole number" in screen_text(app)
        field.value = "3, rate 5/10"  # one node cannot hold a limit that spans every node
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ScaleScreen) and "holds across every node" in screen_text(app)
        field.value = "0"  # allowed, after a warning and a second Enter
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ScaleScreen) and "0 runs nothing on node-b" in screen_text(app)
        field.value = "3"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen) and "Scale queue default to 3 on node-b?" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
        assert settings(conn, seeded)[("default", "node-b")][1] == 3
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, QueuesScreen)


async def test_retry_cancel_delete_from_the_jobs_screen(make_app: AppFactory, conn: psycopg.Connection,
                                                       seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_jobs(pilot, "id:4")
        assert table_keys(app, "jobs-table") == ["4"]
        await pilot.press("R")
        await settle(pilot)
        assert "Retry 1 job?" in screen_text(app) and "job 4  retryable  app.workers.Charge" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
        assert state_of(conn, seeded, 4) == "available"
        assert "Retried 1 job" in toasts(app)

        await open_jobs(pilot, "id:13")
        await pilot.press("C", "y")
        await settle(pilot)
        assert state_of(conn, seeded, 13) == "cancelled"

        await open_jobs(pilot, "id:5")
        await pilot.press("D")
        await settle(pilot)
        await pilot.press("enter")  # Enter on the focused Cancel button backs out; it never confirms
        await settle(pilot)
        assert state_of(conn, seeded, 5) == "cancelled"
        assert "Nothing changed." in toasts(app)
        await pilot.press("D", "tab", "enter")  # the Confirm button cannot even take focus
        await settle(pilot)
        assert state_of(conn, seeded, 5) == "cancelled"
        if isinstance(app.screen, ConfirmScreen):
            await pilot.press("y")
        else:
            await pilot.press("D", "y")
        await settle(pilot)
        assert state_of(conn, seeded, 5) is None
        assert "Deleted 1 job" in toasts(app)
        outcomes = [(r[1], r[3]) for r in audit_rows(conn, seeded)]
        assert ("delete_jobs", "declined") in outcomes and outcomes[-1] == ("delete_jobs", "allowed")


async def test_marked_rows_are_what_an_action_applies_to(make_app: AppFactory, conn: psycopg.Connection,
                                                        seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_jobs(pilot, "worker:Charge,Report")
        assert table_keys(app, "jobs-table") == ["12", "6", "4", "3", "1"]
        await pilot.press("space", "space", "space")  # marks 12, 6 and 4
        await settle(pilot)
        assert set(screen.marked) == {12, 6, 4}
        assert "3 marked" in screen_text(app)
        # A refresh that changes what is under the cursor does not change the targets.
        conn.execute(sql.SQL("UPDATE {}.lysmore_jobs SET state = 'completed' WHERE id = 12")
                     .format(sql.Identifier(seeded)))
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        text = screen_text(app)
        assert "Retry 1 job?" in text and "job 4" in text and "Left alone" in text
        await pilot.press("y")
        await settle(pilot)
        # 12 was seen available (retry does not apply), 6 executing: only 4 is retried.
        assert "Retried 1 job (2 skipped: 1 available, 1 executing)" in toasts(app)
        assert state_of(conn, seeded, 4) == "available" and state_of(conn, seeded, 12) == "completed"
        assert not screen.marked

        await pilot.press("a")
        assert set(screen.marked) == {12, 6, 4, 3, 1}
        await pilot.press("a")
        assert not screen.marked
        await pilot.press("space", "escape")
        assert not screen.marked and screen.filter  # esc clears marks first...
        await pilot.press("escape")
        await settle(pilot)
        assert not screen.filter and len(table_keys(app, "jobs-table")) == 18  # ...then the filter


async def test_select_all_matching_counts_first(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_jobs(pilot, "state:completed")
        await pilot.press("A")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Mark all 4 jobs matching state:completed?" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
        assert set(screen.marked) == {15, 14, 2, 1}


async def test_read_only_user_changes_nothing_by_any_path(make_app: AppFactory, conn: psycopg.Connection,
                                                         seeded: str) -> None:
    app = make_app(read_only=True)
    before = settings(conn, seeded)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QueuesScreen)
        assert screen.check_action("pause", ()) is None  # greyed in the footer, not hidden
        assert any(b.binding.action == "pause" and not b.enabled for b in app.active_bindings.values())
        assert "READ-ONLY" in screen_text(app)
        await pilot.press("P")  # by key
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("read-only" in t for t in toasts(app))
        await pilot.press("S")
        await settle(pilot)
        assert not isinstance(app.screen, ScaleScreen)
        screen.palette_commands()[0][2]()  # by the palette's command
        await settle(pilot)
        await open_jobs(pilot, "id:4")
        for key in ("C", "R", "D"):
            await pilot.press(key)
            await settle(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
        jobs = app.screen
        assert isinstance(jobs, DataScreen)
        jobs.action_delete()  # by calling the action method
        await settle(pilot)
        assert app.gate.perform(jobs_request_for(4)).ok is False  # and past the UI, the gate still refuses
    assert settings(conn, seeded) == before
    assert state_of(conn, seeded, 4) == "retryable"
    rows = audit_rows(conn, seeded)
    assert [(r[1], r[3]) for r in rows] == [
        ("pause_queue", "denied"), ("scale_queue", "denied"), ("pause_queue", "denied"),
        ("cancel_jobs", "denied"), ("retry_jobs", "denied"), ("delete_jobs", "denied"),
        ("delete_jobs", "denied"), ("delete_jobs", "denied"),
    ]


def jobs_request_for(job_id: int) -> Any:
    from tui.control import jobs_request

    return jobs_request("delete", [(job_id, "retryable", "W")])


async def test_rights_from_a_resolver(make_app: AppFactory, conn: psycopg.Connection, seeded: str) -> None:
    app = make_app(resolver="tests.tui.test_gate:OnlyRetry")
    assert app.rate == 5.0  # the resolver's refresh rate
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_jobs(pilot, "id:3")
        await pilot.press("D")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("not allowed to delete jobs" in t for t in toasts(app))
        await pilot.press("R", "y")
        await settle(pilot)
    assert state_of(conn, seeded, 3) == "available"
    assert [(r[0], r[1], r[3]) for r in audit_rows(conn, seeded)] == [
        ("carol", "delete_jobs", "denied"), ("carol", "retry_jobs", "allowed"),
    ]
    assert OnlyRetry().resolve_user() == "carol"


async def test_malformed_filter_shows_a_message(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_jobs(pilot, "state:runing")
        text = screen_text(app)
        assert "'runing' is not a state" in text
        assert app.last_error is None and screen.filter.text == ""
        assert len(table_keys(app, "jobs-table")) == 18
        field = app.focused
        field.value = 'error:"unclosed'
        await pilot.press("enter")
        await settle(pilot)
        assert "unclosed quote" in screen_text(app)
        field.value = "queue:media tag:"
        await pilot.press("enter")
        await settle(pilot)
        assert "tag: needs a value" in screen_text(app)
        field.value = "queue:media"
        await pilot.press("enter")
        await settle(pilot)
        assert table_keys(app, "jobs-table") == ["16", "15", "11", "10"]
        assert "needs a value" not in screen_text(app)


async def test_state_list_and_paging(make_app: AppFactory, conn: psycopg.Connection, seeded: str) -> None:
    conn.execute(
        sql.SQL("INSERT INTO {}.lysmore_jobs (queue, worker, state, inserted_at, scheduled_at)"
                " SELECT 'bulk', 'app.workers.Bulk', 'completed', %s, %s FROM generate_series(1, 150)")
        .format(sql.Identifier(seeded)),
        (seed_now(), seed_now()),
    )
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_jobs(pilot)
        keys = table_keys(app, "jobs-table")
        assert len(keys) == 100 and keys[0] == "1150"
        await pilot.press("right_square_bracket")
        await settle(pilot)
        keys = table_keys(app, "jobs-table")
        assert keys[0] == "1050" and keys[-1] == "1" and "page 2" in screen_text(app)
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert table_keys(app, "jobs-table")[0] == "1150"
        await pilot.press("s", "down", "down")  # into the state list: all -> available -> scheduled
        await settle(pilot)
        assert screen.state == "scheduled"
        assert table_keys(app, "jobs-table") == ["9", "8"]


def seed_now() -> Any:
    from tests.tui.seed import NOW

    return NOW


async def test_rows_update_in_place(make_app: AppFactory, conn: psycopg.Connection, seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_jobs(pilot)
        table = app.screen.query_one("#jobs-table", KeyedTable)
        await pilot.press("j", "j")
        assert table.current_key() == "16"
        row_before = table.rows[next(k for k in table.rows if k.value == "16")]
        conn.execute(sql.SQL("UPDATE {}.lysmore_jobs SET state = 'executing', attempted_at = %s WHERE id = 16")
                     .format(sql.Identifier(seeded)), (seed_now(),))
        conn.execute(sql.SQL("INSERT INTO {}.lysmore_jobs (id, queue, worker) VALUES (50, 'default', 'New')")
                     .format(sql.Identifier(seeded)))
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert table.keys()[0] == "50"
        assert table.current_key() == "16"  # the cursor stays on its job
        assert table.rows[next(k for k in table.rows if k.value == "16")] is row_before  # not re-added
        assert "running 0s" in screen_text(app)


async def test_refresh_failure_shows_stale_and_keeps_the_data(make_app: AppFactory,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        assert "⟳ 60s" in screen_text(app)

        def down() -> None:
            raise RuntimeError("connection refused")

        monkeypatch.setattr(app.store, "queues", down)
        await pilot.press("ctrl+r")
        await settle(pilot)
        text = screen_text(app)
        assert "stale" in text and "refresh failed: connection refused" in text
        assert "default" in text  # the last good rows stay
        assert app._backoff == 60.0  # backed off (capped at a minute)
        monkeypatch.undo()
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "stale" not in screen_text(app) and app.last_error is None


async def test_no_refresh_while_a_modal_is_open_or_frozen(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        count = app.refreshes
        await pilot.press("P")
        await settle(pilot)
        app._tick()
        await settle(pilot)
        assert app.refreshes == count
        await pilot.press("n")
        await settle(pilot)
        assert app.refreshes == count + 1  # back on the screen: refreshed at once
        await pilot.press("z")
        await settle(pilot)
        assert app.frozen and "FROZEN" in screen_text(app)
        app._tick()
        await settle(pilot)
        assert app.refreshes == count + 1
        await pilot.press("z")
        await settle(pilot)
        assert not app.frozen and app.refreshes == count + 2


async def test_refresh_rate_keys(make_app: AppFactory) -> None:
    app = make_app(refresh=2.0)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("plus")
        assert app.rate == 1.0
        await pilot.press("plus")
        assert app.rate == 1.0
        for expected in (2.0, 5.0, 15.0, 30.0, 60.0, None):
            await pilot.press("minus")
            assert app.rate == expected
        assert " off" in screen_text(app)
        await pilot.press("plus")
        assert app.rate == 60.0


async def test_help_is_generated_from_the_registry(make_app: AppFactory) -> None:
    from tui.actions import actions_for

    app = make_app(read_only=True)
    async with app.run_test(size=(100, 40), notifications=True) as pilot:
        await open_jobs(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for a in actions_for("jobs"):
            assert a.help[:30] in text
        assert "(not allowed)" in text
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)


async def test_help_pages_like_less(make_app: AppFactory) -> None:
    from textual.containers import VerticalScroll

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_jobs(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        help_view = app.screen.query_one("#help", VerticalScroll)
        assert help_view.max_scroll_y > 0
        await pilot.press("pagedown")
        await settle(pilot)
        first_page = help_view.scroll_y
        assert 0 < first_page < help_view.max_scroll_y
        await pilot.press("G")
        await settle(pilot)
        assert help_view.scroll_y == help_view.max_scroll_y
        await pilot.press("g")
        await settle(pilot)
        assert help_view.scroll_y == 0


async def test_views_job_detail_and_back(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await open_jobs(pilot, "id:18")
        await pilot.press("enter")
        await settle(pilot)
        text = screen_text(app)
        assert "job 18 ‖ held" in text and "workflow dependency still pending: resize (available), scan" in text
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)
        for key, title in (("3", "Nodes"), ("4", "Workflows"), ("5", "Audit"), ("1", "Queues")):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, DataScreen) and app.screen.title_text() == title
            assert app.last_error is None
        await pilot.press("4", "enter")
        await settle(pilot)
        assert "└ ○ resize" in screen_text(app)


async def test_palette_offers_commands_that_fit_the_screen(make_app: AppFactory) -> None:
    from tui.palette import DashboardCommands

    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        provider = DashboardCommands(app.screen)
        titles = [title for title, _, _ in provider._commands()]
        assert "queue: pause default" in titles and "queue: resume media" in titles
        assert "view: nodes" in titles and "refresh: 5s" in titles
        assert not any(t.startswith("jobs:") for t in titles)
        hits = [hit async for hit in provider.search("view nodes")]
        assert hits
        await pilot.press("colon")
        await settle(pilot)
        assert app.screen.id == "--command-palette"


async def test_too_small_says_so(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(50, 12), notifications=True) as pilot:
        await settle(pilot)
        assert "too small" in screen_text(app)


async def test_low_bandwidth_mode(make_app: AppFactory) -> None:
    assert make_app(low_bandwidth=True, refresh=1.0).rate == 5.0  # slower refresh
    app = make_app(low_bandwidth=True, badges=("DEMO",))
    assert app.animation_level == "none"
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "LOW-BW" in text and "DEMO" in text and "⟳ 60s" in text
        assert "▃" not in text  # no sparklines
        assert " 11 " in text  # the completed-per-minute number stays


async def test_scale_global_and_rate_limits_from_the_queues_screen(make_app: AppFactory, conn: psycopg.Connection,
                                                                   seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("S")
        await settle(pilot)
        assert isinstance(app.screen, ScaleScreen)
        field = app.focused
        field.value = "rate twenty"
        await pilot.press("enter")
        await settle(pilot)
        assert "rate" in screen_text(app) and isinstance(app.screen, ScaleScreen)
        field.value = "global 4, rate 5/10"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Scale queue default to global 4, rate 5/10s" in screen_text(app), screen_text(app)
        await pilot.press("y")
        await settle(pilot)
    row = conn.execute(
        sql.SQL("SELECT global_limit, rate_limit FROM {}.lysmore_queue_settings WHERE queue = 'default' AND node = '*'")
        .format(sql.Identifier(seeded))).fetchone()
    assert row == ({"allowed": 4}, {"allowed": 5, "period": 10.0})


async def test_a_screen_switch_paints_the_whole_new_screen_in_its_first_frame_and_reads_it_at_once(
    make_app: AppFactory,
) -> None:
    app = make_app(refresh=None)  # no timer: any read after a key is the switch's own
    frames: list[Any] = []
    reads: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ("2", "3", "1"):  # every screen seen once
            await pilot.press(key)
            await settle(pilot)
        app._display = lambda screen, update: frames.append(update)  # type: ignore[method-assign]
        store_nodes = app.store.nodes
        app.store.nodes = lambda: reads.append("nodes") or store_nodes()  # type: ignore[method-assign]
        await pilot.press("3")
        await settle(pilot)
        first = next(f for f in frames if f is not None)
        assert type(first).__name__ == "LayoutUpdate"  # the full screen, not only the widgets that changed
        assert reads == ["nodes"]  # read once, at the switch
        assert "loading…" not in screen_text(app) and "node-a" in screen_text(app)


async def test_the_footer_is_rebuilt_only_when_its_keys_change(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ("2", "1"):
            await pilot.press(key)
            await settle(pilot)
        rebuilt: list[KeyFooter] = []
        for stack in app._screen_stacks.values():
            for screen in stack:
                footer = screen.query_one(KeyFooter)
                footer.recompose = lambda footer=footer: rebuilt.append(footer)  # type: ignore[method-assign]
        for key in ("2", "1", "2", "1"):
            await pilot.press(key)
            await settle(pilot)
        assert rebuilt == []  # switching back and forth shows the same keys: nothing to rebuild
        assert "P Pause" in screen_text(app) and "S Scale" in screen_text(app)


async def test_the_dashboards_connections_name_it_and_its_user(make_app: AppFactory, conn: psycopg.Connection) -> None:
    app = make_app(resolver=OnlyRetry())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        names = {r[0] for r in conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()").fetchall()}
        assert "lysmore-dashboard (carol)" in names


async def test_colon_q_quits(make_app: AppFactory) -> None:
    """As in k9s and vi: the palette's `q` is quit, the only hit, so Enter runs it at once."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("colon", "q")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app._exit  # quitting (not Queues, which `:q` opened when it matched "view: queues" first)
    assert app.return_code == 0


async def test_a_view_key_shows_the_view_not_a_screen_left_inside_it(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_jobs(pilot, "id:18")
        await pilot.press("enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "JobScreen"
        await pilot.press("1")
        await settle(pilot)
        assert isinstance(app.screen, QueuesScreen)
        await pilot.press("2")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)


def test_an_access_already_resolved_is_the_answer() -> None:
    """`lysmore dashboard` resolves the user once (it names the connections) and hands it on."""
    from tui.access import Access, resolve_access

    access = Access("ann", frozenset({"retry_jobs"}), read_only=False)
    assert resolve_access(access) is access
    assert resolve_access(access, read_only=True) == Access("ann", frozenset({"retry_jobs"}), read_only=True)
