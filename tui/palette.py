"""The command palette: app-wide commands from the registry plus those of the current screen."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .actions import actions_for
from .screens.base import DataScreen

if TYPE_CHECKING:
    from .app import DashboardApp

RATE_COMMANDS: tuple[float | None, ...] = (1, 2, 5, 15, 30, 60, None)
QUIT_WORDS = frozenset({"q", "q!", "quit", "exit"})  # `:q` quits, as in k9s and vi


class DashboardCommands(Provider):
    """Commands that fit the screen the palette was opened on: ``queue: pause mailers``, ``view: nodes``."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app = cast("DashboardApp", self.app)
        commands: list[tuple[str, str, Callable[[], Any]]] = []
        screen = self.screen
        if isinstance(screen, DataScreen):
            commands.extend(screen.palette_commands())
        for a in actions_for("app"):
            if a.palette:
                commands.append((a.palette, a.help, partial(app.run_registry_action, a.id)))
        for rate in RATE_COMMANDS:
            label = "off" if rate is None else f"{rate:g}s"
            commands.append((f"refresh: {label}", "set the refresh rate", partial(app.set_rate, rate)))
        if len(app.prefixes) > 1:
            for prefix in app.prefixes:
                here = " (shown now)" if prefix == app.engine.prefix else ""
                commands.append((f"instance: {prefix}", f"show the instance {prefix} in every view{here}",
                                 partial(app.switch_instance, prefix)))
        commands.append(("help: keys and filter syntax", "the generated help", app.action_help))
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        if query.strip().lower() in QUIT_WORDS:  # the only hit, so one Enter runs it
            yield Hit(1.0, "quit", self.app.action_quit, help="quit the dashboard")
            return
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
