"""Leader-only housekeeping: lifeline (rescue), pruner, live-side upkeep, stats retention, workflow
sweeper.

Each is one small function over the store, told whether this node leads right now and where to
count what it did; none knows the Engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._store import Store

log = logging.getLogger("lysmore.plugins")

RESCUE_BATCH = 5_000
PRUNE_BATCH = 10_000
PRUNE_MAX_BATCHES = 50  # per round, so one round stays bounded; the next round carries on
TIDY_AT_LEAST = 1_000  # dead or changed rows before the live side is vacuumed or analysed

Leading = Callable[[], bool]
Count = Callable[[str, int], None]
Lost = Callable[[list[tuple[str | None, int, int]]], None]


def lifeline(
    store: Store, leading: Leading, count: Count, *, node_ttl: float, orphan_after: float,
    lost: Lost | None = None,
) -> int:
    """Rescue jobs of dead nodes (and orphans), then forget nodes dead for long; leader only.
    ``lost`` hears, per lost node (None: orphans), how many jobs were made available and discarded."""
    if not leading():
        return 0
    rows = store.rescue(node_ttl, orphan_after, RESCUE_BATCH)
    rescued = len(rows)
    if rows and lost is not None:
        tally: dict[str | None, list[int]] = {}
        for _, state, node in rows:
            tally.setdefault(node, [0, 0])[0 if state == "available" else 1] += 1
        try:
            lost([(node, n[0], n[1]) for node, n in tally.items()])
        except Exception:
            log.exception("reporting lost nodes failed")
    reaped = store.reap_nodes(max(node_ttl * 6, 60.0))
    if rescued:
        log.warning("lifeline rescued %d jobs from lost nodes", rescued, extra={"rescued": rescued})
        count("rescued", rescued)
    if reaped:
        log.info("forgot dead nodes %s", reaped)
    return rescued


def prune(store: Store, leading: Leading, count: Count, *, max_age: float | None) -> int:
    """Delete finished jobs older than ``max_age`` in bounded batches while this node leads
    (``leading`` is always true for a round on demand); nothing when history is kept (None)."""
    if max_age is None or not leading():
        return 0
    total = 0
    for _ in range(PRUNE_MAX_BATCHES):
        deleted = store.prune(max_age, PRUNE_BATCH)
        total += deleted
        if deleted < PRUNE_BATCH or not leading():
            break
    if total:
        log.info("pruned %d finished jobs", total)
        count("pruned", total)
    return total


def tidy_live(store: Store, leading: Leading, count: Count) -> str | None:
    """Vacuum the live side of the jobs table once its dead row versions pass 1,000 plus a fifth
    of its rows (each job leaves two there: the claim replaces its row, the ack moves it away),
    and analyse it once as many rows changed since its last analysis; leader only. Returns what
    it did (``"vacuum"``, ``"analyze"`` or None).

    The live side is small, so this is cheap, and the hot path (fetch, stage, rescue) then never
    depends on autovacuum being on, keeping up, or having seen a bulk insert: a fetch planned on
    stale statistics or walking dead index entries is many times slower.
    """
    if not leading():
        return None
    rows, dead, changed = store.live_side()
    bound = TIDY_AT_LEAST + rows // 5
    if dead > bound:
        store.tidy_live(vacuum=True)
        count("vacuumed", 1)
        return "vacuum"
    if changed > bound:
        store.tidy_live(vacuum=False)
        count("analyzed", 1)
        return "analyze"
    return None


def expire_stats(store: Store, leading: Leading, *, stats_retention: float, cron_retention: float) -> None:
    """Drop old per-minute rollups and cron run records; leader only."""
    if leading():
        store.prune_stats(stats_retention, cron_retention)


def sweep_workflows(store: Store, leading: Leading) -> int:
    """Resolve workflows whose held steps wait on finished dependencies; leader only."""
    return store.sweep_workflows() if leading() else 0
