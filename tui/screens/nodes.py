"""The Nodes screen: every node with its lease, leadership and queues."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType

from ..control import node_pause_request
from ..model import NodeRow, NodesSnapshot
from ..presenters import NODE_COLUMNS, node_row, nodes_summary
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
