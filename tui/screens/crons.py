"""The Crons screen: every cron entry with its schedule, zone, last and next run and newest runs."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable

from engine import CronStatus

from ..control import cron_pause_request
from ..model import CronsSnapshot
from ..presenters import CRON_COLUMNS, cron_detail, cron_row, crons_summary
from ..widgets import FitLines, KeyedTable
from .base import Command, DataScreen, Loader, bindings_for


class CronsScreen(DataScreen):
    """One row per cron entry; P pauses or resumes the entry under the cursor through the gate."""

    scope = "crons"
    view_title = "Crons"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("crons")
    snapshot: CronsSnapshot | None = None

    def compose_body(self) -> ComposeResult:
        yield FitLines(sep=" · ", loading=True, id="crons-summary", classes="summary")
        yield KeyedTable(CRON_COLUMNS, id="crons-table")
        yield FitLines(loading=True, id="crons-detail", classes="detail")

    def loader(self) -> Loader:
        return lambda store: store.crons()

    def show(self, snapshot: CronsSnapshot) -> None:
        self.query_one("#crons-summary", FitLines).set_lines(
            crons_summary(snapshot.entries, self.dash.key_of("pause", self.scope)))
        self.query_one("#crons-table", KeyedTable).sync([cron_row(c, snapshot.now) for c in snapshot.entries])
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        if self.snapshot is None:
            return
        self.query_one("#crons-detail", FitLines).set_lines(*cron_detail(self.current(), self.snapshot.now))

    def current(self) -> CronStatus | None:
        """The entry under the cursor, as last shown."""
        if self.snapshot is None:
            return None
        key = self.query_one("#crons-table", KeyedTable).current_key()
        return next((c for c in self.snapshot.entries if c.name == key), None)

    def action_pause(self, name: str | None = None) -> None:
        """Pause the entry under the cursor (or ``name``), or resume it when it is paused."""
        entries = self.snapshot.entries if self.snapshot else ()
        entry = self.current() if name is None else next((c for c in entries if c.name == name), None)
        if entry is None:
            self.notify("No cron entry under the cursor.", severity="warning")
            return
        self.dash.attempt(cron_pause_request(entry.name, entry.expression, entry.timezone, entry.paused))

    def palette_commands(self) -> list[Command]:
        return [
            (f"cron: {'resume' if c.paused else 'pause'} {c.name}", f"{c.expression} ({c.timezone})",
             partial(self.action_pause, c.name))
            for c in (self.snapshot.entries if self.snapshot else ())
        ]
