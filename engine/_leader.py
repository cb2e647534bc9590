"""Leadership: a lease row with an epoch; only the holder of a live term runs leader-only plugins."""

from __future__ import annotations

import logging
import threading
import time

from ._store import Store

log = logging.getLogger("lysmore.leader")

SAFETY = 0.8  # trust a lease for this fraction of its length, measured from before the request


class Leadership:
    """Tries to take or renew the lease every third of its length (the caller adds jitter)."""

    def __init__(self, store: Store, lease: float) -> None:
        self.store = store
        self.lease = lease
        self.epoch: int | None = None
        self._valid_until = 0.0
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        """True while this node holds a lease it renewed recently enough to trust."""
        with self._lock:
            return self.epoch is not None and time.monotonic() < self._valid_until

    def current_epoch(self) -> int | None:
        with self._lock:
            return self.epoch if self.epoch is not None and time.monotonic() < self._valid_until else None

    def elect(self) -> None:
        """One round: take the lease if free or expired, renew it if ours."""
        sent = time.monotonic()
        epoch = self.store.elect(self.lease)
        with self._lock:
            was = self.epoch if time.monotonic() < self._valid_until else None
            if epoch is None:
                if was is not None:
                    log.warning("lost leadership (epoch %s)", was)
                self.epoch = None
                self._valid_until = 0.0
                return
            self.epoch = epoch
            self._valid_until = sent + self.lease * SAFETY
            if was != self.epoch:
                log.info("became leader", extra={"node": self.store.node.name, "epoch": self.epoch})

    def resign(self) -> None:
        with self._lock:
            epoch, self.epoch, self._valid_until = self.epoch, None, 0.0
        if epoch is None:
            return
        try:
            self.store.resign(epoch)
        except Exception as exc:
            log.warning("could not resign leadership: %s", exc)
