"""The Workflows screen: one row per workflow with its progress."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable

from ..control import Request, workflow_cancel_request, workflow_label, workflow_retry_request
from ..layout import Item
from ..model import WorkflowRow, WorkflowsSnapshot
from ..presenters import WORKFLOW_COLUMNS, workflow_row
from ..widgets import FitLines, KeyedTable
from .base import Command, DataScreen, Loader, bindings_for
from .workflow import WorkflowScreen, workflow_commands


class WorkflowsScreen(DataScreen):
    """One row per workflow with its progress."""

    scope = "workflows"
    view_title = "Workflows"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("workflows")
    snapshot: WorkflowsSnapshot | None = None

    def compose_body(self) -> ComposeResult:
        yield FitLines(loading=True, id="workflows-summary", classes="summary")
        yield KeyedTable(WORKFLOW_COLUMNS, id="workflows-table")

    def loader(self) -> Loader:
        return lambda store: store.workflows()

    def show(self, snapshot: WorkflowsSnapshot) -> None:
        summary = f"{len(snapshot.rows)} workflows (newest first)" if snapshot.rows else "No workflows yet."
        self.query_one("#workflows-summary", FitLines).set_lines([Item.of(summary)])
        self.query_one("#workflows-table", KeyedTable).sync([workflow_row(w, snapshot.now) for w in snapshot.rows])

    def current(self) -> WorkflowRow | None:
        """The workflow under the cursor, as last shown."""
        if self.snapshot is None:
            return None
        key = self.query_one("#workflows-table", KeyedTable).current_key()
        return next((w for w in self.snapshot.rows if w.id == key), None)

    def action_open(self) -> None:
        """Show the steps of the workflow under the cursor."""
        key = self.query_one("#workflows-table", KeyedTable).current_key()
        if key is not None:
            self.app.push_screen(WorkflowScreen(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_cancel(self) -> None:
        """Cancel the unfinished steps of the workflow under the cursor, as last shown."""
        self._attempt(workflow_cancel_request)

    def action_retry(self) -> None:
        """Run the cancelled and discarded steps of the workflow under the cursor again, as last shown."""
        self._attempt(workflow_retry_request)

    def _attempt(self, build: Callable[[str, str | None, Iterable[tuple[str, int]]], Request]) -> None:
        workflow = self.current()
        if workflow is None:
            self.notify("No workflow under the cursor.", severity="warning")
            return
        self.dash.attempt(build(workflow.id, workflow.name, workflow.by_state))

    def palette_commands(self) -> list[Command]:
        workflow = self.current()
        if workflow is None:
            return []
        name = workflow_label(workflow.id, workflow.name)
        return workflow_commands(self, name)
