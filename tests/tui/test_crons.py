"""The Crons view (key 6): entries with schedule, zone, last and next run and their newest runs;
pausing and resuming an entry goes through the gate, with a confirmation and an audit row."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle, toasts
from tests.tui.seed import seed_crons
from tests.tui.test_gate import audit_rows
from tui.actions import help_sections
from tui.presenters import crons_summary
from tui.screens.crons import CronsScreen
from tui.screens.modals import ConfirmScreen
from tui.widgets import KeyedTable

pytestmark = pytest.mark.anyio


@pytest.fixture
def crons(seeded: str, conn: psycopg.Connection) -> str:
    """The seeded schema with cron entries and their runs."""
    seed_crons(conn, seeded)
    return seeded


class OnlyQueues:
    """A resolver that may pause queues, not cron entries."""

    def resolve_user(self) -> str:
        return "dave"

    def resolve_access(self, user: str) -> set[str]:
        return {"pause_queues"}

    def resolve_refresh(self, user: str) -> None:
        return None


def paused(conn: psycopg.Connection, prefix: str) -> dict[str, bool]:
    rows = conn.execute(sql.SQL("SELECT name, paused FROM {}.lysmore_cron_entries").format(
        sql.Identifier(prefix))).fetchall()
    return {r[0]: r[1] for r in rows}


def keys(app: object) -> list[str]:
    return app.screen.query_one("#crons-table", KeyedTable).keys()  # type: ignore[attr-defined]


async def test_the_view_lists_each_entry_with_schedule_zone_last_next_and_runs(make_app: AppFactory,
                                                                              crons: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        assert isinstance(app.screen, CronsScreen)
        # Active entries by name, then the one the leader's crontab dropped.
        assert keys(app) == ["charge-retries", "nightly-report", "sync-accounts", "weekly-cleanup", "old-newsletter"]
        text = screen_text(app)
        lines = {line.split()[0] if line.split()[0] != "‖" else line.split()[1]: line
                 for line in text.splitlines() if line.strip()}
        # 03:00 in Oslo is 02:00 UTC: 14 hours after the fixed clock's noon; ran 10 hours ago.
        assert all(w in lines["nightly-report"] for w in ("0 3 * * *", "Europe/Oslo", "10h ago", "in 14h", "·✓"))
        # Oldest run left, newest right: three pruned jobs, then completed, then available.
        assert all(w in lines["sync-accounts"] for w in ("*/15 * * * *", "UTC", "15m ago", "in 15m", "···✓○"))
        assert "‖ paused" in lines["weekly-cleanup"] and "America/New_York" in lines["weekly-cleanup"]
        assert "inactive" in lines["old-newsletter"]
        assert "4 entries, 1 paused" in text
        # The detail under the table says the newest runs in words.
        assert "↻ retryable 1h ago" in text and "✗ discarded 2h ago" in text
        await pilot.press("down", "down", "down")
        await settle(pilot)
        assert "paused since 2h ago: inserts nothing until resumed" in screen_text(app)


async def test_pausing_needs_confirmation_is_audited_and_shows_paused(make_app: AppFactory, crons: str,
                                                                      conn: psycopg.Connection) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        await pilot.press("P")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Pause cron charge-retries on every node?" in screen_text(app)
        assert app.focused is not None and app.focused.id == "no"  # focus starts on Cancel
        await pilot.press("escape")  # backed out: nothing changes
        await settle(pilot)
        assert paused(conn, crons)["charge-retries"] is False
        await pilot.press("P")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert paused(conn, crons)["charge-retries"] is True
        assert "Paused cron charge-retries" in toasts(app)
        text = screen_text(app)
        assert "‖ charge-retries" in text and "2 paused" in text
        # The paused entry under the cursor: P now resumes it.
        await pilot.press("P")
        await settle(pilot)
        assert "Resume cron charge-retries on every node?" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
        assert paused(conn, crons)["charge-retries"] is False
    rows = audit_rows(conn, crons)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("pause_cron", ["charge-retries"], "declined"),
        ("pause_cron", ["charge-retries"], "allowed"),
        ("resume_cron", ["charge-retries"], "allowed"),
    ]
    assert rows[1][4]["cron"] == "charge-retries" and rows[1][4]["changed"] is True


async def test_a_user_without_the_right_is_refused_and_audited(make_app: AppFactory, crons: str,
                                                               conn: psycopg.Connection) -> None:
    for app in (make_app(read_only=True), make_app(resolver="tests.tui.test_crons:OnlyQueues")):
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("6")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, CronsScreen)
            assert screen.check_action("pause", ()) is None  # greyed in the footer, not hidden
            await pilot.press("P")
            await settle(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
            screen.palette_commands()[0][2]()  # the palette's command meets the same gate
            await settle(pilot)
            assert any("pause" in t.lower() for t in toasts(app))
    assert paused(conn, crons) == {"charge-retries": False, "nightly-report": False, "old-newsletter": False,
                                   "sync-accounts": False, "weekly-cleanup": True}
    assert [(r[0], r[1], r[3]) for r in audit_rows(conn, crons)][-2:] == [
        ("dave", "pause_cron", "denied"), ("dave", "pause_cron", "denied"),
    ]
    assert [r[3] for r in audit_rows(conn, crons)] == ["denied"] * 4


def test_help_and_summary_name_the_view_key_and_the_pause() -> None:
    views = [h for k, h, _, a in help_sections("crons")[-1][1] if a == "view_*"]
    assert len(views) == 1 and "/ Audit / Crons" in views[0]  # key 6, after the five views before it
    here = help_sections("crons")[0]
    assert here[0] == "Crons" and [(k, p) for k, _, p, _ in here[1]] == [("P", "pause_crons")]
    assert crons_summary((), "P")[0].forms[0].plain == "0 entries, 0 paused"
