"""Cron: entries evaluated by the leader; one job per (entry, instant), enforced by a primary key."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from ._errors import InvalidConfig
from ._leader import Leadership
from ._store import Store
from ._worker import Worker

log = logging.getLogger("lysmore.cron")

MISSED_POLICIES = ("skip", "run_once")


@dataclass(frozen=True)
class CronEntry:
    """``CronEntry("*/5 * * * *", MyWorker, args={...}, timezone="Europe/Oslo")``.

    ``missed="skip"`` (default) drops instants that passed while no leader ran them, beyond
    ``tolerance`` seconds; ``"run_once"`` runs the newest missed instant once.

    Daylight saving time, as Vixie cron: when clocks go forward, a fixed-time job whose local
    time does not exist runs once at the first valid time after the gap (02:30 -> 03:00); when
    clocks go back, a fixed-time job runs once (at the first 02:30), while jobs with a wildcard
    hour keep running every real hour or minute.
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

    def instants(self, now: datetime, limit: int = 100) -> list[datetime]:
        """Instants at or before ``now`` (aware), newest first, in UTC, back to ``tolerance`` ago.

        Always at least the newest one, however old (the ``run_once`` policy needs it).
        """
        local = now.astimezone(ZoneInfo(self.timezone))
        it = croniter(self.expression, local + timedelta(microseconds=1))
        found: list[datetime] = []
        while len(found) < limit:
            prev: datetime = it.get_prev(datetime)
            utc = prev.astimezone(ZoneInfo("UTC"))
            if found and (now - utc).total_seconds() > self.tolerance:
                break
            if self._fixed_hour and utc.astimezone(ZoneInfo(self.timezone)).fold == 1:
                continue  # the repeated hour when clocks go back: a fixed-time job runs once
            found.append(utc)
        return found

    @property
    def _fixed_hour(self) -> bool:
        return fixed_hour(self.expression)

    def record(self) -> dict[str, Any]:
        """The entry as the leader records it for readers (``lysmore_cron_entries``)."""
        spec = self.worker.new(self.args, **self.options)
        return {"name": self.key, "expression": self.expression, "timezone": self.timezone,
                "worker": spec.worker, "queue": spec.queue, "args": json.loads(spec.json_args())}


def fixed_hour(expression: str) -> bool:
    """Whether the hour field names hours (``30 2 * * *``) rather than every hour (``*``)."""
    fields = expression.split()
    if len(fields) < 5:
        return fields[0] != "@hourly"  # @daily, @weekly, ...: fixed times
    return not fields[1].startswith("*")


def next_instant(expression: str, timezone: str, after: datetime) -> datetime | None:
    """The first instant of ``expression`` in ``timezone`` after ``after`` (aware), in UTC, by the
    same daylight saving rules as ``CronEntry.instants``; None when the expression or zone is not
    valid (a reader's view of a stored entry, never an error)."""
    try:
        zone = ZoneInfo(timezone)
        it = croniter(expression, after.astimezone(zone))
    except (ZoneInfoNotFoundError, ValueError, KeyError):
        return None
    fixed = fixed_hour(expression)
    for _ in range(3):
        nxt: datetime = it.get_next(datetime)
        if not (fixed and nxt.fold == 1):
            return nxt.astimezone(ZoneInfo("UTC"))
    return None


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

    def __init__(self, store: Store, leader: Leadership, entries: list[CronEntry]) -> None:
        self.store = store
        self.leader = leader
        self.entries = entries
        self._seen: dict[str, set[datetime]] = {}  # instants handled per entry, on this node
        self._recorded: int | None = None  # the leader term in which this crontab was recorded

    def tick(self) -> int:
        epoch = self.leader.current_epoch()
        if epoch is None or not self.entries:
            return 0
        if self._recorded != epoch:  # once a term: readers see the crontab the leader runs
            self.store.cron_record([entry.record() for entry in self.entries])
            self._recorded = epoch
        inserted = 0
        with self.store.db.connection() as c:
            now = self.store.now(c)
            for entry in self.entries:
                seen = self._seen.setdefault(entry.key, set())
                instants = [i for i in entry.instants(now) if i not in seen]
                if not instants:
                    continue
                for instant in self._due(c, entry, now, instants):
                    inserted += self._run(c, entry, instant, epoch)
                seen.update(instants)  # only once handled: a failed round tries them again
                if len(seen) > 1000:
                    self._seen[entry.key] = set(instants)
        return inserted

    def _due(self, c: Any, entry: CronEntry, now: datetime, instants: list[datetime]) -> list[datetime]:
        """Which of ``instants`` (newest first) to run, oldest first.

        Only instants after the newest recorded run count (a new entry starts with its newest
        instant, it does not backfill); late ones are dropped, except under ``run_once`` the newest.
        """
        last = self.store.cron_last(c, entry.key)
        fresh = [i for i in instants if last is None or i > last]
        if last is None:
            fresh = fresh[:1]
        on_time = [i for i in fresh if (now - i).total_seconds() <= entry.tolerance]
        if not on_time and fresh and entry.missed == "run_once":
            on_time = fresh[:1]
        return list(reversed(on_time))

    def _run(self, c: Any, entry: CronEntry, instant: datetime, epoch: int) -> bool:
        """Claim (entry, instant) and insert its job in one transaction; False if already run, or
        if the entry is paused (the instant is then recorded as passed, with no job)."""
        with c.transaction():
            claimed = self.store.cron_claim(c, entry.key, instant, epoch)
            if claimed is None:
                return False
            if not claimed:
                log.info("cron %s is paused: nothing inserted for %s", entry.key, instant.isoformat())
                return False
            meta = {"cron": entry.key, "cron_instant": instant.isoformat()}
            options = dict(entry.options)
            options["meta"] = {**options.get("meta", {}), **meta}
            job = self.store.insert([entry.worker.new(entry.args, **options)], c)[0]
            self.store.cron_link(c, entry.key, instant, job.id)
        log.info("cron %s inserted job %s for %s", entry.key, job.id, instant.isoformat())
        return True

