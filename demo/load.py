"""The load generator: a bursty mix of jobs, so every state and view of the dashboard has content."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

from engine import Engine, JobSpec, Workflow

from .workers import (
    UNIQUE_WORKERS,
    WORKERS,
    DataAnalysis,
    DemoWorker,
    EventIngester,
    ImageResizer,
    InvoiceGenerator,
    ReceiptMailer,
    ReportExporter,
    VideoTranscoder,
    WelcomeMailer,
    faker,
    scaled,
)

log = logging.getLogger("lysmore.demo.load")

# What one item of the load is, and how often (items, not jobs: a workflow is one item, several jobs).
MIX: dict[str, float] = {
    "now": 0.62,  # available at once, at the worker's priority
    "scheduled": 0.12,  # due in 5 s to 10 min of demo time
    "unique": 0.08,  # unique per account/dataset/region for a minute: many are duplicates
    "urgent": 0.08,  # priority 0, jumps the queue
    "bulk": 0.06,  # priority 9, runs last
    "workflow": 0.04,  # a few steps with dependencies, held until their upstream completes
}
URGENT, BULK = 0, 9
UNIQUE_PERIOD = 60.0  # seconds (database clock), not scaled: a duplicate within a minute is refused
SCHEDULE_RANGE = (5.0, 600.0)  # demo seconds
MIN_SCHEDULE = 1.0  # real seconds: a scheduled job is visibly scheduled even at high speed


@dataclass
class Item:
    """One unit of load: plain jobs or a workflow, and which mix kind made it."""

    kind: str
    spec: JobSpec | None = None
    workflow: Workflow | None = None

    def jobs(self) -> int:
        return len(self.workflow.steps) if self.workflow is not None else 1


class LoadMix:
    """Turns random draws into jobs: which worker, which kind (now, scheduled, unique, ...)."""

    def __init__(self, rng: random.Random | None = None, fake: Faker | None = None,
                 mix: dict[str, float] | None = None, workers: dict[type[DemoWorker], float] | None = None,
                 queues: set[str] | None = None) -> None:
        self.rng = rng or random.Random()
        self.fake = fake or faker(self.rng.getrandbits(32))
        self.mix = dict(mix or MIX)
        self.workers = dict(workers or WORKERS)
        self.queues = queues  # when set: only workers of these queues (others are skipped)

    def _pick(self, weights: dict[Any, float]) -> Any:
        keys = list(weights)
        return self.rng.choices(keys, weights=[weights[k] for k in keys])[0]

    def _worker(self, among: tuple[type[DemoWorker], ...] | None = None) -> type[DemoWorker] | None:
        pool = {w: n for w, n in self.workers.items()
                if (among is None or w in among) and (self.queues is None or w.queue in self.queues)}
        return self._pick(pool) if pool else None

    def schedule_in(self) -> float:
        """Seconds from now for a scheduled job: 5 s to 10 min of demo time, at least 1 real second."""
        return max(MIN_SCHEDULE, scaled(self.rng.uniform(*SCHEDULE_RANGE)))

    def item(self, kind: str | None = None) -> Item | None:
        """One item of ``kind`` (drawn from the mix when None); None when its queues are all skipped."""
        kind = kind or self._pick(self.mix)
        if kind == "workflow":
            workflow = self.workflow()
            if self.queues is not None and not {s.queue for s in workflow.specs()} <= self.queues:
                return None
            return Item(kind, workflow=workflow)
        worker = self._worker(UNIQUE_WORKERS if kind == "unique" else None)
        if worker is None:
            return None
        fake = self.fake
        if kind == "scheduled":
            spec = worker.gen(fake, schedule_in=round(self.schedule_in(), 3))
        elif kind == "unique":
            spec = worker.new(worker.unique_args(fake), unique=worker.unique_opts(UNIQUE_PERIOD),
                              meta={"dedupe": list(worker.unique_keys)})
        elif kind == "urgent":
            spec = worker.gen(fake, priority=URGENT, tags=[*worker.tags, "urgent"])
        elif kind == "bulk":
            spec = worker.gen(fake, priority=BULK, tags=[*worker.tags, "bulk"])
        else:
            spec = worker.gen(fake)
        return Item(kind, spec=spec)

    def batch(self, n: int) -> list[Item]:
        """``n`` items drawn from the mix (fewer when some kinds' queues are skipped)."""
        return [item for item in (self.item() for _ in range(n)) if item is not None]

    def workflow(self) -> Workflow:
        """One of the demo workflows, with shared fake data flowing through its steps."""
        shape = self.rng.choice(("signup", "monthly-report", "video-publish"))
        fake = self.fake
        if shape == "signup":  # as the seed's subscription webhook: two steps, then two in parallel
            user = {"email": fake.email(), "username": fake.user_name(), "homepage": fake.url()}
            return (
                Workflow(name="signup")
                .add("invoice", InvoiceGenerator.new({**InvoiceGenerator.fake_args(fake), "email": user["email"]}))
                .add("avatar", ImageResizer.gen(fake))
                .add("welcome", WelcomeMailer.new(user), deps=["invoice", "avatar"])
                .add("track", EventIngester.new({**EventIngester.fake_args(fake), "event": "sign_up",
                                                 "user": user["username"]}), deps=["invoice", "avatar"])
            )
        if shape == "monthly-report":
            export = ReportExporter.fake_args(fake)
            return (
                Workflow(name="monthly-report")
                .add("ingest", EventIngester.gen(fake))
                .add("analyse", DataAnalysis.gen(fake), deps=["ingest"])
                .add("export", ReportExporter.new(export), deps=["analyse"])
                .add("receipt", ReceiptMailer.new({**ReceiptMailer.fake_args(fake), "email": export["email"]}),
                     deps=["export"])
            )
        video = VideoTranscoder.fake_args(fake)
        return (
            Workflow(name="video-publish")
            .add("transcode", VideoTranscoder.new(video))
            .add("thumbnail", ImageResizer.gen(fake), deps=["transcode"])
            .add("notify", WelcomeMailer.gen(fake), deps=["transcode", "thumbnail"])
        )


class Burst:
    """The load's pulse: calm spells at a fraction of the rate, then bursts at several times it."""

    def __init__(self, rng: random.Random, calm: tuple[float, float] = (0.4, 0.9),
                 burst: tuple[float, float] = (2.5, 5.0), calm_for: tuple[float, float] = (5.0, 15.0),
                 burst_for: tuple[float, float] = (1.0, 4.0)) -> None:
        self.rng = rng
        self.calm, self.burst, self.calm_for, self.burst_for = calm, burst, calm_for, burst_for
        self.bursting = False
        self.factor = rng.uniform(*calm)
        self.left = rng.uniform(*calm_for)

    def advance(self, dt: float) -> float:
        """Move ``dt`` seconds on; return the rate factor in force now."""
        self.left -= dt
        if self.left <= 0:
            self.bursting = not self.bursting
            span, level = (self.burst_for, self.burst) if self.bursting else (self.calm_for, self.calm)
            self.left = self.rng.uniform(*span)
            self.factor = self.rng.uniform(*level)
        return self.factor


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal for large ones)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class LoadStats:
    """What the generator inserted, by kind; thread-safe counters."""

    items: dict[str, int] = field(default_factory=dict)
    jobs: int = 0
    duplicates: int = 0  # unique jobs refused because an equal one exists
    workflows: int = 0
    errors: int = 0
    skipped: int = 0  # items not made because their queue's backlog was full
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, items: list[Item], duplicates: int) -> None:
        with self._lock:
            for item in items:
                self.items[item.kind] = self.items.get(item.kind, 0) + 1
                self.jobs += item.jobs()
                self.workflows += item.workflow is not None
            self.jobs -= duplicates
            self.duplicates += duplicates

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"items": dict(self.items), "jobs": self.jobs, "duplicates": self.duplicates,
                    "workflows": self.workflows, "errors": self.errors, "skipped": self.skipped}


