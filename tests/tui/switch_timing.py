"""Measure how long a screen switch (keys 1-5) takes to show that screen's fresh rows while the demo runs.

    .venv/bin/python -m tests.tui.switch_timing --database-url URL [--rounds 20]

Starts ``demo.runner.Demo`` (2 nodes and the load, in this process) on a throwaway schema, runs
the dashboard under Textual's pilot at 80x24, sends the keys 1..5 in turn the way a terminal does
(without waiting for the app to be idle) and times, for every key, the moment the new screen is on
top (its first frame: the skeleton, or its rows from the last visit) and the first frame that shows
rows from a read that started after the key. Prints
the median and worst of both, and the reads' own times, then drops the schema. Not a test: the
figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from textual import events

from demo.runner import Demo, DemoOptions
from tui.app import DashboardApp
from tui.keymap import Keymap
from tui.screens.base import DataScreen

KEYS = ("1", "2", "3", "4", "5")
VIEWS = {"1": "Queues", "2": "Jobs", "3": "Nodes", "4": "Workflows", "5": "Audit"}


@dataclass
class Timings:
    """Milliseconds from each key to the new screen on top, and to its fresh rows, by view."""

    skeleton: dict[str, list[float]] = field(default_factory=dict)
    fresh: dict[str, list[float]] = field(default_factory=dict)
    reads: dict[str, list[float]] = field(default_factory=dict)
    applies: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _TimedStore:
    """Wraps the app's store: remembers when the read behind every snapshot started, and its time."""

    def __init__(self, store: Any, timings: Timings) -> None:
        self._store = store
        self._timings = timings
        self.started: dict[int, float] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            begun = time.monotonic()
            result = attr(*args, **kwargs)
            self.started[id(result)] = begun
            self._timings.reads.setdefault(name, []).append((time.monotonic() - begun) * 1000)
            return result

        return timed


def press(app: DashboardApp, key: str) -> None:
    """Send one key event to the app without waiting for it to be handled."""
    event = events.Key(key, key)
    event.set_sender(app)
    assert app._driver is not None
    app._driver.send_message(event)


async def measure(app: DashboardApp, rounds: int, warmup: int) -> Timings:
    """Send 1..5 ``warmup + rounds`` times; time the last ``rounds``."""
    timings = Timings()
    store = _TimedStore(app.store, timings)
    app.store = store  # type: ignore[assignment]
    applied: list[tuple[DataScreen, float, float]] = []  # (screen, applied at, its read began at)
    original_apply = DataScreen.apply

    def apply(screen: DataScreen, snapshot: Any) -> None:
        begun = time.monotonic()
        original_apply(screen, snapshot)
        timings.applies.setdefault(screen.view_title, []).append((time.monotonic() - begun) * 1000)
        applied.append((screen, time.monotonic(), store.started.get(id(snapshot), 0.0)))

    painted: list[tuple[Any, float]] = []  # (screen, when a frame of it went to the terminal)
    display = app._display

    def record_frame(screen: Any, update: Any) -> None:
        if update is not None:
            painted.append((screen, time.monotonic()))
        display(screen, update)

    app._display = record_frame  # type: ignore[method-assign]
    DataScreen.apply = apply  # type: ignore[method-assign]
    try:
        async with app.run_test(size=(80, 24)):
            await asyncio.sleep(1.0)
            for n in range(warmup + rounds):
                if n == warmup:
                    timings.reads.clear()
                    timings.applies.clear()
                for key in KEYS:
                    applied.clear()
                    painted.clear()
                    pressed = time.monotonic()
                    press(app, key)
                    shown = fresh = None
                    while fresh is None and time.monotonic() - pressed < 5.0:
                        await asyncio.sleep(0.002)
                        screen = app.screen
                        if isinstance(screen, DataScreen) and screen.view_title == VIEWS[key]:
                            shown = next((at for s, at in painted if s is screen), None)
                            done = next((at for s, at, began in applied if s is screen and began >= pressed), None)
                            if done is not None:
                                fresh = next((at for s, at in painted if s is screen and at >= done), None)
                    if n >= warmup:
                        view = VIEWS[key]
                        if shown is None or fresh is None:
                            why = f" (last refresh failed: {app.last_error})" if app.last_error else ""
                            timings.problems.append(f"round {n} {view}: no fresh rows within 5 s{why}")
                        else:
                            timings.skeleton.setdefault(view, []).append((shown - pressed) * 1000)
                            timings.fresh.setdefault(view, []).append((fresh - pressed) * 1000)
                    await asyncio.sleep(0.3)  # a user looks at the screen for a moment
    finally:
        DataScreen.apply = original_apply  # type: ignore[method-assign]
    return timings


def _line(label: str, values: list[float]) -> str:
    p95 = statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]
    over = sum(v > 300 for v in values)
    return (f"{label:<22} median {statistics.median(values):4.0f} ms  p95 {p95:4.0f} ms  worst {max(values):4.0f} ms"
            f"  over 300 ms {over}/{len(values)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tests.tui.switch_timing", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rounds", type=int, default=20, help="times to send 1..5 (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="rounds not counted (default 2)")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds the demo runs first (default 20)")
    args = parser.parse_args(argv)
    prefix = f"switch_{uuid.uuid4().hex[:8]}"
    demo = Demo(DemoOptions(database_url=args.database_url, prefix=prefix, headless=True, seed=1))
    try:
        demo.start()
        sys.stderr.write(f"demo running on {prefix}; letting it settle {args.settle:g}s\n")
        time.sleep(args.settle)
        app = DashboardApp(database_url=args.database_url, prefix=prefix, refresh=1.0, badges=("DEMO",),
                           cursor_blink=False, keymap=Keymap())
        timings = asyncio.run(measure(app, args.rounds, args.warmup))
    finally:
        demo.stop()
        demo.close()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(prefix)))
    for problem in timings.problems:
        sys.stderr.write(problem + "\n")
    every = [v for vs in timings.fresh.values() for v in vs]
    if not every:
        return 1
    print(f"{len(every)} switches (keys 1-5 at 80x24; the demo's 2 nodes and load in this process)")
    print(_line("first frame", [v for vs in timings.skeleton.values() for v in vs]))
    print(_line("fresh rows painted", every))
    for view, values in timings.fresh.items():
        print(_line(f"  {view}", values))
    for name, values in timings.reads.items():
        print(_line(f"  read store.{name}", values))
    for name, values in timings.applies.items():
        print(_line(f"  show {name}", values))
    return 1 if timings.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
