"""Lysmore's terminal dashboard (Textual), reading and steering an engine instance through PostgreSQL.

``from tui import DashboardApp, run_dashboard``; both are loaded lazily so that importing the
package (or its pure modules: filters, presenters, actions, access, data, control) does not
import Textual.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
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
LOG_FILE_ENV = "LYSMORE_LOG_FILE"
POOL_TIMEOUT = 2.0  # seconds a read or change waits for a connection before the database is taken for down


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
    log_file: str | os.PathLike[str] | None = None,
    prefixes: Sequence[str] = (),
) -> int:
    """Run the dashboard in this terminal until the user quits; returns a process exit code.

    ``refresh``: seconds between refreshes, 0 for off, None for the resolver's rate or else
    ``DEFAULT_REFRESH``. ``keymap``: a ``tui.keymap.Keymap``, or the path of a keymap file (None:
    the user's own). ``engine``: an Engine to read through (the caller stops it), instead of one
    made from ``database_url`` and ``prefix``. ``prefixes``: every instance the run watches (the
    engine's first unless listed), switched between with a key and the palette. While the screen is up every log line goes to
    ``log_file`` (default ``log_file_path()``), never to the terminal.
    """
    import logging

    if low_bandwidth:
        os.environ.setdefault("TEXTUAL_FPS", "10")
    from engine import LysmoreError, logging_to

    from .app import DashboardApp

    try:
        app = DashboardApp(
            database_url=database_url, prefix=prefix, read_only=read_only,
            refresh=DEFAULT_REFRESH if refresh is None else refresh, resolver=resolver,
            low_bandwidth=low_bandwidth, mouse=mouse, handle_hangup=True, keymap=keymap, engine=engine,
            database_name=database_name, log_file=str(log_file_path(log_file)), prefixes=prefixes,
        )
    except (LysmoreError, ValueError) as exc:
        logging.getLogger("lysmore.tui").error("cannot start the dashboard: %s", exc)
        return 2
    known = engine is not None and not engine.uses_embedded  # its URL is set: reading it starts nothing
    urls = (database_url, os.environ.get("LYSMORE_DATABASE_URL"), engine.database_url if known else None)
    with logging_to(log_file_path(log_file), urls=urls):
        app.run(mouse=mouse)
    return int(app.return_code or 0)


def log_file_path(log_file: str | os.PathLike[str] | None = None) -> Path:
    """Where the dashboard logs: ``log_file``, else ``$LYSMORE_LOG_FILE``, else
    ``$XDG_STATE_HOME/lysmore/dashboard.log`` (``~/.local/state/lysmore/dashboard.log``)."""
    from engine import state_log_file

    named = log_file or os.environ.get(LOG_FILE_ENV)
    return Path(named).expanduser() if named else state_log_file("dashboard")
