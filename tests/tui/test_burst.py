"""Keys that arrive together, as a fast typist or a terminal's paste-less burst sends them, go
where the screen that received the first one sends them: never a filter's text to the table."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql
from textual import events
from textual.app import App
from textual.keys import _character_to_key

from tests.tui.conftest import AppFactory
from tests.tui.helpers import settle
from tui.screens.jobs import JobsScreen
from tui.screens.modals import ConfirmScreen

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


def job_count(conn: psycopg.Connection, prefix: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}.lysmore_jobs").format(sql.Identifier(prefix))).fetchone()
    assert row is not None
    return int(row[0])


async def jobs_screen(pilot: Any) -> JobsScreen:
    await pilot.press("2")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, JobsScreen)
    return screen


@pytest.mark.parametrize("typed", ["/queue:mailers\r", "/Mailer\r"])
async def test_a_burst_after_slash_is_the_filter(make_app: AppFactory, typed: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await jobs_screen(pilot)
        burst(app, typed)
        await settle(pilot)
        assert app.is_running and app.last_error is None
        assert app.screen is screen
        assert screen.filter.text == typed[1:-1]
        assert screen.marked == {}


async def test_a_burst_of_slash_D_y_deletes_nothing(make_app: AppFactory, conn: psycopg.Connection,
                                                    seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await jobs_screen(pilot)
        before = job_count(conn, seeded)
        burst(app, "/Dy")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.focused is not None and app.focused.id == "filter"
        assert screen.query_one("#filter").value == "Dy"  # type: ignore[attr-defined]
        assert job_count(conn, seeded) == before


async def test_slash_in_the_filter_is_a_character(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = await jobs_screen(pilot)
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
