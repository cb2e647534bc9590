"""The load mix: kinds in the right proportions, every queue fed, and what it inserts in the database."""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from demo import workers
from demo.load import MIX, Burst, Item, LoadGenerator, LoadMix, poisson
from demo.workers import QUEUES, UNIQUE_WORKERS
from engine import Engine


@functools.cache
def items(n: int = 4000, seed: int = 1) -> tuple[Item, ...]:
    """A sample of the load (made once per module: Faker takes its time)."""
    workers.set_speed(50)
    try:
        return tuple(LoadMix(random.Random(seed)).batch(n))
    finally:
        workers.set_speed(1)


def test_the_mix_has_every_kind_in_about_its_share() -> None:
    made = items()
    kinds = Counter(i.kind for i in made)
    assert set(kinds) == set(MIX)
    for kind, share in MIX.items():
        assert abs(kinds[kind] / len(made) - share) < 0.03, (kind, kinds)


def test_the_mix_feeds_every_queue_with_valid_jobs() -> None:
    queues: Counter[str] = Counter()
    for item in items():
        specs = item.workflow.specs() if item.workflow else [item.spec]
        for spec in specs:
            assert spec is not None and spec.queue in QUEUES
            queues[spec.queue] += 1
    assert set(queues) == set(QUEUES)
    # mailers and media get more than their limits let through, so they pile up; all get a fair share
    assert all(n > 100 for n in queues.values()), queues


def test_each_kind_makes_what_its_name_says() -> None:
    for item in items():
        spec = item.spec
        if item.kind == "workflow":
            assert item.workflow is not None and spec is None
            steps = item.workflow.specs()
            assert len(steps) >= 3 and any(s.workflow_deps for s in steps)
            assert item.workflow.name in ("signup", "monthly-report", "video-publish")
            continue
        assert spec is not None
        if item.kind == "scheduled":
            assert spec.schedule_in is not None and 1.0 <= spec.schedule_in <= 600 / 50
        else:
            assert spec.schedule_in is None
        if item.kind == "unique":
            assert spec.unique is not None and spec.unique["keys"]
            assert any(spec.worker == w.name for w in UNIQUE_WORKERS)
        else:
            assert spec.unique is None
        if item.kind == "urgent":
            assert spec.priority == 0 and "urgent" in spec.tags
        elif item.kind == "bulk":
            assert spec.priority == 9 and "bulk" in spec.tags
        else:
            assert 1 <= spec.priority <= 4


def test_scheduled_jobs_are_due_in_demo_time() -> None:
    workers.set_speed(1)
    mix = LoadMix(random.Random(2))
    delays = [mix.schedule_in() for _ in range(1000)]
    assert min(delays) >= 5 and max(delays) <= 600
    workers.set_speed(1000)
    assert all(mix.schedule_in() == 1.0 for _ in range(100))  # never less than a real second


def test_unique_jobs_draw_from_small_pools_so_duplicates_happen() -> None:
    keys: Counter[str] = Counter()
    for item in items():
        if item.kind == "unique":
            assert item.spec is not None and item.spec.unique is not None
            keys[item.spec.unique["key"]] += 1
    assert sum(keys.values()) > 150 and max(keys.values()) > 1


def test_the_mix_skips_queues_whose_backlog_is_full() -> None:
    mix = LoadMix(random.Random(3), queues={"analysis", "events"})
    made = mix.batch(500)
    assert made and len(made) < 500
    for item in made:
        assert item.spec is not None and item.spec.queue in {"analysis", "events"}


def test_the_generator_stops_feeding_full_queues() -> None:
    gen = LoadGenerator(Engine("postgresql://unused", prefix="x"), rate=10, rng=random.Random(1),
                        max_backlog=100, backlog=lambda: {"mailers": 100, "media": 99})
    gen._refresh_backlog()
    assert gen.mix.queues == set(QUEUES) - {"mailers"}
    assert all(i.spec is None or i.spec.queue != "mailers" for i in gen.mix.batch(300))


def test_bursts_come_and_go() -> None:
    pulse = Burst(random.Random(4))
    factors = [pulse.advance(0.2) for _ in range(5000)]  # 1000 s of load
    assert max(factors) >= 2.5 and min(factors) <= 0.9
    assert 0.7 < sum(factors) / len(factors) < 2.0


def test_poisson_draws_average_their_mean() -> None:
    rng = random.Random(5)
    for mean in (0.5, 4.0, 80.0):
        draws = [poisson(rng, mean) for _ in range(4000)]
        assert abs(sum(draws) / len(draws) - mean) < 0.1 * mean + 0.05
    assert poisson(rng, 0) == 0


def test_inserted_load_is_in_the_database_as_made(make_engine: Callable[..., Engine], conn: psycopg.Connection,
                                                   prefix: str) -> None:
    workers.set_speed(10)
    eng = make_engine()
    gen = LoadGenerator(eng, rate=0, rng=random.Random(6), mix=LoadMix(random.Random(7)))
    gen.tick(400)
    gen.tick(400)  # the second round repeats some unique keys of the first: refused as duplicates
    stats = gen.stats.snapshot()
    rows = conn.execute(sql.SQL(
        "SELECT state::text, priority, workflow_id IS NOT NULL, unique_key IS NOT NULL, count(*) "
        "FROM {}.lysmore_jobs GROUP BY 1, 2, 3, 4").format(sql.Identifier(prefix))).fetchall()
    total = sum(r[4] for r in rows)
    assert total == stats["jobs"] and stats["duplicates"] > 0 and stats["errors"] == 0
    by: Counter[str] = Counter()
    for state, priority, in_workflow, unique, n in rows:
        by[state] += n
        by["urgent"] += n if priority == 0 else 0
        by["workflow"] += n if in_workflow else 0
        by["unique"] += n if unique else 0
    assert by["available"] and by["scheduled"] and by["held"]
    assert by["urgent"] and by["workflow"] >= 3 * stats["workflows"] and by["unique"]


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_every_queue_has_a_worker_that_can_fill_it(queue: str) -> None:
    assert any(w.queue == queue for w in workers.WORKERS)
