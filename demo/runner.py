"""``lysmore demo``: N nodes, the load generator, optional chaos, and the dashboard or a progress line."""

from __future__ import annotations

import getpass
import logging
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from engine import Engine, JobState, logging_to, redact_url

from .chaos import Miscreant, configured_limit, reset_queues
from .load import LoadGenerator, LoadMix
from .monitor import ErrorMonitor, Tally, demo_reporter
from .workers import QUEUES, crontab, set_speed

log = logging.getLogger("lysmore.demo")

DEFAULT_PREFIX = "demo"
RATE_PER_NODE = 2.2  # jobs per second per node at speed 1: about what the seed's queues can run
STATES = tuple(state.value for state in JobState)  # in the order the engine declares them
SHORT = {"available": "avail", "scheduled": "sched", "held": "held", "executing": "exec",
         "retryable": "retry", "completed": "done", "discarded": "disc", "cancelled": "canc"}


@dataclass
class DemoOptions:
    """Everything ``lysmore demo`` takes; the defaults are the seed's public demo."""

    database_url: str | None = None  # None: LYSMORE_DATABASE_URL, else the embedded server
    prefix: str = DEFAULT_PREFIX
    nodes: int = 2
    speed: float = 1.0
    rate: float | None = None  # jobs per second on average; None: RATE_PER_NODE * nodes * speed
    chaos: bool = False
    headless: bool = False
    duration: float | None = None  # seconds; None: until Ctrl-C (headless) or quit (dashboard)
    every: float = 5.0  # seconds between progress lines
    grace: float = 5.0  # seconds running jobs get to finish on stop
    seed: int | None = None
    max_backlog: int = 1000  # per queue: no more inserts while this many wait
    refresh: float = 1.0  # dashboard refresh, as the seed's resolve_refresh
    mouse: bool = True
    low_bandwidth: bool = False
    log_file: str | None = None  # interactive mode: where logs go while the dashboard owns the screen
    # where notifications are POSTed as JSON besides the log (discards, stale acks, lost nodes)
    notify_url: str | None = field(default_factory=lambda: os.environ.get("LYSMORE_DEMO_NOTIFY_URL") or None)

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.nodes > 20:
            raise ValueError(f"--nodes must be from 1 to 20, got {self.nodes}")
        if not 0 < self.speed <= 100_000:
            raise ValueError(f"--speed must be above 0 (at most 100000), got {self.speed}")
        if self.rate is not None and self.rate < 0:
            raise ValueError(f"--rate must be at least 0 jobs per second, got {self.rate}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"--duration must be positive seconds, got {self.duration}")
        if self.every <= 0:
            raise ValueError(f"--every must be positive seconds, got {self.every}")
        if self.grace < 0:
            raise ValueError(f"--grace must be at least 0 seconds, got {self.grace}")

    @property
    def jobs_per_second(self) -> float:
        return self.rate if self.rate is not None else RATE_PER_NODE * self.nodes * self.speed


class DemoResolver:
    """The seed's resolver: everybody is a guest who may do everything, refreshing every second."""

    def resolve_user(self) -> str:
        """A guest of the public demo."""
        return "guest"

    def resolve_access(self, user: str) -> str:
        """All actions: pausing, scaling, cancelling, retrying, deleting."""
        return "all"

    def resolve_refresh(self, user: str) -> float | None:
        """One second."""
        return 1.0


@dataclass
class Progress:
    """One look at the demo, for the progress line and the summary."""

    elapsed: float
    states: dict[str, int]
    queues: dict[str, dict[str, int]]
    finished: int
    rate: float  # attempts finished per second since the previous look
    limits: list[str]
    errors: str
    load: dict[str, Any] = field(default_factory=dict)


class Demo:
    """The running demo: nodes (one Engine each, one process), load generator and miscreant."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.prefix = options.prefix
        self.client = Engine(options.database_url, prefix=options.prefix, pool_size=4)
        self.nodes: list[Engine] = []
        self.monitor = ErrorMonitor()
        self.tally = Tally()
        self.rng = random.Random(options.seed)
        self.load: LoadGenerator | None = None
        self.chaos: Miscreant | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._last: tuple[float, int] | None = None
        self._stopped = False

    @property
    def database_url(self) -> str:
        """The URL in use (starting the embedded server when none was given)."""
        return self.client.database_url

    @property
    def node_names(self) -> list[str]:
        return [f"demo-{i + 1}" for i in range(self.options.nodes)]

    def start(self) -> Demo:
        """Migrate, reset the queues to the seed's limits, start the nodes, the load and the chaos."""
        opts = self.options
        set_speed(opts.speed)
        url = self.database_url
        self.client.migrate()
        reset_queues(self.client)
        prune_after = max(60.0, 1800.0 / opts.speed)
        for name in self.node_names:
            node = Engine(url, prefix=self.prefix, node=name, queues=QUEUES, crontab=crontab(),
                          prune_max_age=prune_after, shutdown_grace=opts.grace,
                          reporter=demo_reporter(opts.notify_url, window=max(1.0, 60.0 / opts.speed)))
            node.subscribe(self.monitor, kinds=ErrorMonitor.KINDS)
            node.subscribe(self.tally, kinds=Tally.KINDS)
            self.nodes.append(node)
        self.started_at = time.monotonic()
        try:
            for node in self.nodes:
                node.start()
            mix = LoadMix(random.Random(self.rng.getrandbits(64)))
            self.load = LoadGenerator(self.client, opts.jobs_per_second, rng=random.Random(self.rng.getrandbits(64)),
                                      mix=mix, max_backlog=opts.max_backlog).start()
            if opts.chaos:
                self.chaos = Miscreant(self.client, self.node_names,
                                       rng=random.Random(self.rng.getrandbits(64))).start()
        except BaseException:
            self.stop()
            raise
        log.info("demo started: %d nodes, speed %gx, %.1f jobs/s, prefix %s",
                 len(self.nodes), opts.speed, opts.jobs_per_second, self.prefix)
        return self

    def __enter__(self) -> Demo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.close()

    def stop(self) -> None:
        """Stop the load, heal the chaos, then stop every node in parallel, each with the grace."""
        if self._stopped:
            return
        self._stopped = True
        if self.load is not None:
            self.load.stop()
        if self.chaos is not None:
            self.chaos.stop()
        threads = [threading.Thread(target=self._stop_node, args=(node,), name=f"stop-{node.node_name}")
                   for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.stopped_at = time.monotonic()
        log.info("demo stopped")

    def close(self) -> None:
        """Close the client's connections (after the last look at the database)."""
        self.client.stop()

    def _stop_node(self, node: Engine) -> None:
        try:
            node.stop(grace=self.options.grace)
        except Exception as exc:
            log.error("stopping node %s failed: %s", node.node_name, exc)

    # -- looking at it ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.stopped_at or time.monotonic()) - self.started_at

    def progress(self) -> Progress:
        """Counts by state, jobs per second, limits in force and the recent errors, now."""
        status = self.client.status()
        queues = {q["queue"]: q["counts"] for q in status["queues"]}
        states = {s: sum(c.get(s, 0) for c in queues.values()) for s in STATES}
        now, finished = time.monotonic(), self.tally.finished()
        last_t, last_n = self._last or (self.started_at or now, 0)
        rate = (finished - last_n) / (now - last_t) if now > last_t else 0.0
        self._last = (now, finished)
        return Progress(
            elapsed=self.elapsed(), states=states, queues=queues, finished=finished, rate=rate,
            limits=self._limits(status), errors=self.monitor.summary(),
            load=self.load.stats.snapshot() if self.load else {},
        )

    def _limits(self, status: dict[str, Any]) -> list[str]:
        out = []
        counts = {q["queue"]: q["counts"] for q in status["queues"]}
        for name, spec in QUEUES.items():
            if not isinstance(spec, dict):
                continue
            here = counts.get(name, {})
            rate, glimit = spec.get("rate_limit"), spec.get("global_limit")
            if rate:
                out.append(f"{name} {rate['allowed']}/{rate['period']:g}s (waiting {here.get('available', 0):,})")
            if glimit:
                allowed = glimit if isinstance(glimit, int) else glimit["allowed"]
                out.append(f"{name} {here.get('executing', 0)}/{allowed} global")
        for queue in status["queues"]:
            name, nodes = queue["queue"], queue["nodes"]
            if name not in QUEUES or not nodes:
                continue
            paused = sum(1 for n in nodes if n["paused"])
            if paused:
                out.append(f"{name} paused {paused}/{len(nodes)}")
            low = sorted({n["limit"] for n in nodes if n["limit"] != configured_limit(name)})
            if low:
                out.append(f"{name} limit {','.join(map(str, low))}")
        return out


def node() -> Engine:
    """One more demo node, for ``lysmore worker --app demo.runner:node`` (speed: LYSMORE_DEMO_SPEED)."""
    return Engine(prefix=os.environ.get("LYSMORE_PREFIX") or DEFAULT_PREFIX, queues=QUEUES, crontab=crontab())


# -- output (the only printing in the package) ------------------------------------------------------
def progress_line(p: Progress) -> str:
    """``[  10s] avail 1,234 sched 98 ... | 231.5 jobs/s | mailers 20/30s ... | errors ...``."""
    states = " ".join(f"{SHORT[s]} {p.states.get(s, 0):,}" for s in STATES)
    return f"[{p.elapsed:5.0f}s] {states} | {p.rate:,.1f} jobs/s | {' · '.join(p.limits)} | {p.errors}"


def summary_lines(demo: Demo, final: Progress) -> list[str]:
    """The final summary: what was inserted, how it ended, limits, errors and chaos."""
    opts = demo.options
    load = final.load
    items = load.get("items", {})
    elapsed = max(demo.elapsed(), 1e-9)
    tally = demo.tally.snapshot()
    lines = [
        f"Lysmore demo ran {elapsed:.1f}s: {len(demo.nodes)} nodes, speed {opts.speed:g}x, prefix {demo.prefix}",
        f"  inserted   {load.get('jobs', 0):,} jobs: {items.get('now', 0):,} now, {items.get('scheduled', 0):,} scheduled, "
        f"{items.get('urgent', 0):,} urgent, {items.get('bulk', 0):,} bulk, {items.get('unique', 0):,} unique "
        f"({load.get('duplicates', 0):,} refused as duplicates), {load.get('workflows', 0):,} workflows",
        f"  attempts   {tally.get('start', 0):,} started, {tally.get('success', 0):,} succeeded, "
        f"{tally.get('failure', 0):,} failed (retrying), {tally.get('discard', 0):,} discarded, "
        f"{tally.get('cancel', 0):,} cancelled, {tally.get('snooze', 0):,} snoozed; "
        f"{final.finished / elapsed:,.1f} jobs/s",
        "  states     " + " · ".join(f"{s} {final.states.get(s, 0):,}" for s in STATES),
        "  limits     mailers: at most 20 started per 30 s across nodes; media: at most 10 running across nodes",
        f"  {demo.monitor.summary(90)}",
    ]
    top = demo.monitor.top_workers()
    if top:
        lines.append("  failing    " + ", ".join(f"{w} {n:,}" for w, n in top))
    if demo.chaos is not None:
        done = len(demo.chaos.done)
        left = demo.chaos.in_force()
        lines.append(f"  chaos      {done} pranks healed" + (f", still in force: {', '.join(left)}" if left else ""))
    return lines


def emit(lines: list[str] | str, out: TextIO) -> None:
    """Print the demo's progress output."""
    for line in [lines] if isinstance(lines, str) else lines:
        print(line, file=out, flush=True)


# -- the two modes ----------------------------------------------------------------------------------
@contextmanager
def _stop_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` instead of killing the process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _finish(demo: Demo, out: TextIO) -> None:
    try:
        final = demo.progress()
        emit(summary_lines(demo, final), out)
    except Exception as exc:
        log.error("could not read the final counts: %s", exc)
    finally:
        demo.close()


def run_headless(options: DemoOptions, out: TextIO | None = None, stop: threading.Event | None = None) -> int:
    """Run without a dashboard: a progress line every ``options.every`` seconds, then a summary."""
    out = out or sys.stdout
    stop = stop or threading.Event()
    demo = Demo(options)
    with _stop_signals(stop):
        try:
            demo.start()
            emit(f"Lysmore demo (headless): {options.nodes} nodes, speed {options.speed:g}x, "
                 f"~{options.jobs_per_second:,.1f} jobs/s, prefix {demo.prefix}, "
                 f"database {redact_url(demo.database_url)}" + (", chaos on" if options.chaos else ""), out)
            assert demo.started_at is not None
            deadline = demo.started_at + options.duration if options.duration else None
            next_line = demo.started_at + options.every
            while True:
                now = time.monotonic()
                wake = min(next_line, deadline) if deadline is not None else next_line
                if stop.wait(max(0.0, wake - now)):
                    break
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if now >= next_line:
                    try:
                        emit(progress_line(demo.progress()), out)
                    except Exception as exc:  # the database may be back at the next line
                        log.warning("could not read progress: %s", exc)
                    next_line += options.every
        finally:
            demo.stop()
    _finish(demo, out)
    return 0


def default_log_file(prefix: str) -> Path:
    """Where the interactive demo logs while the dashboard owns the terminal."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "user"
    return Path(tempfile.gettempdir()) / f"lysmore-demo-{user}-{prefix}.log"


def run_interactive(options: DemoOptions, out: TextIO | None = None,
                    app_factory: Callable[..., Any] | None = None) -> int:
    """Nodes and load in background threads, the dashboard in the foreground; quitting stops all."""
    out = out or sys.stdout
    factory = app_factory
    if factory is None:
        emit("lysmore demo: the dashboard (package 'tui') cannot be imported here; running headless "
             "instead (Ctrl-C stops it)", out)
        return run_headless(options, out)
    path = Path(options.log_file) if options.log_file else default_log_file(options.prefix)
    emit(f"Starting the Lysmore demo ({options.nodes} nodes, speed {options.speed:g}x"
         + (", chaos" if options.chaos else "") + f"); logs go to {path}", out)
    stop = threading.Event()
    code = 0
    with logging_to(path, urls=(options.database_url, _env_url())):
        demo = Demo(options)
        with _stop_signals(stop):
            try:
                demo.start()
                badges = ("DEMO",) + ((f"{options.speed:g}x",) if options.speed != 1 else ()) + (
                    ("CHAOS",) if options.chaos else ())
                app = factory(
                    database_url=demo.database_url, prefix=demo.prefix, refresh=options.refresh,
                    resolver=DemoResolver(), low_bandwidth=options.low_bandwidth, mouse=options.mouse,
                    handle_hangup=True, badges=badges,
                    database_name=None if options.database_url or _env_url() else "embedded",
                )
                watcher = threading.Thread(target=_quit_when, args=(app, stop, options.duration),
                                           name="lysmore-demo-watch", daemon=True)
                watcher.start()
                app.run(mouse=options.mouse)
                code = int(getattr(app, "return_code", 0) or 0)
                stop.set()
            finally:
                stop.set()
                demo.stop()
        _finish(demo, out)
    emit(f"logs: {path}", out)
    return code


def _env_url() -> str | None:
    return os.environ.get("LYSMORE_DATABASE_URL") or None


def _quit_when(app: Any, stop: threading.Event, duration: float | None) -> None:
    """Close the dashboard on SIGINT/SIGTERM or when ``duration`` is over."""
    stop.wait(duration)
    if getattr(app, "is_running", False):
        try:
            app.call_from_thread(app.exit)
        except Exception as exc:  # the app finished meanwhile
            log.debug("closing the dashboard: %s", exc)


def run(options: DemoOptions, out: TextIO | None = None, app_factory: Callable[..., Any] | None = None) -> int:
    """``lysmore demo``: headless when asked (or with no dashboard given), else with the dashboard.

    The demo imports only the engine; the command line hands it the dashboard (``app_factory``,
    e.g. ``tui.DashboardApp``), keeping the arrows one way.
    """
    if options.headless:
        return run_headless(options, out)
    return run_interactive(options, out, app_factory)
