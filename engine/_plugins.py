"""Leader-only housekeeping: lifeline (rescue), pruner, stats retention. Each is one small function."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._engine import Engine

log = logging.getLogger("lysmore.plugins")

RESCUE_BATCH = 5_000
PRUNE_BATCH = 10_000
PRUNE_MAX_BATCHES = 50  # per round, so one round stays bounded; the next round carries on


def lifeline(engine: Engine) -> int:
    """Rescue jobs of dead nodes (and orphans), then forget nodes dead for long; leader only."""
    if not engine._is_leader():
        return 0
    with engine.connection() as c:
        rows = c.execute(
            engine.q.jobs.rescue,
            {"node_ttl": engine.node_ttl, "orphan_after": engine.orphan_after, "limit": RESCUE_BATCH,
             "channel": engine.channel},
        ).fetchall()
        reaped = c.execute(engine.q.nodes.reap, {"forget_after": max(engine.node_ttl * 6, 60.0)}).fetchall()
    if rows:
        log.warning("lifeline rescued %d jobs from lost nodes", len(rows), extra={"rescued": len(rows)})
        engine._count("rescued", len(rows))
    if reaped:
        log.info("forgot dead nodes %s", [r[0] for r in reaped])
    return len(rows)


def prune(engine: Engine, *, force: bool = False) -> int:
    """Delete finished jobs older than ``prune_max_age`` in bounded batches; leader only, unless
    ``force`` (one round on demand)."""
    if engine.prune_max_age is None or not (force or engine._is_leader()):
        return 0
    total = 0
    with engine.connection() as c:
        for _ in range(PRUNE_MAX_BATCHES):
            cur = c.execute(engine.q.jobs.prune, {"max_age": engine.prune_max_age, "limit": PRUNE_BATCH})
            total += cur.rowcount
            if cur.rowcount < PRUNE_BATCH or not (force or engine._is_leader()):
                break
    if total:
        log.info("pruned %d finished jobs", total)
        engine._count("pruned", total)
    return total


def stats_retention(engine: Engine) -> None:
    """Drop old per-minute rollups and cron run records; leader only."""
    if not engine._is_leader():
        return
    with engine.connection() as c:
        c.execute(
            engine.q.stats.prune,
            {"stats_retention": engine.stats_retention, "cron_retention": engine.cron_retention},
        )
