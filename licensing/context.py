"""Which licensing app a job belongs to: apps register by engine prefix, the prefix a job runs under."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from engine import Job

if TYPE_CHECKING:
    from .app import LicensingApp

_apps: dict[str, LicensingApp] = {}
_lock = threading.Lock()

#: The meta key naming the instance (engine prefix) a licensing job was inserted for; not a secret.
#: Shown in the dashboard; a job handed to ``app_for`` by hand (no engine) is found by it.
META_KEY = "licensing"


def register(app: LicensingApp) -> None:
    """Make ``app`` the one that runs this process's jobs of its prefix."""
    with _lock:
        _apps[app.prefix] = app


def unregister(app: LicensingApp) -> None:
    """Forget ``app`` if it is the registered one for its prefix."""
    with _lock:
        if _apps.get(app.prefix) is app:
            del _apps[app.prefix]


def app_for(job: Job) -> LicensingApp:
    """The app registered for the instance running ``job`` (or named in its meta, for a job not
    handed out by an engine); raises when this process has none."""
    prefix = job.prefix or job.meta.get(META_KEY)
    with _lock:
        app = _apps.get(prefix) if isinstance(prefix, str) else None
    if app is None:
        raise RuntimeError(f"no licensing app for instance {prefix!r} is running in this process")
    return app
