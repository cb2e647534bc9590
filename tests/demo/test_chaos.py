"""Miscreants pause queues or scale them to one on live nodes; the demo heals every prank."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from demo.chaos import HEALER, VISITOR, Miscreant, configured_limit, reset_queues
from demo.workers import QUEUES
from engine import Engine
from tests.helpers import wait_for


def queue_state(eng: Engine) -> dict[tuple[str, str], tuple[int, bool]]:
    """(queue, node) -> (local limit, paused), as the nodes report it."""
    return {(q["queue"], n["node"]): (n["limit"], n["paused"])
            for q in eng.status()["queues"] for n in q["nodes"]}


def healthy(eng: Engine) -> bool:
    state = queue_state(eng)
    return len(state) == 2 * len(QUEUES) and all(
        limit == configured_limit(q) and not paused for (q, _), (limit, paused) in state.items()
    )


def audit(conn: psycopg.Connection, prefix: str) -> list[tuple[Any, ...]]:
    return conn.execute(sql.SQL("SELECT actor, action, targets, detail FROM {}.lysmore_audit ORDER BY id")
                        .format(sql.Identifier(prefix))).fetchall()


def test_configured_limits_follow_the_seed() -> None:
    assert {q: configured_limit(q) for q in QUEUES} == {
        "analysis": 20, "default": 30, "events": 15, "exports": 8, "mailers": 10, "media": 10,
    }


def test_pranks_take_effect_on_the_nodes_and_are_all_healed(
    make_engine: Callable[..., Engine], conn: psycopg.Connection, prefix: str,
) -> None:
    client = make_engine()
    for name in ("n1", "n2"):
        make_engine(node=name, queues=QUEUES).start()
    wait_for(lambda: healthy(client), what="both nodes running the demo queues")
    visitor = Miscreant(client, ["n1", "n2"], rng=random.Random(11))
    pranks = [p for p in (visitor.act() for _ in range(len(QUEUES) + 1)) if p is not None]
    assert len(pranks) == len(QUEUES)  # one prank a queue at a time: the seventh finds none free
    assert {p.action for p in pranks} == {"pause_queue", "scale_queue"}

    def applied() -> bool:
        state = queue_state(client)
        for prank in pranks:
            for node in [prank.node] if prank.node else ["n1", "n2"]:
                limit, paused = state[(prank.queue, node)]
                if not (paused if prank.action == "pause_queue" else limit == 1):
                    return False
        return True

    wait_for(applied, what="every prank in force on the nodes")
    assert len(visitor.in_force()) == len(QUEUES)
    visitor.heal_all()
    wait_for(lambda: healthy(client), what="every queue healed")
    assert visitor.in_force() == [] and len(visitor.done) == len(QUEUES)
    rows = audit(conn, prefix)
    assert [r[0] for r in rows].count(VISITOR) == len(QUEUES) and [r[0] for r in rows].count(HEALER) == len(QUEUES)
    assert all(r[3]["chaos"] is True and r[2] == [r[3]["queue"]] for r in rows)


def test_pranks_are_healed_when_their_time_is_up(make_engine: Callable[..., Engine]) -> None:
    now = [0.0]
    client = make_engine()
    visitor = Miscreant(client, [], rng=random.Random(2), clock=lambda: now[0])
    prank = visitor.act()
    assert prank is not None and visitor.heal_due() == 0
    now[0] = prank.heal_at
    assert visitor.heal_due() == 1 and prank.healed and visitor.in_force() == []


def test_a_new_run_starts_from_the_seeds_limits(make_engine: Callable[..., Engine]) -> None:
    client = make_engine()
    client.pause_queue("mailers", wait=0)
    client.pause_queue("media", node="demo-1", wait=0)
    client.scale_queue("analysis", 1, wait=0)
    reset_queues(client)
    make_engine(node="demo-1", queues=QUEUES).start()
    wait_for(lambda: len(queue_state(client)) == len(QUEUES), what="the node's producers")
    assert all(limit == configured_limit(q) and not paused
               for (q, _), (limit, paused) in queue_state(client).items())
