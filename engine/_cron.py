"""Cron: entries evaluated by the leader; one job per (entry, instant), enforced by a primary key."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from ._errors import InvalidConfig
from ._worker import Worker

if TYPE_CHECKING:
    from ._engine import Engine

log = logging.getLogger("lysmore.cron")

MISSED_POLICIES = ("skip", "run_once")


@dataclass(frozen=True)
class CronEntry:
    """``CronEntry("*/5 * * * *", MyWorker, args={...}, timezone="Europe/Oslo")``.

    ``missed="skip"`` (default) drops instants that passed while no leader ran them, beyond
    ``tolerance`` seconds; ``"run_once"`` runs the newest missed instant once.
    """

    expression: str
    worker: type[Worker]
    args: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    name: str | None = None
    missed: str = "skip"
    tolerance: float = 60.0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str) or not croniter.is_valid(self.expression):
            raise InvalidConfig(f"cron expression {self.expression!r} is not valid")
        if not (isinstance(self.worker, type) and issubclass(self.worker, Worker)):
            raise InvalidConfig(f"cron worker must be a Worker subclass, got {self.worker!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidConfig(f"cron timezone {self.timezone!r} is not a known IANA zone") from None
        if self.missed not in MISSED_POLICIES:
            raise InvalidConfig(f"cron missed policy must be one of {MISSED_POLICIES}, got {self.missed!r}")
        self.worker.new(self.args, **self.options)  # validate args and options now, not at 3am

    @property
    def key(self) -> str:
        """The name runs are recorded under: given, or expression + worker + timezone."""
        return self.name or f"{self.expression}|{self.worker.name}|{self.timezone}"

    def previous(self, now: datetime) -> datetime:
        """The newest instant at or before ``now`` (aware), in UTC."""
        local = now.astimezone(ZoneInfo(self.timezone))
        it = croniter(self.expression, local + timedelta(microseconds=1))
        prev: datetime = it.get_prev(datetime)
        return prev.astimezone(ZoneInfo("UTC"))


def parse_crontab(crontab: object) -> list[CronEntry]:
    """Accept CronEntry objects or ``(expression, Worker[, options dict])`` tuples."""
    if crontab is None:
        return []
    if not isinstance(crontab, (list, tuple)):
        raise InvalidConfig("crontab must be a list of CronEntry or (expression, Worker, options) tuples")
    entries: list[CronEntry] = []
    for item in crontab:
        if isinstance(item, CronEntry):
            entries.append(item)
        elif isinstance(item, tuple) and len(item) in (2, 3):
            opts = dict(item[2]) if len(item) == 3 else {}
            entries.append(CronEntry(item[0], item[1], **opts))
        else:
            raise InvalidConfig(f"crontab item {item!r} is neither a CronEntry nor (expression, Worker[, options])")
    keys = [e.key for e in entries]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise InvalidConfig(f"crontab has duplicate entries {sorted(dupes)}; give them distinct names")
    return entries


class Cron:
    """Runs on the leader every second or so; inserts due jobs exactly once per instant."""

    def __init__(self, engine: Engine, entries: list[CronEntry]) -> None:
        self.engine = engine
        self.entries = entries
        self._seen: dict[str, datetime] = {}  # newest instant handled per entry, on this node

    def tick(self) -> int:
        leader = self.engine._leader
        epoch = leader.current_epoch() if leader else None
        if epoch is None or not self.entries:
            return 0
        inserted = 0
        with self.engine.connection() as c:
            row = c.execute("SELECT now()").fetchone()
            assert row is not None
            now: datetime = row[0]
            for entry in self.entries:
                instant = entry.previous(now)
                if self._seen.get(entry.key) == instant:
                    continue
                if entry.missed == "skip" and (now - instant).total_seconds() > entry.tolerance:
                    self._seen[entry.key] = instant
                    continue
                if self._run(c, entry, instant, epoch):
                    inserted += 1
                self._seen[entry.key] = instant
        return inserted

    def _run(self, c: Any, entry: CronEntry, instant: datetime, epoch: int) -> bool:
        """Claim (entry, instant) and insert its job in one transaction; False if already run."""
        with c.transaction():
            if entry.missed == "run_once":
                last = c.execute(self.engine.q.cron_last, {"name": entry.key}).fetchone()
                if last and last[0] is not None and last[0] >= instant:
                    return False
            claimed = c.execute(
                self.engine.q.cron_claim,
                {"name": entry.key, "instant": instant, "node_id": self.engine.node_id, "epoch": epoch},
            ).fetchone()
            if claimed is None:
                return False
            meta = {"cron": entry.key, "cron_instant": instant.isoformat()}
            options = dict(entry.options)
            options["meta"] = {**options.get("meta", {}), **meta}
            job = self.engine.insert(entry.worker.new(entry.args, **options), conn=c)
            c.execute(self.engine.q.cron_link, {"name": entry.key, "instant": instant, "job_id": job.id})
        log.info("cron %s inserted job %s for %s", entry.key, job.id, instant.isoformat())
        return True