class LoadGenerator:
    """A thread inserting the mix at ``rate`` jobs per second on average, in bursts."""

    TICK = 0.2  # seconds between inserts
    BACKLOG_EVERY = 2.0  # seconds between looks at the queues' backlogs

    def __init__(self, engine: Engine, rate: float, *, rng: random.Random | None = None,
                 mix: LoadMix | None = None, max_backlog: int = 1000,
                 backlog: Callable[[], dict[str, int]] | None = None) -> None:
        self.engine = engine
        self.rate = float(rate)
        self.rng = rng or random.Random()
        self.mix = mix or LoadMix(random.Random(self.rng.getrandbits(64)))
        self.pulse = Burst(self.rng)
        self.max_backlog = max_backlog
        self._backlog = backlog or self._queue_backlog
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lysmore-demo-load", daemon=True)

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop inserting and wait for the thread to finish its current insert."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _queue_backlog(self) -> dict[str, int]:
        counts = self.engine.queue_counts().by_queue
        return {q: sum(s.get(k, 0) for k in ("available", "scheduled", "retryable")) for q, s in counts.items()}

    def _refresh_backlog(self) -> None:
        try:
            backlog = self._backlog()
        except Exception as exc:
            log.warning("could not read the queues' backlog: %s", exc)
            return
        full = {q for q, n in backlog.items() if n >= self.max_backlog}
        all_queues = {w.queue for w in self.mix.workers}
        self.mix.queues = None if not full else all_queues - full
        if full:
            log.debug("backlog full, pausing inserts for %s", sorted(full))

    def insert(self, items: list[Item]) -> int:
        """Insert ``items`` (plain jobs in one statement, each workflow atomically); returns duplicates."""
        specs = [i.spec for i in items if i.spec is not None]
        duplicates = 0
        if specs:
            duplicates = sum(1 for job in self.engine.insert_all(specs) if job.conflict)
        for item in items:
            if item.workflow is not None:
                self.engine.insert_all(item.workflow)
        return duplicates

    def _run(self) -> None:
        last = time.monotonic()
        next_backlog = 0.0
        while not self._stop.wait(self.TICK):
            now = time.monotonic()
            dt, last = now - last, now
            if now >= next_backlog:
                self._refresh_backlog()
                next_backlog = now + self.BACKLOG_EVERY
            n = poisson(self.rng, self.rate * self.pulse.advance(dt) * dt)
            try:
                self.tick(n)
            except Exception as exc:  # log and go on: the database may be back next tick
                with self.stats._lock:
                    self.stats.errors += 1
                log.warning("inserting %d demo jobs failed: %s", n, exc, exc_info=not _is_database_error(exc))

    def tick(self, n: int) -> None:
        """Make ``n`` items of the mix and insert them."""
        items = self.mix.batch(n)
        if len(items) < n:
            with self.stats._lock:
                self.stats.skipped += n - len(items)
        if items:
            self.stats.add(items, self.insert(items))


def _is_database_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("psycopg")
