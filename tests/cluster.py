"""Real worker processes for cluster tests: start, kill -9, SIGSTOP, and read their ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Node:
    """One ``lysmore worker`` process running ``tests.cluster_app:make``."""

    def __init__(self, name: str, database_url: str, prefix: str, **env: str) -> None:
        self.name = name
        self.database_url = database_url
        self.prefix = prefix
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"lysmore-{prefix}-{name}.log"

    def start(self) -> Node:
        env = {**os.environ, "CLUSTER_DB": self.database_url, "CLUSTER_PREFIX": self.prefix, **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lysmore", "worker", "--app", "tests.cluster_app:make",
                 "--node", self.name, "--grace", "2", "--no-migrate"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int | None:
        if not self.alive():
            return self.proc.returncode if self.proc else None
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None


def create_ledger(conn: Any, prefix: str) -> None:
    """The table cluster_app's jobs write one row to per run: (job, attempt, node, start time)."""
    conn.execute(
        f'CREATE TABLE "{prefix}".ledger (job_id bigint NOT NULL, attempt int NOT NULL, node text NOT NULL, '
        "at timestamptz NOT NULL DEFAULT now())"
    )
