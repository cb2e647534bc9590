"""A tiny webhook receiver for the tests: Starlette on uvicorn in a thread, recording what it gets."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class Received:
    """One webhook request as the receiver saw it."""

    body: str
    signature: str | None
    content_type: str | None


class WebhookReceiver:
    """A tiny Starlette app on uvicorn that records webhook POSTs and answers scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self._statuses = list(statuses or [])
        self._cond = threading.Condition()
        self.received: list[Received] = []
        app = Starlette(routes=[Route("/webhook", self._handle, methods=["POST"])])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/webhook"
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    async def _handle(self, request: Request) -> Response:
        body = (await request.body()).decode("utf-8")
        with self._cond:
            self.received.append(
                Received(body, request.headers.get("stripe-signature"), request.headers.get("content-type"))
            )
            status = self._statuses.pop(0) if self._statuses else 200
            self._cond.notify_all()
        return Response(status_code=status)

    def answer_with(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (then 200 again)."""
        with self._cond:
            self._statuses.extend(statuses)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` webhook requests arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= count, timeout)

    def start(self) -> None:
        """Serve in a background thread and wait until ready."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
