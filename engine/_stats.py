"""Cheap counts for status and dashboards: exact when the table is small, estimated when large."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._states import JobState

if TYPE_CHECKING:
    from ._engine import Engine

EXACT_BELOW = 100_000  # rows; above this, counts come from the planner's statistics


@dataclass(frozen=True)
class Counts:
    """Jobs per queue and state; ``estimated`` says whether they came from statistics."""

    by_queue: dict[str, dict[str, int]]
    estimated: bool

    def total(self, state: str) -> int:
        return sum(states.get(state, 0) for states in self.by_queue.values())


def queue_counts(engine: Engine, exact_below: int = EXACT_BELOW) -> Counts:
    """Counts per queue and state, exact for small tables, else estimated (executing is exact)."""
    with engine.connection() as c:
        rows = c.execute(engine.q.stats.counts_estimate, {"prefix": engine.prefix}).fetchall()
        total = rows[0][0] if rows else 0
        by_queue: dict[str, dict[str, int]] = {}
        if total < exact_below or not any(r[1] for r in rows):
            for queue, state, n in c.execute(engine.q.stats.counts_exact).fetchall():
                by_queue.setdefault(queue, {})[state] = int(n)
            return Counts(by_queue, estimated=False)
        for _, queue, state, freq in rows:
            if queue is not None and state != JobState.EXECUTING.value:
                by_queue.setdefault(queue, {})[state] = round(freq * total)
        for queue, state, n in c.execute(engine.q.stats.counts_live).fetchall():
            by_queue.setdefault(queue, {})[state] = int(n)
        return Counts(by_queue, estimated=True)


def cluster_status(engine: Engine) -> dict[str, Any]:
    """Nodes (heartbeat age, leader, queues) and queues (limits, paused, counts) as plain data."""
    with engine.connection() as c:
        cur = c.execute(engine.q.nodes.status)
        names = [d.name for d in cur.description or []]
        nodes = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    counts = queue_counts(engine)
    queues: dict[str, dict[str, Any]] = {}
    for node in nodes:
        node["id"] = str(node["id"])
        node["started_at"] = node["started_at"].isoformat()
        node["heartbeat_age"] = round(float(node["heartbeat_age"]), 3)
        for q in node["queues"]:
            entry = queues.setdefault(q["queue"], {"queue": q["queue"], "nodes": [], "counts": {}})
            entry["nodes"].append({"node": node["name"], "limit": q["limit"], "paused": q["paused"],
                                   "running": q["running"]})
    for queue, states in counts.by_queue.items():
        queues.setdefault(queue, {"queue": queue, "nodes": [], "counts": {}})["counts"] = states
    return {
        "nodes": nodes,
        "queues": [queues[k] for k in sorted(queues)],
        "counts_estimated": counts.estimated,
    }
