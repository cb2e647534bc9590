"""The Queues screen (home) and the per-node detail of one queue."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable

from ..control import queue_node_pause_request, queue_pause_request
from ..layout import Item
from ..model import QueueDetailSnapshot, QueueRow, QueuesSnapshot
from ..presenters import (
    JOB_COLUMNS,
    QUEUE_COLUMNS,
    QUEUE_NODE_COLUMNS,
    job_row,
    queue_node_row,
    queue_row,
    queue_summary,
    state_summary,
)
from ..widgets import FitLines, KeyedTable
from .base import Command, DataScreen, Loader, bindings_for


class QueuesScreen(DataScreen):
    """One row per queue across the cluster, with a summary of counts by state above."""

    scope = "queues"
    view_title = "Queues"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("queues")
    snapshot: QueuesSnapshot | None = None

    def compose_body(self) -> ComposeResult:
        yield FitLines(loading=True, id="summary", classes="summary")
        yield KeyedTable(QUEUE_COLUMNS, id="queues-table")

    def loader(self) -> Loader:
        return lambda store: store.queues()

    def show(self, snapshot: QueuesSnapshot) -> None:
        empty = [] if snapshot.queues else [[Item.of(Text("No queues yet.", style="dim"))]]
        self.query_one("#summary", FitLines).set_lines(state_summary(snapshot.states), *empty)
        sparklines = not self.dash.low_bandwidth
        self.query_one("#queues-table", KeyedTable).sync([queue_row(q, snapshot.now, sparklines) for q in snapshot.queues])

    def current(self) -> QueueRow | None:
        """The queue under the cursor, as last shown."""
        if self.snapshot is None:
            return None
        key = self.query_one("#queues-table", KeyedTable).current_key()
        return next((q for q in self.snapshot.queues if q.name == key), None)

    def action_open(self) -> None:
        """Open the per-node detail of the queue under the cursor."""
        q = self.current()
        if q is not None:
            self.app.push_screen(QueueScreen(q.name))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def open_queue(self, name: str) -> None:
        """Open the per-node detail of ``name``."""
        self.app.push_screen(QueueScreen(name))

    def action_pause(self, name: str | None = None) -> None:
        """Pause the queue on every node, or resume it when it is paused everywhere."""
        q = self._queue(name)
        if q is None:
            self.notify("No queue under the cursor.", severity="warning")
            return
        self.dash.attempt(queue_pause_request(q.name, q.paused, q.nodes))

    async def action_scale(self, name: str | None = None) -> None:
        """Ask for a new local limit for the queue on every node."""
        q = self._queue(name)
        if q is None:
            self.notify("No queue under the cursor.", severity="warning")
            return
        per_node = q.local_limit // q.nodes if q.nodes else None
        await self.dash.ask_scale(q.name, None, per_node, q.nodes)

    def _queue(self, name: str | None) -> QueueRow | None:
        if name is None:
            return self.current()
        if self.snapshot is None:
            return None
        return next((q for q in self.snapshot.queues if q.name == name), None)

    def palette_commands(self) -> list[Command]:
        commands: list[Command] = []
        for q in self.snapshot.queues if self.snapshot else ():
            verb = "resume" if q.paused else "pause"
            commands.append((f"queue: {verb} {q.name}", f"{verb} {q.name} on every node",
                             partial(self.action_pause, q.name)))
            commands.append((f"queue: scale {q.name}", f"set the local limit of {q.name}",
                             partial(self.action_scale, q.name)))
            commands.append((f"queue: open {q.name}", "show the queue per node", partial(self.open_queue, q.name)))
        return commands


NODE_ROWS = 6  # node rows the queue detail shows before its node table scrolls


class QueueScreen(DataScreen):
    """One queue: a row per node with its limit, executing jobs, pause state and heartbeat, and the
    queue's newest jobs in the Jobs screen's table (tab moves between the two; Enter opens a job)."""

    DEFAULT_CSS = """
    QueueScreen #queue-nodes { height: 2; }
    QueueScreen #queue-jobs { height: 1fr; }
    """
    scope = "queue"
    view_title = "Queue"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("queue")
    snapshot: QueueDetailSnapshot | None = None

    def __init__(self, queue: str) -> None:
        super().__init__()
        self.queue = queue

    def title_text(self) -> str:
        return f"Queue {self.queue}"

    def compose_body(self) -> ComposeResult:
        yield FitLines(loading=True, id="queue-summary", classes="summary")
        yield KeyedTable(QUEUE_NODE_COLUMNS, id="queue-nodes")
        yield FitLines(id="queue-jobs-title", classes="summary")
        yield KeyedTable(JOB_COLUMNS, id="queue-jobs")

    def loader(self) -> Loader:
        queue = self.queue
        return lambda store: store.queue_detail(queue)

    def show(self, snapshot: QueueDetailSnapshot) -> None:
        summary = queue_summary(snapshot.queue, snapshot.now, snapshot.setting_paused, snapshot.setting_limit)
        if not snapshot.nodes:
            keys = f"{self.dash.key_of('pause', self.scope)} and {self.dash.key_of('scale', self.scope)}"
            summary.append([Item.of(Text(f"No live node runs this queue; {keys} apply to every node.", style="dim"))])
        self.query_one("#queue-summary", FitLines).set_lines(*summary)
        nodes = self.query_one("#queue-nodes", KeyedTable)
        nodes.sync([queue_node_row(n, snapshot.now) for n in snapshot.nodes])
        nodes.styles.height = 1 + min(NODE_ROWS, max(1, len(snapshot.nodes)))  # the jobs get the rest
        title = "newest jobs" if snapshot.jobs else "no jobs in this queue"
        keys = f"tab: nodes / jobs, {self.dash.key_of('open', self.scope)} opens a job"
        self.query_one("#queue-jobs-title", FitLines).set_lines(
            [Item.of(Text(title, style="bold")), Item.of(Text(keys, style="dim"), "")])
        self.query_one("#queue-jobs", KeyedTable).sync([job_row(job, snapshot.now) for job in snapshot.jobs])

    def action_open(self) -> None:
        """Open the job under the jobs table's cursor (from the nodes table, go to the jobs first)."""
        from .job import JobScreen

        jobs = self.query_one("#queue-jobs", KeyedTable)
        if not jobs.has_focus:
            jobs.focus()
            return
        key = jobs.current_key()
        if key is not None:
            self.app.push_screen(JobScreen(int(key)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "queue-jobs":
            self.action_open()

    def _node(self) -> tuple[str | None, bool, int | None]:
        """(node name or None for every node, paused, current limit) for the row under the cursor."""
        snap = self.snapshot
        if snap is None:
            return None, False, None
        key = self.query_one("#queue-nodes", KeyedTable).current_key()
        node = next((n for n in snap.nodes if n.node_id == key), None)
        if node is None:
            paused = bool(snap.setting_paused) if snap.queue is None else snap.queue.paused
            return None, paused, snap.setting_limit
        return node.name, node.paused, node.local_limit

    def action_pause(self) -> None:
        """Pause or resume this queue on the node under the cursor."""
        if self.snapshot is None:
            return
        name, paused, _ = self._node()
        if name is None:
            nodes = self.snapshot.queue.nodes if self.snapshot.queue else 0
            self.dash.attempt(queue_pause_request(self.queue, paused, nodes))
        else:
            self.dash.attempt(queue_node_pause_request(self.queue, name, paused))

    async def action_scale(self) -> None:
        """Ask for a new local limit on the node under the cursor."""
        if self.snapshot is None:
            return
        name, _, limit = self._node()
        await self.dash.ask_scale(self.queue, name, limit, 0 if name else len(self.snapshot.nodes))

    def palette_commands(self) -> list[Command]:
        return [
            ("queue: pause / resume on node", f"the node under the cursor ({self.dash.key_of('pause', self.scope)})",
             self.action_pause),
            ("queue: scale on node", f"the node under the cursor ({self.dash.key_of('scale', self.scope)})",
             self.action_scale),
        ]

