"""``lysmore licensing serve``: the webhook endpoint (uvicorn) and a node of the private instance, with local stand-ins."""

# With no Stripe key the local Stripe sandbox is started and the SDK pointed at it, and the webhook
# endpoint is registered with it; with no SMTP server a local SMTP sink keeps (and logs) the mail.

from __future__ import annotations

import logging
import secrets
import signal
import socket
import threading
import time
from contextlib import ExitStack
from typing import Any

import uvicorn
from pydantic import SecretStr

from .app import LicensingApp
from .keys import generate_signing_key
from .mail import SmtpSink
from .settings import LicensingSettings, load_licensing_settings
from .webhooks import EVENT_TYPES

log = logging.getLogger("licensing.serve")


class WebServer:
    """An ASGI app served by uvicorn in a thread on a socket bound up front (port 0 picks a free one)."""

    def __init__(self, asgi: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            asgi, lifespan="off", log_config=None, access_log=False, ws="none", server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=f"licensing-web-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8000`` (a wildcard address is given as loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> WebServer:
        """Serve in the background and wait until requests are answered."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and release the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    settings: LicensingSettings | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the webhook endpoint and a node until ``stop`` is set (or SIGINT/SIGTERM); returns an exit code."""
    s = settings or load_licensing_settings()
    host = s.host if host is None else host
    port = s.port if port is None else port
    stop = stop or threading.Event()
    with ExitStack() as stack:
        updates: dict[str, Any] = {}
        sandbox = None
        if s.stripe_api_key is None:
            from .sandbox import DEFAULT_API_KEY, StripeSandbox

            sandbox = StripeSandbox()
            sandbox.start()
            stack.callback(sandbox.stop)
            updates.update(stripe_api_key=SecretStr(DEFAULT_API_KEY), stripe_api_base=sandbox.url)
            log.warning("no Stripe key configured: using the local Stripe sandbox at %s", sandbox.url)
            dev = {
                "webhook_secret": "whsec_" + secrets.token_hex(24),
                "license_signing_key": generate_signing_key(),
                "hex_key_secret": secrets.token_urlsafe(32),
            }
            for name, value in dev.items():
                if getattr(s, name) is None:
                    updates[name] = SecretStr(value)
                    log.warning("sandbox mode: generated a throwaway %s for this run", name)
        if s.smtp_host is None:
            sink = SmtpSink()
            sink.start()
            stack.callback(sink.stop)
            updates.update(smtp_host=sink.host, smtp_port=sink.port, smtp_starttls=False, smtp_username=None)
            log.warning("no SMTP server configured: mail goes to the local sink at %s:%d and is logged there", sink.host, sink.port)
        effective = s.model_copy(update=updates)
        app = LicensingApp(effective)
        app.migrate()
        app.start()
        stack.callback(app.stop)
        server = WebServer(app.web_app(), host, port).start()
        stack.callback(server.stop)
        hook = f"{(effective.public_url or server.url).rstrip('/')}/webhooks/stripe"
        if sandbox is not None:
            endpoint = sandbox.add_webhook_endpoint(
                hook, secret=app.webhook_secret(), enabled_events=EVENT_TYPES
            )
            log.warning("sandbox delivers %s to %s (%s)", ", ".join(EVENT_TYPES), hook, endpoint.id)
        log.warning(
            "licensing app on %s (webhooks at %s); private instance %r, node %s; license public key %s",
            server.url, hook, app.prefix, app.engine.node_name, app.public_key(),
        )
        _wait(stop)
        log.warning("stopping")
    return 0


def _wait(stop: threading.Event) -> None:
    """Block until ``stop`` is set or the process gets SIGINT/SIGTERM (when on the main thread)."""
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    else:
        stop.wait()
