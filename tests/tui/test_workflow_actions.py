"""Cancelling a workflow from the Workflows screens: keys, the gate, the database and the audit row."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle, toasts
from tests.tui.seed import WORKFLOW
from tests.tui.test_gate import audit_rows
from tui.actions import gated_for_key
from tui.control import workflow_cancel_request
from tui.screens.modals import ConfirmScreen
from tui.screens.others import WorkflowScreen, WorkflowsScreen

pytestmark = pytest.mark.anyio

STEPS = (15, 16, 17, 18)  # fetch completed; resize available, scan executing, publish held


def step_states(conn: psycopg.Connection, prefix: str) -> dict[int, str]:
    rows = conn.execute(
        sql.SQL("SELECT id, state::text FROM {}.lysmore_jobs WHERE workflow_id = %s ORDER BY id")
        .format(sql.Identifier(prefix)), (WORKFLOW,),
    ).fetchall()
    return dict(rows)


async def open_workflows(pilot: Any) -> WorkflowsScreen:
    await pilot.press("4")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, WorkflowsScreen)
    return screen


async def test_cancel_a_workflow_from_the_list(make_app: AppFactory, conn: psycopg.Connection, seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_workflows(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        text = screen_text(app)
        assert "Cancel workflow ingest (3 steps)?" in text
        assert f"workflow ingest  {WORKFLOW}" in text
        assert "3 steps to cancel: 1 available, 1 executing, 1 held" in text
        assert app.focused is not None and app.focused.id == "no"
        await pilot.press("y")
        await settle(pilot)
        assert "Cancelled workflow ingest (3 steps)" in toasts(app)
        assert "1/4" in screen_text(app) and "⊘3" in screen_text(app)  # the row shows it after the refresh
    assert step_states(conn, seeded) == {15: "completed", 16: "cancelled", 17: "cancelled", 18: "cancelled"}
    [row] = audit_rows(conn, seeded)
    actor, action, targets, outcome, detail = row
    assert (action, targets, outcome) == ("cancel_workflow", [WORKFLOW], "allowed")
    assert detail["workflow"] == "ingest" and detail["steps_seen"] == 3
    assert sorted(detail["changed"]) == [16, 17, 18]


async def test_cancel_from_the_tree_and_back_out_first(make_app: AppFactory, conn: psycopg.Connection,
                                                      seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_workflows(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, WorkflowScreen)
        await pilot.press("C")
        await settle(pilot)
        assert "Cancel workflow ingest (3 steps)?" in screen_text(app)
        await pilot.press("enter")  # Enter on the focused Cancel button backs out
        await settle(pilot)
        assert step_states(conn, seeded)[16] == "available"
        assert "Nothing changed." in toasts(app)
        await pilot.press("C", "y")
        await settle(pilot)
        assert isinstance(app.screen, WorkflowScreen)
        text = screen_text(app)
        assert "resize  cancelled" in text and "publish  cancelled" in text and "fetch  completed" in text
    assert step_states(conn, seeded) == {15: "completed", 16: "cancelled", 17: "cancelled", 18: "cancelled"}
    assert [(r[1], r[3]) for r in audit_rows(conn, seeded)] == [
        ("cancel_workflow", "declined"), ("cancel_workflow", "allowed"),
    ]


async def test_acts_on_the_workflow_as_seen(make_app: AppFactory, conn: psycopg.Connection, seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_workflows(pilot)
        # A step finishes after the screen was drawn: the confirmation still says what the user saw,
        # the toast says what happened.
        conn.execute(sql.SQL("UPDATE {}.lysmore_jobs SET state = 'completed', completed_at = now() WHERE id = 17")
                     .format(sql.Identifier(seeded)))
        await pilot.press("C")
        await settle(pilot)
        assert "Cancel workflow ingest (3 steps)?" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
        assert "Cancelled workflow ingest (2 steps; 1 finished meanwhile)" in toasts(app)
        # Now every step has finished, as the refreshed row shows: nothing to cancel, nothing asked.
        await pilot.press("C")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("every step has finished" in t for t in toasts(app))
    assert step_states(conn, seeded) == {15: "completed", 16: "cancelled", 17: "completed", 18: "cancelled"}
    assert [(r[1], r[3]) for r in audit_rows(conn, seeded)] == [
        ("cancel_workflow", "allowed"), ("cancel_workflow", "rejected"),
    ]


async def test_read_only_user_is_denied_and_audited(make_app: AppFactory, conn: psycopg.Connection,
                                                   seeded: str) -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_workflows(pilot)
        assert screen.check_action("cancel", ()) is None  # greyed in the footer
        await pilot.press("C")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("read-only" in t for t in toasts(app))
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        request = workflow_cancel_request(WORKFLOW, "ingest", [("available", 1)])
        assert app.gate.perform(request).ok is False  # past the UI, the gate still refuses
    assert step_states(conn, seeded) == {15: "completed", 16: "available", 17: "executing", 18: "held"}
    rows = audit_rows(conn, seeded)
    assert [(r[1], r[2], r[3]) for r in rows] == [("cancel_workflow", [WORKFLOW], "denied")] * 3
    assert rows[0][4]["reason"] == "read-only"


async def test_cancel_needs_the_cancel_jobs_right(make_app: AppFactory, conn: psycopg.Connection,
                                                 seeded: str) -> None:
    app = make_app(resolver="tests.tui.test_gate:OnlyRetry")
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_workflows(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("not allowed to cancel jobs" in t for t in toasts(app))
    assert step_states(conn, seeded)[16] == "available"
    assert [(r[0], r[1], r[3]) for r in audit_rows(conn, seeded)] == [("carol", "cancel_workflow", "denied")]


def test_no_retry_on_workflows() -> None:
    """Retrying a workflow is left out: the engine never puts a cancelled step back to held (see the report)."""
    assert gated_for_key("workflows", "C") is not None and gated_for_key("workflow", "C") is not None
    assert gated_for_key("workflows", "R") is None and gated_for_key("workflow", "R") is None
