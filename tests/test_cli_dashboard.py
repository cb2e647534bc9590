"""``lysmore dashboard`` as a user runs it: the installed script in a real 80x24 terminal (a pty),
its screen read through a terminal emulator. Live by default: numbers move with no key pressed."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest

from engine import Worker

QUEUE = "live_refresh_queue"


class Noop(Worker, queue=QUEUE):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


class Terminal:
    """A process on a pty of ``cols`` x ``rows``, its output kept as the screen a user would see."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 24) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.fd = master
        self.raw = bytearray()  # every byte the process wrote

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, seen: Callable[[str], bool], timeout: float, what: str) -> str:
        """Read output as it arrives until the screen satisfies ``seen``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not seen(self.text()):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"{what}: not seen (exit {self.proc.poll()}); screen:\n{self.text()}")
            if select.select([self.fd], [], [], left)[0]:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # the process closed the terminal
                    continue
                self.raw += data
                self.stream.feed(data)
        return self.text()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.close(self.fd)


@pytest.fixture
def dashboard(database_url: str, prefix: str, tmp_path: Path) -> Iterator[Terminal]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_")}
    env.update(TERM="xterm-256color", HOME=str(tmp_path), LYSMORE_DATA_DIR=str(tmp_path / "pg"))
    term = Terminal([str(Path(sys.executable).with_name("lysmore")), "dashboard", "--database-url", database_url,
                     "--prefix", prefix, "--no-mouse"], env)
    try:
        yield term
    finally:
        term.close()


def _available(screen: str) -> str | None:
    """The number after ``available`` in the header's state counts."""
    for line in screen.splitlines():
        words = line.split()
        if "available" in words and words.index("available") + 1 < len(words):
            return words[words.index("available") + 1]
    return None


def test_dashboard_refreshes_on_its_own(make_engine, dashboard: Terminal) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    eng.insert_all([Noop.new({"n": n}) for n in range(3)])
    screen = dashboard.wait_for(lambda s: QUEUE in s and _available(s) == "3", 30, "the first read")
    assert "off" not in screen.splitlines()[0]  # the header's refresh state: live, not off
    eng.insert_all([Noop.new({"n": n}) for n in range(4)])
    dashboard.wait_for(lambda s: _available(s) == "7", 15, "a refresh with no key pressed")


@pytest.mark.parametrize("term", ["vt100", "linux"])
def test_a_plain_terminal_gets_ascii_and_no_mouse(make_engine, database_url: str, prefix: str, term: str,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    make_engine().insert_all([Noop.new({"n": n}) for n in range(2)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_")}
    env.update(TERM=term, HOME=str(tmp_path), LYSMORE_DATA_DIR=str(tmp_path / "pg"))
    shell = Terminal([str(Path(sys.executable).with_name("lysmore")), "dashboard", "--database-url", database_url,
                      "--prefix", prefix], env)
    try:
        shell.wait_for(lambda s: QUEUE in s and _available(s) == "2", 30, "the first read")
        os.write(shell.fd, b"2")  # the jobs screen too: its table, scrollbar and state tabs
        shell.wait_for(lambda s: "Jobs" in s.splitlines()[0], 15, "the jobs screen")
    finally:
        shell.close()
    written = bytes(shell.raw).decode(errors="replace")
    assert written.isascii(), f"non-ASCII written: {sorted({c for c in written if not c.isascii()})}"
    for mode in (b"\x1b[?1000h", b"\x1b[?1003h", b"\x1b[?1006h"):  # mouse reporting, never asked for
        assert mode not in shell.raw


@pytest.mark.parametrize("form", ["url", "query", "keywords"])
def test_the_screen_never_shows_the_password(password_server: int, form: str, tmp_path: Path) -> None:
    from engine import Engine
    from tests.conftest import SERVER_PASSWORD

    url = {
        "url": f"postgresql://root:{SERVER_PASSWORD}@127.0.0.1:{password_server}/postgres",
        "query": f"postgresql://root@127.0.0.1:{password_server}/postgres?password={SERVER_PASSWORD}",
        "keywords": f"host=127.0.0.1 port={password_server} dbname=postgres user=root password={SERVER_PASSWORD}",
    }[form]
    Engine(url, prefix="secrets").migrate()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_")}
    env.update(TERM="xterm-256color", HOME=str(tmp_path), LYSMORE_DATABASE_URL=url)
    term = Terminal([str(Path(sys.executable).with_name("lysmore")), "dashboard", "--prefix", "secrets"], env)
    try:
        for key in ("1", "3", "5"):  # queues, nodes, audit: every screen's header names the database
            os.write(term.fd, key.encode())
            screen = term.wait_for(lambda s: f"127.0.0.1:{password_server}/postgres" in s, 30, "the header")
            assert SERVER_PASSWORD not in screen
    finally:
        term.close()


def test_status_and_dashboard_through_pgbouncer(make_engine, database_url: str, prefix: str, pgbouncer,  # type: ignore[no-untyped-def]
                                                tmp_path: Path) -> None:
    eng = make_engine()
    eng.insert_all([Noop.new({"n": n}) for n in range(5)])
    url = pgbouncer(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_")}
    env.update(TERM="xterm-256color", HOME=str(tmp_path), LYSMORE_DATABASE_URL=url)
    lysmore = str(Path(sys.executable).with_name("lysmore"))
    status = subprocess.run([lysmore, "status", "--prefix", prefix], env=env, capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 0 and "available=5" in status.stdout, status.stderr
    term = Terminal([lysmore, "dashboard", "--prefix", prefix], env)
    try:
        term.wait_for(lambda s: _available(s) == "5", 30, "the dashboard's first read through PgBouncer")
        for key in "2345":
            os.write(term.fd, key.encode())
        eng.insert_all([Noop.new({"n": n}) for n in range(2)])
        os.write(term.fd, b"1")
        term.wait_for(lambda s: _available(s) == "7", 30, "a later read through PgBouncer")
    finally:
        term.close()
