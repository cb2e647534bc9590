"""What every data screen shares: the frame, registry-driven bindings, and the load/show cycle.

A screen hands the app a loader (captured on the UI thread, run in a worker thread against the
store) and later receives the frozen snapshot it returned in ``show``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static

from ..actions import action as find_action
from ..actions import actions_for
from ..data import Store
from ..widgets import KeyFooter, StatusBar

if TYPE_CHECKING:
    from ..app import DashboardApp

Loader = Callable[[Store], Any]
Command = tuple[str, str, Callable[[], Any]]


def bindings_for(scope: str) -> list[BindingType]:
    """Textual bindings for the registry's actions on ``scope``."""
    return [
        Binding(a.key, a.id, a.label, show=a.footer, key_display=a.key_display, id=f"{scope}.{a.id}",
                priority=a.priority)
        for a in actions_for(scope)
    ]


class DataScreen(Screen[None]):
    """A screen that shows one kind of snapshot and refreshes it on the app's timer."""

    scope: ClassVar[str] = ""
    view_title: ClassVar[str] = ""
    snapshot: Any = None
    shown_at: float | None = None  # when the snapshot on screen arrived (monotonic)
    fresh: bool = True  # False while a screen shown again still shows the snapshot it had

    @property
    def dash(self) -> DashboardApp:
        """The app, typed."""
        return cast("DashboardApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield from self.compose_body()
        yield Static("", id="error-line", classes="error-line")
        yield Static(
            "The terminal is too small for the dashboard: make it at least 60x15.", classes="too-small"
        )
        yield KeyFooter(compact=True)

    def compose_body(self) -> ComposeResult:
        """The widgets between the header and the footer."""
        yield from ()

    def title_text(self) -> str:
        """What the header calls this view."""
        return self.view_title

    # -- the refresh cycle --------------------------------------------------------------------
    def loader(self) -> Loader | None:
        """A function of the store that reads this screen's snapshot (None: nothing to load)."""
        return None

    def deliver(self, snapshot: Any) -> None:
        """Show a snapshot now, or as soon as the screen is mounted (a read started at the key press
        can finish before the screen it is for has been composed)."""
        if self.is_mounted:
            self.apply(snapshot)
        else:
            self.call_later(self.apply, snapshot)  # queued: handled once the screen has mounted

    def apply(self, snapshot: Any) -> None:
        """Keep and show a fresh snapshot; clear any error line."""
        self.snapshot = snapshot
        self.shown_at = time.monotonic()
        if not self.fresh:
            self.fresh = True
            self.dash.update_header()
        line = self.query_one("#error-line", Static)
        if line.has_class("-show"):
            line.update("")
            line.remove_class("-show")
        self.show(snapshot)

    def show(self, snapshot: Any) -> None:
        """Update the widgets from ``snapshot`` (in place)."""

    def show_error(self, message: str) -> None:
        """Say that the last refresh failed; the last good data stays on screen."""
        line = self.query_one("#error-line", Static)
        line.update(Text(f"⚠ {message}", style="bold #dc322f"))
        line.add_class("-show")

    def on_screen_resume(self) -> None:
        if self.snapshot is not None and self.loader() is not None:
            self.fresh = False  # the header says how old it is until the read under way delivers
        self.dash.screen_resumed(self)

    # -- actions ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Actions the user may not take stay in the footer, greyed out."""
        entry = find_action(self.scope, action)
        if entry is not None and entry.permission and not self.dash.access.may(entry.permission):
            return None
        return True

    def action_back(self) -> None:
        """Leave a drilled-in screen."""
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
            self.dash.paint_whole()

    def palette_commands(self) -> list[Command]:
        """Commands this screen offers in the palette (beyond the app-wide ones)."""
        return []
