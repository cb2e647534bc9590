"""``lysmore demo`` with the dashboard: a real process in a pseudo-terminal, quit with ``q``.

Also the fallback: without an importable dashboard the demo runs headless and says so.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql

from demo.runner import DemoOptions, run
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
QUEUE_NAMES = (b"analysis", b"default", b"events", b"exports", b"mailers", b"media")


class Terminal:
    """A pseudo-terminal of a given size whose output is collected by a thread."""

    def __init__(self, rows: int = 24, cols: int = 80) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.output = bytearray()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        os.close(self.slave)  # the child holds it now; EOF comes when the child is gone
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._cond.notify_all()
                    return
                self.output.extend(data)
                self._cond.notify_all()

    def wait_for(self, check: Callable[[bytes], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: check(bytes(self.output)), timeout)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        self._thread.join(5)
        os.close(self.master)

    def text(self) -> str:
        return bytes(self.output).decode(errors="replace")


def count(conn: psycopg.Connection, prefix: str, query: str) -> int:
    row = conn.execute(sql.SQL(query).format(p=sql.Identifier(prefix))).fetchone()
    return int(row[0]) if row else 0


def test_the_dashboard_runs_over_live_nodes_and_quitting_stops_everything(
    database_url: str, prefix: str, conn: psycopg.Connection, tmp_path: Path,
) -> None:
    log_file = tmp_path / "demo.log"
    env = {**os.environ, "LYSMORE_DATABASE_URL": database_url, "TERM": "xterm-256color"}
    env.pop("LYSMORE_PREFIX", None)
    term = Terminal()
    cmd = [sys.executable, "-m", "lysmore", "-v", "demo", "--speed", "50", "--prefix", prefix, "--chaos",
           "--duration", "60", "--log-file", str(log_file)]  # --duration: a safety net, q ends it
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=term.slave, stdout=term.slave, stderr=term.slave,
                            start_new_session=True)
    term.start()
    try:
        # the dashboard draws the seed's six queues while two nodes run jobs behind it
        assert term.wait_for(lambda out: all(q in out for q in QUEUE_NAMES), timeout=30), term.text()[-2000:]
        wait_for(lambda: count(conn, prefix, "SELECT count(*) FROM {p}.lysmore_nodes") == 2, timeout=15,
                 what="two demo nodes")
        wait_for(lambda: count(conn, prefix, "SELECT count(*) FROM {p}.lysmore_jobs WHERE state = 'completed'") > 50,
                 timeout=30, what="jobs completing behind the dashboard")
        children = psutil.Process(proc.pid).children(recursive=True)
        term.type(b"q")
        assert proc.wait(timeout=30) == 0, term.text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        term.close()
    text = term.text()
    assert "Lysmore demo ran" in text and "pranks healed" in text and f"logs: {log_file}" in text
    logged = log_file.read_text()  # logs went to the file, none onto the dashboard's screen
    assert "demo started" in logged and "job failed" in logged and "job failed" not in text
    # nothing left behind: no process, no node, nothing executing, no prank in force
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert count(conn, prefix, "SELECT count(*) FROM {p}.lysmore_nodes") == 0
    assert count(conn, prefix, "SELECT count(*) FROM {p}.lysmore_jobs WHERE state = 'executing'") == 0
    assert count(conn, prefix, "SELECT count(*) FROM {p}.lysmore_queue_settings "
                               "WHERE paused OR local_limit = 1") == 0
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(prefix)))


def test_without_the_dashboard_the_demo_runs_headless_and_says_so(
    database_url: str, prefix: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tui", None)  # import tui now raises ImportError
    out = io.StringIO()
    code = run(DemoOptions(database_url=database_url, prefix=prefix, speed=50, duration=2, every=1), out)
    text = out.getvalue()
    assert code == 0
    assert "cannot be imported" in text and "running headless" in text
    assert "Lysmore demo ran" in text and text.count("\n[") >= 1
    assert count(conn, prefix, "SELECT count(*) FROM {p}.lysmore_nodes") == 0
    assert count(conn, prefix, "SELECT count(*) FROM {p}.lysmore_jobs") > 0
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(prefix)))
