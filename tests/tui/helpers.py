"""Helpers for driving the dashboard in tests: settle after refreshes, read the screen as text."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App

from tui.screenshots import settle

__all__ = ["screen_text", "settle"]


def screen_text(app: App[object]) -> str:
    """What the terminal shows now, as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def toasts(app: App[object]) -> list[str]:
    """The messages of the notifications shown now (run the app with ``notifications=True``)."""
    return [n.message for n in app._notifications]
