"""The LISTEN side: a dedicated connection, checked and reconnected with capped backoff and jitter."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger("lysmore.notifier")

CHECK_EVERY = 1.0  # seconds between health checks of the listening connection
WAIT_SLICE = 0.1  # seconds one wait for notifications lasts, so stop() is heard quickly
MAX_BACKOFF = 10.0


class Notifier:
    """Listens on one channel and hands each decoded payload to ``dispatch``.

    Polling runs regardless, so a missed notification costs at most one poll interval.
    """

    def __init__(
        self,
        conninfo: str,
        channel: str,
        dispatch: Callable[[dict[str, Any]], None],
        on_connect: Callable[[], None],
        application_name: str = "lysmore-listen",
    ) -> None:
        self._conninfo = conninfo
        self._application_name = application_name
        self._channel = channel
        self._dispatch = dispatch
        self._on_connect = on_connect
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.reconnects = 0
        self.backend_pid: int | None = None
        self._thread = threading.Thread(target=self._run, name="lysmore-notifier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5, prepare_threshold=None,
                                     application_name=self._application_name) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.backend_pid = conn.info.backend_pid
                    if failures or self.connected.is_set():
                        self.reconnects += 1
                    failures = 0
                    self.connected.set()
                    # Anything sent while we were away is caught up by a poll now.
                    self._on_connect()
                    self._listen(conn)
            except Exception as exc:
                self.connected.clear()
                if self._stop.is_set():
                    break
                failures += 1
                delay = min(0.1 * 2 ** min(failures, 10), MAX_BACKOFF) * random.uniform(0.5, 1.0)
                log.warning("notification connection lost (%s); reconnecting in %.2fs", exc, delay)
                self._stop.wait(delay)
        self.connected.clear()

    def _listen(self, conn: psycopg.Connection) -> None:
        checked = time.monotonic()
        while not self._stop.is_set():
            for note in conn.notifies(timeout=WAIT_SLICE):
                try:
                    payload = json.loads(note.payload)
                except ValueError:
                    log.warning("ignoring a malformed notification payload")
                    continue
                if isinstance(payload, dict):
                    try:
                        self._dispatch(payload)
                    except Exception:
                        log.exception("handling a notification failed")
                if self._stop.is_set():
                    return
            if time.monotonic() - checked >= CHECK_EVERY:
                checked = time.monotonic()
                conn.execute("SELECT 1")  # a dead connection fails here and is replaced
