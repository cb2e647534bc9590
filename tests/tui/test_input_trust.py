"""Input the operator can trust. Keys that arrive together (a fast typist, a burst over SSH) go
where the first one sends them: never a filter's text to the table. The cursor is on what the
user sees: the top of a new list, the same job across a refresh."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import sql
from textual import events
from textual.app import App
from textual.keys import _character_to_key

from tests.engine._support import count_jobs
from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle
from tests.tui.test_app import open_jobs
from tui.screens.jobs import JobsScreen
from tui.screens.modals import CONFIRM_ARM_SECONDS, ConfirmScreen
from tui.screens.queues import QueuesScreen
from tui.widgets import KeyedTable

pytestmark = pytest.mark.anyio


def burst(app: App[Any], text: str) -> None:
    """Send the keys of ``text`` to ``app`` at once, as its terminal driver would, with no pause
    between them for the app to catch up (Pilot.press waits after every key)."""
    assert app._driver is not None
    for char in text:
        key = "enter" if char == "\r" else char if char.isalnum() else _character_to_key(char)
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


@pytest.mark.parametrize("typed", ["/queue:mailers\r", "/Mailer\r"])
async def test_a_burst_after_slash_is_the_filter(make_app: AppFactory, typed: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await open_jobs(pilot)
        burst(app, typed)
        await settle(pilot)
        assert app.is_running and app.last_error is None
        assert app.screen is screen
        assert screen.filter.text == typed[1:-1]
        assert screen.marked == {}


@pytest.mark.parametrize(("typed", "shown_before"), [
    ("2/queue:mailers\r", True), ("2/id:2\r", True), ("2/queue:mailers\r", False), ("32/Mailer\r", False),
])
async def test_a_burst_that_opens_jobs_and_filters_is_the_filter(
        make_app: AppFactory, typed: str, shown_before: bool) -> None:
    """From another screen, `2` then `/` and the filter at once: the view's key is taken as it
    arrives, so `/` reaches Jobs, not the screen left behind (where `q` of `queue` quit). Shown for
    the first time, Jobs is made and mounted by the burst's first key, before the keys behind it
    are handled, and its table does not take the focus back from the filter bar."""
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        if shown_before:
            await open_jobs(pilot)
            await pilot.press("1")
        await settle(pilot)
        assert isinstance(app.screen, QueuesScreen)
        burst(app, typed)
        await settle(pilot)
        assert app.is_running and app.last_error is None
        assert isinstance(app.screen, JobsScreen)
        assert app.screen.filter.text == typed.rpartition("/")[2][:-1]


async def test_a_views_key_typed_in_a_text_box_is_text(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await open_jobs(pilot)
        burst(app, "/id:1234567")
        await settle(pilot)
        assert app.screen is screen
        assert screen.query_one("#filter").value == "id:1234567"  # type: ignore[attr-defined]


async def test_a_burst_of_slash_D_y_deletes_nothing(make_app: AppFactory, conn: psycopg.Connection,
                                                    seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await open_jobs(pilot)
        before = count_jobs(conn, seeded)
        burst(app, "/Dy")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.focused is not None and app.focused.id == "filter"
        assert screen.query_one("#filter").value == "Dy"  # type: ignore[attr-defined]
        assert count_jobs(conn, seeded) == before


async def test_slash_in_the_filter_is_a_character(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await open_jobs(pilot)
        burst(app, "/args.path:a/b")
        await settle(pilot)
        assert screen.query_one("#filter").value == "args.path:a/b"  # type: ignore[attr-defined]
        burst(app, "\r")
        await settle(pilot)
        assert screen.filter.text == "args.path:a/b"


async def test_keys_after_q_do_nothing_as_the_app_quits(make_app: AppFactory) -> None:
    """`q` then `:` opened the command palette as the app closed; its search then failed on its
    own missing list and the app ended with an error."""
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        burst(app, "q:m\r")
        await pilot.pause(0.6)  # the palette's no-match countdown is half a second
    assert app.return_code == 0


async def test_the_cursor_starts_at_the_top_of_another_list_and_keeps_its_job_on_refresh(
    make_app: AppFactory, conn: psycopg.Connection, seeded: str,
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await open_jobs(pilot)
        table = screen.query_one("#jobs-table", KeyedTable)
        await pilot.press("down", "down", "down", "down", "down")
        kept = table.current_key()
        assert kept is not None and table.cursor_row == 5
        # A filter whose list still holds that job, last (newest first): the cursor goes to the top.
        burst(app, f"/id:>={kept}\r")
        await settle(pilot)
        assert table.keys()[-1] == kept and len(table.keys()) > 1
        assert table.cursor_row == 0 and table.current_key() == table.keys()[0]
        # A refresh that adds a newer job keeps the cursor on its job.
        await pilot.press("down")
        on = table.current_key()
        conn.execute(sql.SQL("INSERT INTO {}.lysmore_jobs (queue, worker, state) VALUES ('default', 'app.X', 'completed')")
                     .format(sql.Identifier(seeded)))
        app.request_refresh()
        await settle(pilot)
        assert table.current_key() == on and table.cursor_row == 2
        # Back to the unfiltered list (Esc clears the filter): the top again.
        await pilot.press("escape")
        await settle(pilot)
        assert screen.filter.text == "" and table.cursor_row == 0


async def test_a_confirmation_ignores_keys_typed_before_it_appeared(
    make_app: AppFactory, conn: psycopg.Connection, seeded: str,
) -> None:
    """`Dy` typed at once (meant for a filter that was not open) asks and waits: the y came before
    the dialog was drawn. A y after it is armed deletes."""
    app = make_app(confirm_delay=CONFIRM_ARM_SECONDS)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await open_jobs(pilot)
        before = count_jobs(conn, seeded)
        burst(app, "Dy")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert count_jobs(conn, seeded) == before
        assert "do not confirm" in screen_text(app)
        await asyncio.wait_for(dialog.armed.wait(), 5)
        await pilot.press("y")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert count_jobs(conn, seeded) == before - 1



async def test_a_burst_that_opens_the_scale_prompt_and_types_a_limit_is_the_limit(make_app: AppFactory) -> None:
    """`S5` and Enter at once: `S` opens the prompt as it arrives and the prompt takes the focus at
    once, so `5` is the limit and not the Audit view's key (it showed Audit, the prompt left behind)."""
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, QueuesScreen)
        burst(app, "S5\r")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Scale queue default to 5 on 2 nodes?" in screen_text(app)
