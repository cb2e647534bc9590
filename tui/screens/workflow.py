"""One workflow's dependency tree (its steps and their states), and the workflow actions both workflow screens offer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable

from ..control import workflow_cancel_request, workflow_label, workflow_retry_request
from ..layout import Item
from ..model import WorkflowSnapshot
from ..presenters import WORKFLOW_STEP_COLUMNS, name_forms, workflow_step_rows
from ..widgets import FitLines, KeyedTable
from .base import Command, DataScreen, Loader, bindings_for

if TYPE_CHECKING:
    from .workflows import WorkflowsScreen


class WorkflowScreen(DataScreen):
    """One workflow's steps as a dependency tree with their states; Enter opens a step's job."""

    scope = "workflow"
    view_title = "Workflow"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("workflow")
    snapshot: WorkflowSnapshot | None = None

    def __init__(self, workflow_id: str) -> None:
        super().__init__()
        self.workflow_id = workflow_id

    def title_text(self) -> str:
        return f"Workflow {self.workflow_id[:8]}"

    def compose_body(self) -> ComposeResult:
        yield FitLines(loading=True, id="workflow-summary", classes="summary")
        yield KeyedTable(WORKFLOW_STEP_COLUMNS, id="workflow-steps")

    def on_mount(self) -> None:
        self.query_one("#workflow-steps", KeyedTable).focus()

    def loader(self) -> Loader:
        workflow_id = self.workflow_id
        return lambda store: store.workflow(workflow_id)

    def show(self, snapshot: WorkflowSnapshot) -> None:
        empty = [] if snapshot.steps else [[Item.of(Text("No steps (pruned or deleted).", style="dim"))]]
        self.query_one("#workflow-summary", FitLines).set_lines(  # a long name is ellipsised, never wrapped
            [Item(name_forms(snapshot.name or "workflow"), shrink=1), Item.of(Text(snapshot.workflow_id, style="dim"))],
            *empty,
        )
        self.query_one("#workflow-steps", KeyedTable).sync(workflow_step_rows(snapshot.steps))

    def action_open(self) -> None:
        """Open the job of the step under the cursor."""
        from .job import JobScreen

        key = self.query_one("#workflow-steps", KeyedTable).current_key()
        if key is not None:
            self.app.push_screen(JobScreen(int(key)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def _as_seen(self) -> tuple[WorkflowSnapshot, list[tuple[str, int]]] | None:
        """This workflow as last shown, with its steps counted by state (None before it has loaded)."""
        snap = self.snapshot
        if snap is None:
            self.notify("The workflow has not loaded yet.", severity="warning")
            return None
        by_state: dict[str, int] = {}
        for step in snap.steps:
            by_state[step.state] = by_state.get(step.state, 0) + 1
        return snap, list(by_state.items())

    def action_cancel(self) -> None:
        """Cancel the unfinished steps of this workflow, as last shown."""
        if seen := self._as_seen():
            snap, steps = seen
            self.dash.attempt(workflow_cancel_request(snap.workflow_id, snap.name, steps))

    def action_retry(self) -> None:
        """Run the cancelled and discarded steps of this workflow again, as last shown."""
        if seen := self._as_seen():
            snap, steps = seen
            self.dash.attempt(workflow_retry_request(snap.workflow_id, snap.name, steps))

    def palette_commands(self) -> list[Command]:
        name = workflow_label(self.workflow_id, self.snapshot.name if self.snapshot else None)
        return workflow_commands(self, name)


def workflow_commands(screen: WorkflowsScreen | WorkflowScreen, name: str) -> list[Command]:
    """The palette's workflow actions, with the keys they are on in this screen."""
    return [
        (f"workflow: cancel {name}", f"cancel its unfinished steps ({screen.dash.key_of('cancel', screen.scope)})",
         screen.action_cancel),
        (f"workflow: retry {name}",
         f"run its cancelled and discarded steps again ({screen.dash.key_of('retry', screen.scope)})",
         screen.action_retry),
    ]
