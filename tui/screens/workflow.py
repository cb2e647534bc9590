"""One workflow's dependency tree (its steps and their states), and the workflow actions both workflow screens offer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll

from ..control import workflow_cancel_request, workflow_label, workflow_retry_request
from ..layout import Item
from ..model import WorkflowSnapshot
from ..presenters import name_forms, workflow_tree
from ..widgets import FitLines
from .base import Command, DataScreen, Loader, bindings_for

if TYPE_CHECKING:
    from .workflows import WorkflowsScreen


class WorkflowScreen(DataScreen):
    """One workflow's steps as a dependency tree with their states."""

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
        with VerticalScroll(id="workflow-body"):
            yield FitLines(loading=True, id="workflow-tree")

    def loader(self) -> Loader:
        workflow_id = self.workflow_id
        return lambda store: store.workflow(workflow_id)

    def show(self, snapshot: WorkflowSnapshot) -> None:
        steps = workflow_tree(snapshot.steps) or [Text("No steps (pruned or deleted).", style="dim")]
        self.query_one("#workflow-tree", FitLines).set_lines(  # a long step name is ellipsised, never wrapped
            [Item(name_forms(snapshot.name or "workflow"), shrink=1), Item.of(Text(snapshot.workflow_id, style="dim"))],
            [], *[[Item.of(line)] for line in steps],
        )

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
