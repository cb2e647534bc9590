"""The engine's read model: liveness from node_ttl, settings in force, limits as stored, job reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

import engine._inspect
from engine import (
    GlobalLimit,
    JobState,
    Partition,
    QueueConfig,
    QueueSetting,
    RateLimit,
    Worker,
    Workflow,
)
from engine._queues import effective_settings

NOW = datetime(2020, 1, 15, 12, 0, tzinfo=UTC)  # a fixed clock, in the database's past


class Step(Worker):
    queue = "q"

    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


def test_the_node_setting_wins_over_every_node_over_config() -> None:
    config = QueueConfig("q", 5, global_limit=GlobalLimit(3))
    settings = {
        ("q", "*"): QueueSetting("q", "*", paused=True, local_limit=7),
        ("q", "a"): QueueSetting("q", "a", paused=False, rate_limit=RateLimit(1, 1.0)),
        ("other", "a"): QueueSetting("other", "a", local_limit=1),
    }
    paused, a = effective_settings(config, False, "a", settings)
    assert (paused, a.local_limit, a.global_limit, a.rate_limit) == (False, 7, GlobalLimit(3), RateLimit(1, 1.0))
    paused, b = effective_settings(config, False, "b", settings)
    assert (paused, b.local_limit, b.rate_limit) == (True, 7, None)
    assert effective_settings(config, True, "c", {}) == (True, config)


def test_liveness_is_the_node_ttl_lease(make_engine, conn: psycopg.Connection, prefix: str) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(node_ttl=10.0)
    s = sql.Identifier(prefix)
    fresh, stale = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        sql.SQL("INSERT INTO {}.lysmore_nodes (id, name, host, pid, started_at, heartbeat_at) VALUES"
                " (%s, 'fresh', 'h', 1, %s, %s), (%s, 'stale', 'h', 2, %s, %s)").format(s),
        (fresh, NOW - timedelta(hours=1), NOW - timedelta(seconds=9),
         stale, NOW - timedelta(hours=1), NOW - timedelta(seconds=11)),
    )
    conn.execute(
        sql.SQL("INSERT INTO {}.lysmore_producers (node_id, queue, local_limit, paused, running, meta) VALUES"
                " (%s, 'q', 4, false, 1, %s), (%s, 'q', 4, false, 0, '{{}}')").format(s),
        (fresh, Jsonb({"global_limit": {"allowed": 2}}), stale),
    )
    conn.execute(sql.SQL("INSERT INTO {}.lysmore_queue_settings (queue, node, paused, local_limit)"
                         " VALUES ('q', 'fresh', true, 6)").format(s))
    inspector = eng.inspect()
    assert [(n.name, n.live) for n in inspector.nodes(now=NOW)] == [("fresh", True), ("stale", False)]
    assert inspector.summary(now=NOW).live_nodes == 1
    (live,) = inspector.producers(now=NOW)
    assert (live.node, live.paused, live.local_limit, live.global_limit) == ("fresh", True, 6, GlobalLimit(2))
    assert (live.reported_paused, live.reported_limit) == (False, 4)  # what the node itself says
    assert [p.node for p in inspector.producers(now=NOW, live_only=False)] == ["fresh", "stale"]
    status = eng.status()  # by the database's clock both heartbeats are long gone
    assert [(n["name"], n["live"]) for n in status["nodes"]] == [("fresh", False), ("stale", False)]


def test_a_bad_stored_limit_reads_as_none(make_engine, conn: psycopg.Connection, prefix: str) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    conn.execute(sql.SQL("INSERT INTO {}.lysmore_queue_settings (queue, node, global_limit, rate_limit)"
                         " VALUES ('q', '*', %s, %s)").format(sql.Identifier(prefix)),
                 (Jsonb({"allowed": "many"}), Jsonb({"allowed": 5, "period": 2, "partition": {"fields": ["worker"]}})))
    setting = eng.inspect().settings()[("q", "*")]
    assert setting.global_limit is None
    assert setting.rate_limit == RateLimit(5, 2.0, Partition(worker=True))


def test_jobs_and_workflow_steps_as_stored(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    flow = Workflow(name="ingest").add("a", Step.new()).add("b", Step.new(), deps=["a"])
    jobs = eng.insert_all(flow)
    inspector = eng.inspect()
    first = inspector.job(jobs[0].id)
    assert first is not None and first.state is JobState.AVAILABLE and first.workflow_name == "ingest"
    assert inspector.job(10**12) is None
    steps = inspector.workflow_steps(str(first.workflow_id))
    assert [(j.workflow_step, j.state) for j in steps] == [("a", JobState.AVAILABLE), ("b", JobState.HELD)]


def test_settings_for_a_node_are_what_its_producer_runs_with(make_engine, conn: psycopg.Connection, prefix: str) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"q": 3}, node="a")
    conn.execute(sql.SQL("INSERT INTO {}.lysmore_queue_settings (queue, node, paused, local_limit, global_limit)"
                         " VALUES ('q', '*', true, 7, NULL), ('q', 'a', NULL, NULL, %s), ('q', 'b', false, 1, NULL)")
                 .format(sql.Identifier(prefix)), (Jsonb({"allowed": 2}),))
    paused, config = eng.inspect().settings_for(eng.queues["q"], "a")
    assert paused and config == QueueConfig("q", 7, global_limit=GlobalLimit(2))


def test_counts_without_queues_are_the_same_per_state(make_engine, conn: psycopg.Connection, prefix: str,  # type: ignore[no-untyped-def]
                                                      monkeypatch) -> None:
    """Asked for no per-queue counts (the jobs list), the counts are grouped by state alone: the same
    totals, exact and estimated alike, and no queue."""
    eng = make_engine()
    jobs = eng.insert_all([Step.new() for _ in range(30)] + [Step.new(queue="other") for _ in range(12)])
    conn.execute(sql.SQL("UPDATE {}.lysmore_jobs SET state = 'completed', completed_at = now() WHERE id = ANY(%s)")
                 .format(sql.Identifier(prefix)), [[j.id for j in jobs[:25]]])
    inspector = eng.inspect()
    for exact_below in (None, 20):  # a small table: counted exactly; past the threshold: completed estimated
        if exact_below is not None:
            conn.execute(sql.SQL("ANALYZE {}.lysmore_jobs").format(sql.Identifier(prefix)))
            monkeypatch.setattr(engine._inspect, "EXACT_BELOW_FINISHED", 10)
        full = inspector.counts(exact_below=exact_below)
        bare = inspector.counts(exact_below=exact_below, states=())
        assert bare.by_state == full.by_state and bare.estimated_states == full.estimated_states
        assert bare.by_queue == {}
        assert full.by_state["available"] == 17
    assert full.estimated_states == {"completed"}
    some = inspector.counts(exact_below=20, states=("available",))  # an exact state per queue: grouped by queue
    assert some.by_queue == {"q": {"available": 5}, "other": {"available": 12}}
