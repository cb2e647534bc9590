"""Signed webhook delivery like Stripe's: ``Stripe-Signature`` headers and retries on failure."""

from __future__ import annotations

import heapq
import hmac
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import httpx

from .store.webhook_endpoints import WebhookTarget

log = logging.getLogger(__name__)

#: Pauses before the 2nd, 3rd, ... delivery attempt of one event to one endpoint.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.05, 0.25, 1.0, 2.0)
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
#: How :meth:`WebhookDispatcher.release` may order the deliveries it held.
RELEASE_ORDERS = ("fifo", "reverse", "shuffle")


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload``: ``t=<ts>,v1=<hmac-sha256 hex>``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode("utf-8"), f"{ts}.{payload}".encode(), sha256)
    return f"t={ts},v1={mac.hexdigest()}"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of one event to one endpoint, and how it went."""

    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    at: float

    @property
    def ok(self) -> bool:
        """Whether the endpoint answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    event_id: str = field(compare=False)
    event_type: str = field(compare=False)
    payload: str = field(compare=False)
    target: WebhookTarget = field(compare=False)
    attempt: int = field(default=1, compare=False)


class WebhookDispatcher:
    """A background thread that POSTs signed events to endpoints, retrying non-2xx answers."""

    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        timeout: float = 5.0,
        on_delivered: Callable[[str], None] | None = None,
    ) -> None:
        self._retry_delays = tuple(retry_delays)
        self._timeout = timeout
        self._on_delivered = on_delivered
        self._cond = threading.Condition()
        self._queue: list[_Delivery] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._attempts: list[DeliveryAttempt] = []
        self._holding = False
        self._held: list[_Delivery] = []

    @property
    def attempts(self) -> list[DeliveryAttempt]:
        """Every delivery attempt made so far, oldest first."""
        with self._cond:
            return list(self._attempts)

    def start(self) -> None:
        """Start the delivery thread."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="stripe-sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the delivery thread; deliveries still queued are dropped."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            dropped = len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        if dropped:
            log.info("sandbox webhooks: dropped %d undelivered event(s) on stop", dropped)
        if thread is not None:
            thread.join(timeout)

    def clear(self) -> None:
        """Forget queued and held deliveries and the attempt history, and stop holding."""
        with self._cond:
            self._queue.clear()
            self._attempts.clear()
            self._held.clear()
            self._holding = False
            self._cond.notify_all()

    def hold(self) -> None:
        """Keep new events back (undelivered) until :meth:`release`; Stripe promises neither order nor once."""
        with self._cond:
            self._holding = True

    @property
    def held(self) -> int:
        """How many deliveries are being held back."""
        with self._cond:
            return len(self._held)

    def release(self, *, order: str = "fifo", duplicate: bool = False, seed: int | None = None) -> int:
        """Deliver what was held, in ``order`` (``fifo``, ``reverse``, ``shuffle``), each twice if ``duplicate``; stop holding.

        Returns how many deliveries were queued. Duplicates are the same event (same id), signed afresh.
        """
        if order not in RELEASE_ORDERS:
            raise ValueError(f"unknown release order {order!r}; expected one of {RELEASE_ORDERS}")
        with self._cond:
            held, self._held, self._holding = self._held, [], False
            if duplicate:
                held = [each for d in held for each in (d, _Delivery(d.due, 0, d.event_id, d.event_type, d.payload, d.target))]
            if order == "reverse":
                held.reverse()
            elif order == "shuffle":
                random.Random(seed).shuffle(held)
            now = time.monotonic()
            for delivery in held:
                delivery.due = now
                delivery.seq = next(self._seq)
                heapq.heappush(self._queue, delivery)
            self._cond.notify_all()
            log.info("sandbox webhooks: released %d held deliveries (%s%s)", len(held), order, ", duplicated" if duplicate else "")
            return len(held)

    def enqueue(self, event: dict[str, Any], targets: list[WebhookTarget]) -> None:
        """Queue ``event`` for delivery to each target (the store's event listener)."""
        if not targets:
            return
        payload = json.dumps(event, indent=2)
        now = time.monotonic()
        with self._cond:
            for target in targets:
                delivery = _Delivery(now, next(self._seq), event["id"], event["type"], payload, target)
                if self._holding:
                    self._held.append(delivery)
                else:
                    heapq.heappush(self._queue, delivery)
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued, retrying or being sent; ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and self._in_flight == 0, timeout)

    def wait_for_attempts(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` delivery attempts were made; ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._attempts) >= count, timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, trust_env=False, follow_redirects=False) as client:
            while True:
                with self._cond:
                    while not self._stopping:
                        now = time.monotonic()
                        if self._queue and self._queue[0].due <= now:
                            break
                        wait = self._queue[0].due - now if self._queue else None
                        self._cond.wait(wait)
                    if self._stopping:
                        return
                    delivery = heapq.heappop(self._queue)
                    self._in_flight += 1
                try:
                    attempt = self._send(client, delivery)
                except Exception:  # never let one delivery kill the thread
                    log.exception("sandbox webhooks: delivery of %s crashed", delivery.event_id)
                    attempt = DeliveryAttempt(
                        delivery.event_id, delivery.event_type, delivery.target.endpoint_id,
                        delivery.target.url, delivery.attempt, None, "internal error", time.time(),
                    )
                if attempt.ok and self._on_delivered is not None:
                    try:
                        self._on_delivered(delivery.event_id)
                    except Exception:
                        log.exception("sandbox webhooks: delivered-callback failed")
                with self._cond:
                    self._attempts.append(attempt)
                    self._in_flight -= 1
                    if not attempt.ok and not self._stopping:
                        self._schedule_retry(delivery)
                    self._cond.notify_all()

    def _schedule_retry(self, delivery: _Delivery) -> None:
        index = delivery.attempt - 1
        if index >= len(self._retry_delays):
            log.warning(
                "sandbox webhooks: giving up on %s to %s after %d attempt(s)",
                delivery.event_id, delivery.target.url, delivery.attempt,
            )
            return
        delivery.attempt += 1
        delivery.due = time.monotonic() + self._retry_delays[index]
        delivery.seq = next(self._seq)
        heapq.heappush(self._queue, delivery)

    def _send(self, client: httpx.Client, delivery: _Delivery) -> DeliveryAttempt:
        target = delivery.target
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign_payload(delivery.payload, target.secret),
        }
        status: int | None = None
        error: str | None = None
        try:
            response = client.post(target.url, content=delivery.payload.encode("utf-8"), headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        log.info(
            "sandbox webhook %s %s -> %s attempt %d: %s",
            delivery.event_type, delivery.event_id, target.url, delivery.attempt,
            status if status is not None else error,
        )
        return DeliveryAttempt(
            delivery.event_id, delivery.event_type, target.endpoint_id, target.url,
            delivery.attempt, status, error, time.time(),
        )
