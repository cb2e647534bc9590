"""The Audit screen shows the error reporter's newest notifications once there are any: when,
whether the channel took it, which channel, what happened and how often; hidden before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from engine import Engine, Notice, Notification, Reporter, SentNotification
from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle
from tui.presenters import notification_row
from tui.widgets import KeyedTable

pytestmark = pytest.mark.anyio


class Refusing:
    name = "webhook:http://hooks.example"

    def send(self, notification: Notification) -> None:
        raise TimeoutError("timed out")


class Taking:
    name = "smtp:team@example.com"

    def send(self, notification: Notification) -> None:
        pass


async def test_the_audit_screen_lists_notifications_once_there_are_any(
    make_app: AppFactory, make_engine, seeded: str, conn: psycopg.Connection  # type: ignore[no-untyped-def]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        assert not app.screen.query_one("#notifications").display or app.screen.query_one(
            "#notifications").has_class("-hidden")
        assert "Notifications (error reporter)" not in screen_text(app)

        eng: Engine = make_engine(reporter=Reporter([Taking(), Refusing()]))
        eng.start()
        assert eng.reporter is not None
        eng.reporter.report(Notice(kind="discard", prefix=seeded, node="node-a", worker="app.workers.Charge",
                                   queue="billing", error_type="CardError", message="card declined", job_id=7,
                                   attempt=3, max_attempts=3))
        assert eng.reporter.flush(10)

        await pilot.press("ctrl+r")
        await settle(pilot)
        table = app.screen.query_one("#notifications-table", KeyedTable)
        assert len(table.keys()) == 2
        text = screen_text(app)
        assert "Notifications (error reporter)" in text
        assert "discarded Charge CardError" in text
        assert "smtp:team@example.com" in text and "card declined" in text
        assert "channel failed: TimeoutError" in text


def test_a_notification_row_says_what_happened() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    n = SentNotification(
        id=3, at=now - timedelta(seconds=90), group_key="node_lost:node-b:NodeLost", kind="node_lost", worker="",
        queue="", error_type="NodeLost", message="node node-b was lost (heartbeat expired): 2 jobs rescued\nmore",
        node="node-b", job_id=None, channel="log", status="rate_limited", count=4, first_seen=now, last_seen=now,
        error=None,
    )
    key, cells = notification_row(n, now)
    assert key == "3"
    assert [str(c) for c in cells] == ["1m ago", "rate limited", "log", "node lost node-b NodeLost", "4",
                                       "node node-b was lost (heartbeat expired): 2 jobs rescued"]
