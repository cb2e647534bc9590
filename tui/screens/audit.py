"""The Audit screen: the newest recorded dashboard actions, and under them the error reporter's
newest notifications (shown only once there are any)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ..model import AuditSnapshot
from ..presenters import (
    AUDIT_COLUMNS,
    NOTIFICATION_COLUMNS,
    audit_detail,
    audit_row,
    notification_row,
)
from ..widgets import FitLines, KeyedTable
from .base import DataScreen, Loader, bindings_for


class AuditScreen(DataScreen):
    """Who did what, when, to which targets, allowed or denied."""

    scope = "audit"
    view_title = "Audit"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("audit")
    snapshot: AuditSnapshot | None = None

    def compose_body(self) -> ComposeResult:
        yield KeyedTable(AUDIT_COLUMNS, id="audit-table")
        yield FitLines(loading=True, id="audit-detail", classes="detail")
        with Vertical(id="notifications", classes="-hidden"):
            yield Static("Notifications (error reporter)", id="notifications-title")
            yield KeyedTable(NOTIFICATION_COLUMNS, id="notifications-table")

    def loader(self) -> Loader:
        return lambda store: store.audit()

    def show(self, snapshot: AuditSnapshot) -> None:
        self.query_one("#audit-table", KeyedTable).sync([audit_row(a, snapshot.now) for a in snapshot.rows])
        self.query_one("#notifications-table", KeyedTable).sync(
            [notification_row(n, snapshot.now) for n in snapshot.notifications])
        self.query_one("#notifications").set_class(not snapshot.notifications, "-hidden")
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        if self.snapshot is None:
            return
        key = self.query_one("#audit-table", KeyedTable).current_key()
        row = next((a for a in self.snapshot.rows if str(a.id) == key), None)
        self.query_one("#audit-detail", FitLines).set_lines(*audit_detail(row))
