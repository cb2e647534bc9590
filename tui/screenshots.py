"""Drive the real dashboard headless with Textual's pilot and save an SVG of every screen.

    python -m tui.screenshots --database-url URL --prefix P --out screenshots/

It only looks (no uppercase key is pressed, nothing is changed or audited) and exits non-zero
when a screen could not be loaded, so it doubles as a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from .app import DashboardApp
from .keymap import Keymap

log = logging.getLogger("lysmore.tui.screenshots")


@dataclass(frozen=True, slots=True)
class Shot:
    """Keys to press (from the previous shot's state), then the file to save."""

    name: str
    keys: tuple[str, ...]
    typed: str = ""
    then: tuple[str, ...] = ()


SHOTS: tuple[Shot, ...] = (
    Shot("queues", ()),
    Shot("queue-detail", ("enter",)),
    Shot("jobs", ("escape", "2")),
    Shot("jobs-filtered", ("slash",), "state:retryable,discarded", ("enter",)),
    Shot("job-detail", ("enter",)),
    Shot("nodes", ("escape", "3")),
    Shot("workflows", ("4",)),
    Shot("audit", ("5",)),
    Shot("crons", ("6",)),
    Shot("charts", ("7",)),
    Shot("help", ("1", "question_mark")),
    Shot("palette", ("escape", "ctrl+p"), "queue"),
)


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until no worker runs (refreshes, counts) and the screen has caught up."""
    app = pilot.app
    for _ in range(50):
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                return
        await app.workers.wait_for_complete()
    await pilot.pause()


async def type_text(pilot: Pilot[Any], text: str) -> None:
    """Type into the focused input at once (pressing key by key is slow and proves nothing more)."""
    focused = pilot.app.focused
    if isinstance(focused, Input):
        focused.insert_text_at_cursor(text)
    else:
        await pilot.press(*text)
    for _ in range(5):
        await pilot.pause()


def without_machine_paths(text: str) -> str:
    """``text`` with the folders of this installation cut from the file names in it (tracebacks in
    a job's errors name files by absolute path): ``engine/_runner.py``, not where it lies here."""
    roots = {str(Path(__file__).resolve().parents[1]), sysconfig.get_paths()["purelib"], sys.prefix}
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root.rstrip("/") + "/", "")
    return text


async def take(
    app: DashboardApp, out: Path, size: tuple[int, int], shots: Sequence[Shot] = SHOTS,
    saved: Callable[[Path], None] | None = None,
    inspect: Callable[[DashboardApp, Shot], None] | None = None,
) -> list[str]:
    """Press through ``shots`` saving ``<name>.svg`` files; returns the problems seen (empty: all fine)."""
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for shot in shots:
            await pilot.press(*shot.keys)
            await settle(pilot)
            if shot.typed:
                await type_text(pilot, shot.typed)
            await pilot.press(*shot.then)
            await settle(pilot)
            if app.last_error is not None:
                problems.append(f"{shot.name}: {app.last_error}")
            path = out / f"{shot.name}.svg"
            svg = app.export_screenshot(title=f"lysmore dashboard — {shot.name}")
            path.write_text(without_machine_paths(svg), encoding="utf-8")
            if saved is not None:
                saved(path)
            if inspect is not None:
                inspect(app, shot)
    return problems


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tui.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: LYSMORE_DATABASE_URL, else embedded)")
    parser.add_argument("--prefix", help="schema of the instance (default: LYSMORE_PREFIX or public)")
    parser.add_argument("--out", default="screenshots", help="folder for the SVG files (default: screenshots)")
    parser.add_argument("--size", default="100x30", type=_size, help="terminal size WIDTHxHEIGHT (default 100x30)")
    parser.add_argument("--now", help="fixed clock for relative times, ISO 8601 with a zone (default: database)")
    args = parser.parse_args(argv)
    clock = None
    if args.now:
        fixed = datetime.fromisoformat(args.now)
        if fixed.tzinfo is None:
            parser.error("--now needs a time zone, e.g. 2030-01-15T12:00:00+00:00")
        clock = lambda: fixed  # noqa: E731
    app = DashboardApp(database_url=args.database_url, prefix=args.prefix, clock=clock, cursor_blink=False,
                       keymap=Keymap())  # the default keys, whatever the user's own keys.toml says
    written: list[Path] = []
    problems = asyncio.run(take(app, Path(args.out), args.size, saved=written.append))
    for path in written:  # after the run: while it runs, Textual owns stdout
        sys.stdout.write(f"{path}\n")
    for problem in problems:
        sys.stderr.write(f"screen failed to load: {problem}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
