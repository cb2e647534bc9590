"""``lysmore licensing serve`` with nothing configured: local sandbox and SMTP sink, sign-up to welcome mail."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..helpers import wait_for
from .stack import select

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class Output:
    """Collects a process's output lines and lets a test wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait(self, pattern: str, count: int = 1, timeout: float = 30.0) -> list[re.Match[str]]:
        """Block until ``count`` lines match ``pattern``."""
        rx = re.compile(pattern)

        def found() -> list[re.Match[str]]:
            return [m for m in (rx.search(line) for line in self.lines) if m]

        with self.cond:
            ok = self.cond.wait_for(lambda: len(found()) >= count, timeout)
            assert ok, f"no {pattern!r} in output:\n{''.join(self.lines)}"
            return found()

    def text(self) -> str:
        """Everything read so far."""
        with self.cond:
            return "".join(self.lines)


def test_serve_runs_everything_locally(database_url: str, prefix: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYSMORE_", "STRIPE_"))}
    env.update({
        "LYSMORE_LICENSING_DATABASE_URL": database_url,
        "LYSMORE_LICENSING_PREFIX": prefix,
        "LYSMORE_LICENSING_POLL_INTERVAL": "0.2",
        "LYSMORE_LICENSING_STAGE_INTERVAL": "0.1",
        "LYSMORE_LICENSING_JOB_BACKOFF": "0.1",
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "lysmore", "licensing", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    out = Output(proc)
    try:
        url = out.wait(r"licensing app on (http://127\.0\.0\.1:\d+)")[0].group(1)
        out.wait(r"local Stripe sandbox at http://127\.0\.0\.1:\d+")
        out.wait(r"mail goes to the local sink at 127\.0\.0\.1:\d+")
        assert httpx.get(f"{url}/health").json() == {"ok": True, "instance": prefix}

        got = httpx.post(f"{url}/accounts", json={"email": "fay@example.com", "name": "Fay", "plan": "yearly",
                                                    "payment_method": "pm_card_visa"})
        assert got.status_code == 201, got.text
        bad = httpx.post(f"{url}/accounts", json={"email": "nope", "plan": "yearly"})
        assert bad.status_code == 422

        mails = f'SELECT step, recipient FROM "{prefix}_licensing".mails ORDER BY step'
        def two_mails() -> list[dict[str, Any]]:
            rows = select(database_url, mails)
            return rows if len(rows) == 2 else []

        rows = wait_for(two_mails, 30, "two mails")
        assert [r["step"] for r in rows] == ["notify", "welcome"]
        out.wait(r"SMTP sink kept mail to .*fay@example\.com.*: Welcome to Lysmore Pro")
        out.wait(r"SMTP sink kept mail to team@lysmore\.dev: New subscriber")
        keys = select(database_url, f'SELECT count(*) AS n FROM "{prefix}_licensing".hex_keys')
        assert keys[0]["n"] == 1

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = out.text()
    assert "whsec_" not in text and "sk_test_" not in text and "lys_hex_" not in text
