"""Cancelling and retrying a workflow from the Workflows screens: keys, the gate, the database, the audit row."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle, toasts
from tests.tui.seed import WORKFLOW
from tests.tui.test_gate import audit_rows
from tui.actions import gated_for_key, help_sections
from tui.control import workflow_cancel_request, workflow_retry_request
from tui.screens.modals import ConfirmScreen
from tui.screens.workflow import WorkflowScreen
from tui.screens.workflows import WorkflowsScreen

pytestmark = pytest.mark.anyio

STEPS = (15, 16, 17, 18)  # fetch completed; resize available, scan executing, publish held


def step_states(conn: psycopg.Connection, prefix: str) -> dict[int, str]:
    rows = conn.execute(
        sql.SQL("SELECT id, state::text FROM {}.lysmore_jobs WHERE workflow_id = %s ORDER BY id")
        .format(sql.Identifier(prefix)), (WORKFLOW,),
    ).fetchall()
    return dict(rows)


def fail_the_workflow(conn: psycopg.Connection, prefix: str) -> None:
    """resize ran out of attempts, scan completed, so publish (needing both) was cancelled."""
    conn.execute(
        sql.SQL("UPDATE {}.lysmore_jobs SET state = 'discarded', attempt = 1, max_attempts = 1,"
                " discarded_at = now() WHERE id = 16").format(sql.Identifier(prefix)))
    conn.execute(
        sql.SQL("UPDATE {}.lysmore_jobs SET state = 'completed', completed_at = now(), node_id = NULL"
                " WHERE id = 17").format(sql.Identifier(prefix)))
    conn.execute(
        sql.SQL("UPDATE {}.lysmore_jobs SET state = 'cancelled', cancelled_at = now() WHERE id = 18")
        .format(sql.Identifier(prefix)))


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
        assert all(re.search(rf"{step}\s+{state}", text) for step, state in (
            ("resize", "⊘ cancelled"), ("publish", "⊘ cancelled"), ("fetch", "✓ completed")))
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


# -- retry -------------------------------------------------------------------------------------------
def test_retry_is_in_the_registry_with_the_retry_jobs_right() -> None:
    for scope in ("workflows", "workflow"):
        entry = gated_for_key(scope, "R")
        assert entry is not None and entry.permission == "retry_jobs" and entry.palette == "workflow: retry"
        helps = {e[3]: e[1] for e in help_sections(scope)[0][1]}
        assert helps["retry"] == "run the workflow's cancelled and discarded steps again (one more attempt)"


async def test_retry_a_failed_workflow_from_the_list(make_app: AppFactory, conn: psycopg.Connection,
                                                     seeded: str) -> None:
    fail_the_workflow(conn, seeded)
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_workflows(pilot)
        assert "workflow: retry ingest" in [c[0] for c in screen.palette_commands()]
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        text = screen_text(app)
        assert "Retry workflow ingest (2 steps)?" in text
        assert f"workflow ingest  {WORKFLOW}" in text
        assert "2 steps to run again: 1 discarded, 1 cancelled" in text
        assert app.focused is not None and app.focused.id == "no"  # more than one step: a bulk action
        await pilot.press("y")
        await settle(pilot)
        assert "Retried workflow ingest (2 steps)" in toasts(app)
    # resize's dependency completed: it runs now; publish waits for resize again.
    assert step_states(conn, seeded) == {15: "completed", 16: "available", 17: "completed", 18: "held"}
    attempts = conn.execute(sql.SQL("SELECT attempt, max_attempts FROM {}.lysmore_jobs WHERE id = 16")
                            .format(sql.Identifier(seeded))).fetchone()
    assert attempts == (1, 2)  # one more attempt
    [row] = audit_rows(conn, seeded)
    actor, action, targets, outcome, detail = row
    assert (action, targets, outcome) == ("retry_workflow", [WORKFLOW], "allowed")
    assert detail["workflow"] == "ingest" and detail["steps_seen"] == 2
    assert sorted(detail["changed"]) == [16, 18]


async def test_retry_with_nothing_failed_is_refused(make_app: AppFactory, conn: psycopg.Connection,
                                                   seeded: str) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_workflows(pilot)
        await pilot.press("R")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("nothing to retry" in t for t in toasts(app))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, WorkflowScreen)
        await pilot.press("R")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
    assert step_states(conn, seeded) == {15: "completed", 16: "available", 17: "executing", 18: "held"}
    rows = audit_rows(conn, seeded)
    assert [(r[1], r[2], r[3]) for r in rows] == [("retry_workflow", [WORKFLOW], "rejected")] * 2
    assert rows[0][4]["reason"] == "nothing to retry: no step was cancelled or discarded"


async def test_retry_from_the_tree_acts_on_the_workflow_as_seen(make_app: AppFactory, conn: psycopg.Connection,
                                                                seeded: str) -> None:
    fail_the_workflow(conn, seeded)
    app = make_app()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await open_workflows(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, WorkflowScreen)
        # Someone retries resize by hand after the tree was drawn: the confirmation says what the user
        # saw, the toast says what happened.
        conn.execute(sql.SQL("UPDATE {}.lysmore_jobs SET state = 'available', discarded_at = NULL WHERE id = 16")
                     .format(sql.Identifier(seeded)))
        await pilot.press("R")
        await settle(pilot)
        assert "Retry workflow ingest (2 steps)?" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
        assert "Retried workflow ingest (1 step; 1 no longer failed)" in toasts(app)
        assert re.search(r"publish\s+‖ held", screen_text(app))
    assert step_states(conn, seeded) == {15: "completed", 16: "available", 17: "completed", 18: "held"}
    assert [(r[1], r[3]) for r in audit_rows(conn, seeded)] == [("retry_workflow", "allowed")]


async def test_retry_read_only_user_is_denied_and_audited(make_app: AppFactory, conn: psycopg.Connection,
                                                         seeded: str) -> None:
    fail_the_workflow(conn, seeded)
    app = make_app(read_only=True)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_workflows(pilot)
        assert screen.check_action("retry", ()) is None  # greyed in the footer
        await pilot.press("R")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("read-only" in t for t in toasts(app))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, WorkflowScreen) and app.screen.check_action("retry", ()) is None
        await pilot.press("R")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        request = workflow_retry_request(WORKFLOW, "ingest", [("discarded", 1), ("cancelled", 1)])
        assert app.gate.perform(request).ok is False  # past the UI, the gate still refuses
    assert step_states(conn, seeded) == {15: "completed", 16: "discarded", 17: "completed", 18: "cancelled"}
    rows = audit_rows(conn, seeded)
    assert [(r[1], r[2], r[3]) for r in rows] == [("retry_workflow", [WORKFLOW], "denied")] * 3
    assert rows[0][4]["reason"] == "read-only"


async def test_retry_needs_the_retry_jobs_right_not_cancel_jobs(make_app: AppFactory, conn: psycopg.Connection,
                                                                seeded: str) -> None:
    fail_the_workflow(conn, seeded)
    app = make_app(resolver="tests.tui.test_gate:OnlyRetry")
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await open_workflows(pilot)
        assert screen.check_action("retry", ()) is True and screen.check_action("cancel", ()) is None
        await pilot.press("R", "y")
        await settle(pilot)
        assert "Retried workflow ingest (2 steps)" in toasts(app)
    assert step_states(conn, seeded)[16] == "available"
    assert [(r[0], r[1], r[3]) for r in audit_rows(conn, seeded)] == [("carol", "retry_workflow", "allowed")]
