"""The private instance's node as a real process (``lysmore worker``), configured by environment, for crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .stack import SMTP_USER, Stack

ROOT = Path(__file__).resolve().parents[2]


class NodeProcess:
    """``lysmore worker --app licensing.app:make_engine`` in its own process, configured by environment."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lysmore", "-v", "worker", "--app", "licensing.app:make_engine",
                 "--node", name, "--grace", "1", "--no-migrate"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no chance to release anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def node_env(stack: Stack) -> dict[str, str]:
    """The environment a node process of this stack's instance needs (secrets go by environment, never argv)."""
    s = stack.app.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYSMORE_", "STRIPE_"))}
    values = {
        "DATABASE_URL": stack.app.engine.database_url,
        "PREFIX": s.prefix,
        "STRIPE_API_KEY": stack.secret["stripe_api_key"],
        "STRIPE_API_BASE": stack.sandbox.url,
        "SMTP_HOST": stack.sink.host,
        "SMTP_PORT": str(stack.sink.port),
        "SMTP_USERNAME": SMTP_USER,
        "SMTP_PASSWORD": stack.secret["smtp_password"],
        "LICENSE_SIGNING_KEY": stack.secret["license_signing_key"],
        "HEX_KEY_SECRET": stack.secret["hex_key_secret"],
        "JOB_BACKOFF": "0.05",
        "LOCK_SNOOZE": "0.1",
        "HEARTBEAT_INTERVAL": "0.2",
        "NODE_TTL": "1.5",
        "LEADER_LEASE": "1",
        "POLL_INTERVAL": "0.2",
        "STAGE_INTERVAL": "0.1",
    }
    env.update({f"LYSMORE_LICENSING_{k}": v for k, v in values.items()})
    return env
