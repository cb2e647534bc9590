"""The Nodes, Audit and Workflows screens, and one workflow's dependency tree (both cancel and retry workflows)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable

from ..control import (
    Request,
    node_pause_request,
    workflow_cancel_request,
    workflow_label,
    workflow_retry_request,
)
from ..layout import Item
from ..model import (
    AuditSnapshot,
    NodeRow,
    NodesSnapshot,
    WorkflowRow,
    WorkflowSnapshot,
    WorkflowsSnapshot,
)
from ..presenters import (
    AUDIT_COLUMNS,
    NODE_COLUMNS,
    WORKFLOW_COLUMNS,
    audit_detail,
    audit_row,
    name_forms,
    node_row,
    nodes_summary,
    workflow_row,
    workflow_tree,
)
from ..widgets import FitLines, KeyedTable
from .base import Command, DataScreen, Loader, bindings_for


class NodesScreen(DataScreen):
    """One row per node: lease age, leader star, queues and what runs now."""

    scope = "nodes"
    view_title = "Nodes"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("nodes")
    snapshot: NodesSnapshot | None = None

    def compose_body(self) -> ComposeResult:
        yield FitLines(sep=" · ", loading=True, id="nodes-summary", classes="summary")
        yield KeyedTable(NODE_COLUMNS, id="nodes-table")

    def loader(self) -> Loader:
        return lambda store: store.nodes()

    def show(self, snapshot: NodesSnapshot) -> None:
        self.query_one("#nodes-summary", FitLines).set_lines(nodes_summary(
            len(snapshot.nodes), snapshot.cluster.nodes, snapshot.cluster.leader, self.dash.key_of("pause", self.scope),
        ))
        self.query_one("#nodes-table", KeyedTable).sync([node_row(n, snapshot.now) for n in snapshot.nodes])

    def current(self) -> NodeRow | None:
        """The node under the cursor, as last shown."""
        if self.snapshot is None:
            return None
        key = self.query_one("#nodes-table", KeyedTable).current_key()
        return next((n for n in self.snapshot.nodes if n.id == key), None)

    def action_pause(self, node_id: str | None = None) -> None:
        """Pause every queue of the node, or resume them all when all are paused."""
        node = self.current() if node_id is None else next(
            (n for n in (self.snapshot.nodes if self.snapshot else ()) if n.id == node_id), None
        )
        if node is None:
            self.notify("No node under the cursor.", severity="warning")
            return
        queues = tuple(q.queue for q in node.queues)
        if not queues:
            self.notify(f"{node.name} runs no queues.", severity="warning")
            return
        self.dash.attempt(node_pause_request(node.name, queues, node.all_paused))

    def palette_commands(self) -> list[Command]:
        return [
            (f"node: {'resume' if n.all_paused else 'pause'} all queues on {n.name}", f"{n.host}/{n.pid}",
             partial(self.action_pause, n.id))
            for n in (self.snapshot.nodes if self.snapshot else ())
        ]


class AuditScreen(DataScreen):
    """Who did what, when, to which targets, allowed or denied."""

    scope = "audit"
    view_title = "Audit"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("audit")
    snapshot: AuditSnapshot | None = None

    def compose_body(self) -> ComposeResult:
        yield KeyedTable(AUDIT_COLUMNS, id="audit-table")
        yield FitLines(loading=True, id="audit-detail", classes="detail")

    def loader(self) -> Loader:
        return lambda store: store.audit()

    def show(self, snapshot: AuditSnapshot) -> None:
        self.query_one("#audit-table", KeyedTable).sync([audit_row(a, snapshot.now) for a in snapshot.rows])
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        if self.snapshot is None:
            return
        key = self.query_one("#audit-table", KeyedTable).current_key()
        row = next((a for a in self.snapshot.rows if str(a.id) == key), None)
        self.query_one("#audit-detail", FitLines).set_lines(*audit_detail(row))


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
        return _workflow_commands(self, name)


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
        return _workflow_commands(self, name)


def _workflow_commands(screen: WorkflowsScreen | WorkflowScreen, name: str) -> list[Command]:
    """The palette's workflow actions, with the keys they are on in this screen."""
    return [
        (f"workflow: cancel {name}", f"cancel its unfinished steps ({screen.dash.key_of('cancel', screen.scope)})",
         screen.action_cancel),
        (f"workflow: retry {name}",
         f"run its cancelled and discarded steps again ({screen.dash.key_of('retry', screen.scope)})",
         screen.action_retry),
    ]
