"""Several instances (prefixes) in one dashboard run: the header names the one shown, `w` and the
palette switch, every view then reads the other, and a change names the instance it acts on."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from engine import DatabaseUnavailable, Engine, Worker
from tests.helpers import wait_for
from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle, toasts
from tests.tui.test_gate import audit_rows, settings
from tui.app import DashboardApp
from tui.palette import DashboardCommands
from tui.screens.jobs import JobsScreen
from tui.screens.modals import ConfirmScreen
from tui.screens.queues import QueuesScreen
from tui.widgets import KeyedTable

pytestmark = pytest.mark.anyio

SEEDED_QUEUES = ["default", "mailers", "media", "reports"]


class Invoice(Worker, queue="billing"):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


@pytest.fixture
def other(make_engine: Callable[..., Engine]) -> str:
    """A second instance in the same database whose only queue is ``billing``."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    eng = make_engine(prefix=name)
    eng.insert_all([Invoice.new({"n": n}) for n in range(3)])
    return name


def queue_names(app: DashboardApp) -> list[str]:
    assert isinstance(app.screen, QueuesScreen)
    return app.screen.query_one("#queues-table", KeyedTable).keys()


def header(app: DashboardApp) -> str:
    return screen_text(app).splitlines()[0]


async def test_w_switches_every_view_to_the_other_instance(make_app: AppFactory, seeded: str, other: str) -> None:
    app = make_app(prefixes=(seeded, other))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        assert queue_names(app) == SEEDED_QUEUES
        assert seeded in header(app) and other not in header(app)
        await pilot.press("2")  # Jobs, with a job marked: nothing of it may survive the switch
        await settle(pilot)
        jobs = app.screen
        assert isinstance(jobs, JobsScreen)
        await pilot.press("space")
        await settle(pilot)
        assert jobs.marked
        await pilot.press("w")
        await settle(pilot)
        assert app.engine.prefix == other
        assert other in header(app) and seeded not in header(app)
        assert isinstance(app.screen, JobsScreen) and app.screen is not jobs and not app.screen.marked
        assert "Invoice" in screen_text(app) and f"Showing the instance {other}" in toasts(app)
        await pilot.press("1")
        await settle(pilot)
        assert queue_names(app) == ["billing"]
        await pilot.press("w")  # round the list: back to the first
        await settle(pilot)
        assert app.engine.prefix == seeded and queue_names(app) == SEEDED_QUEUES


async def test_the_palette_offers_one_entry_per_instance(make_app: AppFactory, seeded: str, other: str) -> None:
    app = make_app(prefixes=(seeded, other))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        commands = {title: run for title, _, run in DashboardCommands(app.screen)._commands()}
        assert f"instance: {seeded}" in commands and f"instance: {other}" in commands
        await pilot.press("colon")
        await settle(pilot)
        await pilot.press(*f"instance {other}")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.engine.prefix == other and queue_names(app) == ["billing"]
        assert other in header(app)


async def test_a_change_names_the_instance_it_acts_on(make_app: AppFactory, conn: psycopg.Connection,
                                                      seeded: str, other: str) -> None:
    before = settings(conn, seeded)
    app = make_app(prefixes=(seeded, other))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        await pilot.press("P")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert f"On {other}: Pause queue billing" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
        assert settings(conn, other)[("billing", "*")][0] is True
        assert settings(conn, seeded) == before  # the instance not shown is untouched
        assert any(t.startswith(f"{other}: Paused billing") for t in toasts(app)), toasts(app)
        audited = conn.execute(sql.SQL("SELECT action, outcome FROM {}.lysmore_audit").format(sql.Identifier(other)))
        assert audited.fetchall() == [("pause_queue", "allowed")]  # in the instance acted on
        assert not [row for row in audit_rows(conn, seeded) if row[1] == "pause_queue"]


async def test_one_instance_keeps_the_header_and_w_says_how_to_watch_more(make_app: AppFactory, seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        assert f"db/test · {seeded}" in header(app)
        await pilot.press("w")
        await settle(pilot)
        assert app.engine.prefix == seeded
        assert any("--all-prefixes" in t for t in toasts(app))
        assert not any(title.startswith("instance:") for title, _, _ in DashboardCommands(app.screen)._commands())


async def test_connections_of_every_instance_shown_are_closed_on_exit(make_app: AppFactory, conn: psycopg.Connection,
                                                                      seeded: str, other: str) -> None:
    app = make_app(prefixes=(seeded, other))
    name = app.engine.application_name
    query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s"
             " AND pid <> pg_backend_pid()")
    def open_now() -> int:
        return int(conn.execute(query, [name]).fetchone()[0])  # type: ignore[index]

    before = open_now()  # dashboards of earlier tests in this database go by the same name
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        assert app.engine.application_name == name  # the other instance's pool is named the same
        assert open_now() >= before + 2
    # A closed connection's backend leaves pg_stat_activity a moment after the client hangs up.
    wait_for(lambda: open_now() == before, what="every connection of the run closed")


async def test_a_read_after_the_app_closed_opens_no_connection(make_app: AppFactory) -> None:
    # A refresh still running in a worker thread when the app exits must not open the pool again.
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
    with pytest.raises(DatabaseUnavailable, match="closing"):
        app.store.queues()
    assert app.engine.db._pool is None  # closed on exit and not opened again
