"""``GET /licenses/{key}/status``: the online license check, rate-limited per client address (token bucket in memory)."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from .app import LicensingApp

LICENSE_KEY = re.compile(r"^lic_[a-z2-7]{32}$")
NOT_FOUND = {"error": "not found"}


class TokenBucket:
    """Per-client token buckets: ``burst`` checks at once, refilled at ``rate`` per second; idle clients are forgotten."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst at least 1")
        self.rate, self.burst, self._clock, self._max = rate, burst, clock, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Take one token for ``client``: 0.0 when allowed, else the seconds until one is there."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                self._forget_idle(now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) <= self._max:
            return
        full = self.burst / self.rate  # a bucket idle this long is full again: the same as none
        for client in [c for c, (_, last) in self._buckets.items() if now - last >= full]:
            del self._buckets[client]
        while len(self._buckets) > self._max:  # still too many: drop the longest idle
            del self._buckets[min(self._buckets, key=lambda c: self._buckets[c][1])]


def status_route(app: LicensingApp) -> Route:
    """The route answering ``{"status": valid|expired|revoked, "expires_at", "ends_at"}`` for a license key.

    An unknown or malformed key gets the same 404 as any other; every request, found or not, takes a
    token from its client's bucket (``status_rate`` per second, ``status_burst`` at once), so keys
    cannot be guessed fast; the client is the direct peer's address (a proxy in front shares one)."""
    bucket = TokenBucket(app.settings.status_rate, app.settings.status_burst)

    async def license_status(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = bucket.take(client)
        headers = {"Cache-Control": "no-store"}
        if wait > 0:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return JSONResponse({"error": "too many requests"}, status_code=429, headers=headers)
        key = request.path_params["key"]
        found = await run_in_threadpool(app.license_status, key) if LICENSE_KEY.match(key) else None
        if found is None:
            return JSONResponse(NOT_FOUND, status_code=404, headers=headers)
        return JSONResponse(found, headers=headers)

    return Route("/licenses/{key}/status", license_status, methods=["GET"])
