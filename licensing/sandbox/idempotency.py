"""Stripe-style idempotency: saved responses per (API key, Idempotency-Key), with conflict checks."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from .errors import StripeApiError

#: How long Stripe keeps an idempotency key.
DEFAULT_TTL = 24 * 3600.0
#: Longest key Stripe accepts.
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class SavedResponse:
    """The status, body and request id of the first request made with a key."""

    status: int
    body: bytes
    request_id: str


@dataclass
class _Entry:
    endpoint: str
    fingerprint: str
    started: float
    response: SavedResponse | None = None
    in_flight: bool = True


def _scope(api_key: str) -> str:
    """A digest standing for the API key, so keys are scoped without keeping the secret."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]


def fingerprint(params: Any) -> str:
    """A canonical form of the decoded parameters, to compare a retry with the first request."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


class IdempotencyStore:
    """Thread-safe table of idempotency keys and the responses saved under them."""

    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

    def begin(self, api_key: str, key: str, endpoint: str, params: Any) -> SavedResponse | None:
        """Claim ``key`` for a new request (``None``) or return the response saved under it."""
        if len(key) > MAX_KEY_LENGTH:
            raise StripeApiError(
                400,
                "invalid_request_error",
                f"Idempotency keys can be at most {MAX_KEY_LENGTH} characters long.",
            )
        digest = fingerprint(params)
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            slot = (_scope(api_key), key)
            entry = self._entries.get(slot)
            if entry is None:
                self._entries[slot] = _Entry(endpoint=endpoint, fingerprint=digest, started=now)
                return None
            if entry.endpoint != endpoint:
                raise StripeApiError(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used for the same endpoint they were "
                    f"first used for ('{entry.endpoint}' vs '{endpoint}'). Try using a key other than "
                    f"'{key}' if you meant to execute a different request.",
                )
            if entry.fingerprint != digest:
                raise StripeApiError(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were "
                    f"first used with. Try using a key other than '{key}' if you meant to execute a "
                    "different request.",
                )
            if entry.in_flight:
                raise StripeApiError(
                    409,
                    "idempotency_error",
                    "There is currently another in-progress request using this Idempotent Key (that "
                    "probably means you submitted twice, and the other request is still going "
                    f"through): {key}. Please try again later.",
                    code="idempotency_key_in_use",
                )
            return entry.response

    def finish(self, api_key: str, key: str, response: SavedResponse | None) -> None:
        """Save ``response`` under the claimed key, or release the key when ``None`` (not saved)."""
        with self._lock:
            slot = (_scope(api_key), key)
            entry = self._entries.get(slot)
            if entry is None:
                return
            if response is None:
                del self._entries[slot]
                return
            entry.response = response
            entry.in_flight = False

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if not e.in_flight)

    def _prune(self, now: float) -> None:
        expired = [k for k, e in self._entries.items() if not e.in_flight and now - e.started > self._ttl]
        for k in expired:
            del self._entries[k]
