"""Faults scheduled on demand for the next matching requests: 429, 500, slow answers, dropped answers."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The kinds of fault the sandbox can inject.
FAULT_KINDS = ("429", "500", "slow", "drop")

_ids = itertools.count(1)


@dataclass
class Fault:
    """One scheduled fault: which requests it hits, what it does, and how many times."""

    kind: str
    path_prefix: str = "/v1"
    method: str | None = None
    times: int | None = 1
    delay: float = 1.0
    should_retry: bool | None = None
    id: int = field(default_factory=lambda: next(_ids))
    fired: int = 0

    def __post_init__(self) -> None:
        self.kind = str(self.kind).lower()
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.method is not None:
            self.method = self.method.upper()
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with this method and path is one this fault hits."""
        return (self.method is None or self.method == method.upper()) and path.startswith(self.path_prefix)

    @property
    def remaining(self) -> int | None:
        """How many more requests this fault will hit (``None``: all of them)."""
        return None if self.times is None else self.times - self.fired

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view of the fault."""
        return {
            "id": self.id,
            "kind": self.kind,
            "path_prefix": self.path_prefix,
            "method": self.method,
            "times": self.times,
            "delay": self.delay,
            "should_retry": self.should_retry,
            "fired": self.fired,
        }


class FaultPlan:
    """Thread-safe FIFO list of scheduled faults; each request consumes at most one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        kind: str | int,
        *,
        path_prefix: str = "/v1",
        method: str | None = None,
        times: int | None = 1,
        delay: float = 1.0,
        should_retry: bool | None = None,
    ) -> Fault:
        """Schedule a fault for the next ``times`` requests under ``path_prefix`` (``method``: any if ``None``)."""
        # 429/500 answer a Stripe-shaped error without doing the work (``should_retry`` sets the
        # Stripe-Should-Retry header); slow waits ``delay`` seconds, holding the idempotency key,
        # then does the work; drop does the work, saves the idempotent result, then closes the
        # connection without answering.
        fault = Fault(
            kind=str(kind),
            path_prefix=path_prefix,
            method=method,
            times=times,
            delay=delay,
            should_retry=should_retry,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_from_mapping(self, spec: Mapping[str, Any]) -> Fault:
        """Schedule a fault described by a JSON object (as sent to ``POST /_sandbox/faults``)."""
        allowed = {"kind", "path_prefix", "method", "times", "delay", "should_retry"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if "kind" not in spec:
            raise ValueError("a fault needs a kind")
        times = spec.get("times", 1)
        return self.add(
            spec["kind"],
            path_prefix=str(spec.get("path_prefix", "/v1")),
            method=spec.get("method"),
            times=None if times is None else int(times),
            delay=float(spec.get("delay", 1.0)),
            should_retry=spec.get("should_retry"),
        )

    def take(self, method: str, path: str) -> Fault | None:
        """Consume and return the first pending fault matching this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.fired += 1
                    if fault.times is not None and fault.fired >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        """The faults that have not been used up."""
        with self._lock:
            return list(self._faults)

    def remove(self, fault_id: int) -> bool:
        """Cancel one scheduled fault; ``False`` if it was not pending."""
        with self._lock:
            for fault in self._faults:
                if fault.id == fault_id:
                    self._faults.remove(fault)
                    return True
        return False

    def clear(self) -> None:
        """Cancel every scheduled fault."""
        with self._lock:
            self._faults.clear()
