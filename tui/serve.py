"""The same dashboard in a browser: ``lysmore dashboard --serve`` through textual-serve.

textual-serve runs one child process per browser connection, the command it was given, and relays
the child's screen to xterm.js in the page. The command line shows in every user's ``ps``, so the
child gets only what is not secret there; the database URL (which may carry a password) and the
access the server resolved go through its environment. The browser's user is therefore the one
the resolver answered for the server, with the same rights, and every change it makes is audited
under that name; a child started by hand without ``ACCESS_ENV`` set resolves its own.

Nothing here imports Textual or textual-serve until ``serve`` runs.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import shlex
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .access import Access
from .actions import PERMISSIONS

ACCESS_ENV = "LYSMORE_DASHBOARD_ACCESS"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TITLE = "Lysmore dashboard"

log = logging.getLogger("lysmore.tui.serve")


class ServeError(Exception):
    """A reason the dashboard cannot be served, in one line."""


def encode_access(access: Access) -> str:
    """``access`` as the text of ``ACCESS_ENV``."""
    return json.dumps({"user": access.user, "rights": sorted(access.rights), "read_only": access.read_only,
                       "refresh": access.refresh})


def inherited_access(environ: Mapping[str, str] | None = None) -> Access | None:
    """The access a serving parent resolved for this child (``ACCESS_ENV``), None when unset.

    A value that is not what ``encode_access`` writes raises ``ServeError`` rather than fall back to
    another user.
    """
    text = (os.environ if environ is None else environ).get(ACCESS_ENV)
    if text is None:
        return None
    try:
        data = json.loads(text)
        refresh = data["refresh"]
        access = Access(user=str(data["user"]), rights=frozenset(str(r) for r in data["rights"]),
                        read_only=bool(data["read_only"]),
                        refresh=None if refresh is None else float(refresh))
    except (ValueError, KeyError, TypeError) as exc:
        raise ServeError(f"{ACCESS_ENV} is not an access the serving dashboard wrote: {exc}") from None
    if not access.user:
        raise ServeError(f"{ACCESS_ENV} names no user")
    return access


def _url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets, a wildcard as this machine's name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return socket.gethostname()
    return f"[{host}]" if address.version == 6 else host


def public_url(host: str, port: int) -> str:
    """The address to open in a browser (the page's websocket goes back to it too)."""
    return f"http://{_url_host(host)}:{port}"


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(host: str, port: int) -> None:
    """Raise ``ServeError`` naming the problem unless a server can listen on ``host``:``port`` now."""
    if not 1 <= port <= 65535:
        raise ServeError(f"--port must be 1 to 65535, got {port}")
    if not host.strip():
        raise ServeError("--host is empty (0.0.0.0 listens on every address)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"--host {host!r} is not an address of this machine: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as exc:
            raise ServeError(_bind_error(host, port, exc)) from None


def _bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is in use on {host} (pick another with --port)"
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges this user lacks (pick one above 1023 with --port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"--host {host} is not an address of this machine"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _rights_text(access: Access) -> str:
    """``read-only``, ``every action``, or the actions' names."""
    if access.read_only:
        return "read-only"
    if access.rights >= frozenset(PERMISSIONS):
        return "every action"
    return ", ".join(sorted(access.rights))


def serve(
    command: Sequence[str],
    *,
    access: Access,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    environ: Mapping[str, str] | None = None,
    announce: Callable[[str], None],
    title: str = TITLE,
) -> int:
    """Serve ``command`` (a dashboard's argv, without secrets) until SIGINT or SIGTERM.

    ``environ`` is added to the environment every child inherits (the database URL goes here);
    ``access`` goes there too, as ``ACCESS_ENV``. ``announce`` gets the line saying where to point a
    browser once the server listens. Raises ``ServeError`` when it cannot listen.
    """
    check_address(host, port)
    from textual_serve.server import Server

    url = public_url(host, port)
    os.environ.update(environ or {})
    os.environ[ACCESS_ENV] = encode_access(access)
    os.environ["TERM"] = "xterm-256color"  # the child draws for xterm.js, whatever terminal started us
    rights = _rights_text(access)

    class DashboardServer(Server):
        """textual-serve's server, logging through the command line's setup and saying one line."""

        def initialize_logging(self) -> None:
            """The command line configured logging already."""

        async def on_startup(self, app: Any) -> None:
            announce(f"serving the dashboard on {url} as {access.user} ({rights}); Ctrl+C stops it")
            if not is_loopback(host):
                log.warning("anyone who can reach %s gets the dashboard as %s (%s): no login is asked",
                            url, access.user, rights)

    server = DashboardServer("exec " + shlex.join(command), host=host, port=port, title=title, public_url=url)
    try:
        server.serve()
    except OSError as exc:  # taken between the check and the bind
        raise ServeError(_bind_error(host, port, exc)) from None
    return 0
