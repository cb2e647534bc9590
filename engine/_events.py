"""Monitoring events: subscribers hear when jobs start, succeed, fail, are discarded or cancelled."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._job import Job

log = logging.getLogger("lysmore.events")

EVENT_KINDS = frozenset(
    {"start", "success", "failure", "discard", "cancel", "snooze", "timeout", "stale_ack"}
)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a job on this node."""

    kind: str
    job: Job | None
    duration: float | None = None  # seconds spent in perform, for the end events
    error: BaseException | None = None  # what perform raised, for failure and discard
    result: Any = None
    detail: dict[str, Any] | None = None


Handler = Callable[[Event], None]


class Events:
    """Fan-out to subscribers; a subscriber that raises is logged and never stops a job."""

    def __init__(self) -> None:
        self._subs: list[tuple[Handler, frozenset[str]]] = []
        self._lock = threading.Lock()
        # The kinds someone listens to: the job path makes an Event only for these (two a job
        # otherwise, each a frozen dataclass, for no one when nobody subscribed).
        self.wanted: frozenset[str] = frozenset()

    def subscribe(self, handler: Handler, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``handler(event)`` for events of ``kinds`` (all when None); returns an unsubscribe."""
        wanted = frozenset(kinds) if kinds is not None else EVENT_KINDS
        unknown = wanted - EVENT_KINDS
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)}; known: {sorted(EVENT_KINDS)}")
        entry = (handler, wanted)
        with self._lock:
            self._subs = [*self._subs, entry]
            self.wanted = self.wanted | wanted

        def unsubscribe() -> None:
            with self._lock:
                self._subs = [s for s in self._subs if s is not entry]
                self.wanted = frozenset().union(*(kinds for _, kinds in self._subs))

        return unsubscribe

    def emit(self, event: Event) -> None:
        for handler, kinds in self._subs:
            if event.kind in kinds:
                try:
                    handler(event)
                except BaseException:  # noqa: B036 - not even SystemExit in a subscriber may stop a job's path
                    log.exception("event subscriber failed", extra={"event": event.kind})


class Counters(dict[str, int]):
    """This node's running totals (fetched, acked, stale_acks, released, rescued, pruned), safe
    to add to from any thread; read it as a dict."""

    def __init__(self, *names: str) -> None:
        super().__init__(dict.fromkeys(names, 0))
        self._lock = threading.Lock()

    def add(self, key: str, n: int) -> None:
        if n:
            with self._lock:
                self[key] = self.get(key, 0) + n
