"""Miscreants: a simulated visitor who pauses queues or scales them to one, and the demo healing."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import Engine

from .workers import QUEUES, scaled

log = logging.getLogger("lysmore.demo.chaos")

VISITOR = "miscreant@internet"
HEALER = "demo-healer"
EVERY = (15.0, 60.0)  # demo seconds between pranks
LASTS = (10.0, 45.0)  # demo seconds before the demo heals one
MIN_GAP = 3.0  # real seconds between pranks at least, whatever the speed
MIN_LASTS = 2.0  # real seconds a prank lasts at least, so the dashboard shows it
ACK_WAIT = 1.0  # seconds to wait for the nodes to apply a change


def configured_limit(queue: str, queues: dict[str, Any] | None = None) -> int:
    """The local limit ``queue`` has in the demo's configuration."""
    spec = (queues or QUEUES)[queue]
    if isinstance(spec, int):
        return spec
    local = spec.get("local_limit", spec.get("limit"))
    if local is not None:
        return int(local)
    glimit = spec.get("global_limit")
    allowed = glimit if isinstance(glimit, int) else (glimit or {}).get("allowed", 10)
    return max(int(allowed), 1)


@dataclass
class Prank:
    """One thing the visitor did, and when the demo undoes it."""

    action: str  # pause_queue or scale_queue
    queue: str
    node: str | None  # None: every node
    heal_at: float  # monotonic
    limit: int | None = None
    healed: bool = False
    started: float = field(default_factory=time.monotonic)

    def describe(self) -> str:
        where = f" on {self.node}" if self.node else ""
        return f"{self.queue} paused{where}" if self.action == "pause_queue" else f"{self.queue} scaled to {self.limit}{where}"


class Miscreant:
    """Now and then pauses a queue (everywhere or on one node) or scales it to one; heals later."""

    def __init__(self, engine: Engine, nodes: Sequence[str], *, rng: random.Random | None = None,
                 queues: dict[str, Any] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.nodes = list(nodes)
        self.rng = rng or random.Random()
        self.queues = dict(queues or QUEUES)
        self.clock = clock
        self.active: list[Prank] = []
        self.done: list[Prank] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one prank and its cure ----------------------------------------------------------------
    def act(self) -> Prank | None:
        """Play one prank on a queue nobody is pranking now; None when every queue is taken."""
        with self._lock:
            busy = {p.queue for p in self.active}
        free = [q for q in self.queues if q not in busy]
        if not free:
            return None
        queue = self.rng.choice(free)
        heal_at = self.clock() + max(MIN_LASTS, scaled(self.rng.uniform(*LASTS)))
        roll = self.rng.random()
        if roll < 0.45:
            prank = Prank("pause_queue", queue, None, heal_at)
        elif roll < 0.65 and self.nodes:
            prank = Prank("pause_queue", queue, self.rng.choice(self.nodes), heal_at)
        else:
            prank = Prank("scale_queue", queue, None, heal_at, limit=1)
        if prank.action == "pause_queue":
            self.engine.pause_queue(queue, node=prank.node, wait=ACK_WAIT)
        else:
            self.engine.scale_queue(queue, 1, node=prank.node, wait=ACK_WAIT)
        self._audit(VISITOR, prank.action, prank, {"limit": prank.limit} if prank.limit else {})
        log.info("a visitor %s", prank.describe())
        with self._lock:
            self.active.append(prank)
        return prank

    def heal(self, prank: Prank) -> None:
        """Undo ``prank``: resume the queue or put its configured limit back."""
        if prank.action == "pause_queue":
            self.engine.resume_queue(prank.queue, node=prank.node, wait=ACK_WAIT)
            self._audit(HEALER, "resume_queue", prank, {})
        else:
            limit = configured_limit(prank.queue, self.queues)
            self.engine.scale_queue(prank.queue, limit, node=prank.node, wait=ACK_WAIT)
            self._audit(HEALER, "scale_queue", prank, {"limit": limit})
        prank.healed = True
        with self._lock:
            if prank in self.active:
                self.active.remove(prank)
            self.done.append(prank)
        log.info("the demo healed: %s", prank.describe())

    def heal_due(self) -> int:
        """Heal every prank whose time is up; returns how many."""
        now = self.clock()
        with self._lock:
            due = [p for p in self.active if p.heal_at <= now]
        for prank in due:
            self.heal(prank)
        return len(due)

    def heal_all(self) -> None:
        """Heal every prank still in force (on stop)."""
        with self._lock:
            pending = list(self.active)
        for prank in pending:
            try:
                self.heal(prank)
            except Exception as exc:
                log.error("could not heal %s: %s", prank.describe(), exc)

    def _audit(self, actor: str, action: str, prank: Prank, extra: dict[str, Any]) -> None:
        detail: dict[str, Any] = {"queue": prank.queue, **extra}
        if prank.node:
            detail["node"] = prank.node
        detail["chaos"] = True
        try:
            self.engine.record_audit(actor, action, targets=[prank.queue], outcome="allowed", detail=detail)
        except Exception as exc:
            log.warning("could not audit %s of %s: %s", action, prank.queue, exc)

    # -- the thread ---------------------------------------------------------------------------
    def in_force(self) -> list[str]:
        """What the visitor broke and the demo has not healed yet, for the progress line."""
        with self._lock:
            return [p.describe() for p in self.active]

    def start(self) -> Miscreant:
        self._thread = threading.Thread(target=self._run, name="lysmore-demo-chaos", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop pranking and heal what is still broken."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        self.heal_all()

    def _run(self) -> None:
        next_prank = self.clock() + max(MIN_GAP, scaled(self.rng.uniform(*EVERY)))
        while not self._stop.is_set():
            with self._lock:
                heals = [p.heal_at for p in self.active]
            wake = min([next_prank, *heals])
            if self._stop.wait(max(0.0, wake - self.clock())):
                return
            try:
                self.heal_due()
                if self.clock() >= next_prank:
                    next_prank = self.clock() + max(MIN_GAP, scaled(self.rng.uniform(*EVERY)))
                    self.act()
            except Exception as exc:  # log and continue: the database may be back next round
                log.warning("chaos round failed: %s", exc)


def reset_queues(engine: Engine, queues: dict[str, Any] | None = None) -> None:
    """Start from the configured limits, unpaused, on every node (clears an earlier run's pranks)."""
    for queue in queues or QUEUES:
        engine.resume_queue(queue, wait=0)
        engine.scale_queue(queue, configured_limit(queue, queues), wait=0)
