"""Lysmore's terminal dashboard (Textual), reading and steering an engine instance through PostgreSQL.

``from tui import DashboardApp, run_dashboard``; both are loaded lazily so that importing the
package (or its pure modules: filters, presenters, actions, access, data, control) does not
import Textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import DashboardApp

__all__ = ["DashboardApp", "run_dashboard"]


def __getattr__(name: str) -> Any:
    if name == "DashboardApp":
        from .app import DashboardApp

        return DashboardApp
    raise AttributeError(f"module 'tui' has no attribute {name!r}")


DEFAULT_REFRESH = 2.0


def run_dashboard(
    database_url: str | None = None,
    prefix: str | None = None,
    read_only: bool = False,
    refresh: float | None = None,
    mouse: bool = True,
    low_bandwidth: bool = False,
    resolver: Any = None,
    keymap: Any = None,
    engine: Any = None,
    database_name: str | None = None,
) -> int:
    """Run the dashboard in this terminal until the user quits; returns a process exit code.

    ``refresh``: seconds between refreshes, 0 for off, None for the resolver's rate or else
    ``DEFAULT_REFRESH``. ``keymap``: a ``tui.keymap.Keymap``, or the path of a keymap file (None:
    the user's own). ``engine``: an Engine to read through (the caller stops it), instead of one
    made from ``database_url`` and ``prefix``.
    """
    import logging
    import os

    if low_bandwidth:
        os.environ.setdefault("TEXTUAL_FPS", "10")
    from engine import LysmoreError

    from .app import DashboardApp

    try:
        app = DashboardApp(
            database_url=database_url, prefix=prefix, read_only=read_only,
            refresh=DEFAULT_REFRESH if refresh is None else refresh, resolver=resolver,
            low_bandwidth=low_bandwidth, mouse=mouse, handle_hangup=True, keymap=keymap, engine=engine,
            database_name=database_name,
        )
    except (LysmoreError, ValueError) as exc:
        logging.getLogger("lysmore.tui").error("cannot start the dashboard: %s", exc)
        return 2
    app.run(mouse=mouse)
    return int(app.return_code or 0)
