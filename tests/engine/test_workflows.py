"""Workflows: atomic insert, held steps promoted exactly once, failure cascades, results, and a
proof under chaos with real worker processes."""

from __future__ import annotations

import random
import time
from typing import Any

import psycopg
import pytest

from engine import InvalidJob, Job, Worker, Workflow, testing
from tests.cluster import Node, create_ledger
from tests.cluster_app import StepJob
from tests.helpers import wait_for


class Step(Worker, queue="wf"):
    def perform(self, job: Job) -> dict[str, Any]:
        return {"step": job.workflow_step, "deps": job.workflow_results()}


class Broken(Worker, queue="wf", max_attempts=1):
    def perform(self, job: Job) -> None:
        raise RuntimeError("upstream broke")


def _diamond(fail: str | None = None, **opts: Any) -> Workflow:
    def spec(name: str) -> Any:
        return Broken.new() if name == fail else Step.new({"name": name})

    return (Workflow(name="diamond")
            .add("a", spec("a"))
            .add("b", spec("b"), deps=["a"])
            .add("c", spec("c"), deps=["a"])
            .add("d", spec("d"), deps=["b", "c"], **opts))


def _states(eng: Any, wf: Workflow) -> dict[str, str]:
    return {j.workflow_step: j.state.value for j in eng.workflow_steps(wf.id)}


def test_steps_wait_held_then_run_in_order_with_results(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"wf": 4})
    wf = _diamond()
    jobs = eng.insert_all(wf)
    assert [(j.workflow_step, j.state.value) for j in jobs] == [
        ("a", "available"), ("b", "held"), ("c", "held"), ("d", "held")]
    assert all(j.workflow_id == wf.id and j.workflow_name == "diamond" for j in jobs)
    assert testing.drain(eng, "wf") == {"completed": 4}
    d = next(j for j in eng.workflow_steps(wf.id) if j.workflow_step == "d")
    assert d.result == {"step": "d", "deps": {"b": {"step": "b", "deps": {"a": {"step": "a", "deps": {}}}},
                                              "c": {"step": "c", "deps": {"a": {"step": "a", "deps": {}}}}}}


def test_a_discarded_step_cancels_its_dependents_transitively(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"wf": 4})
    wf = _diamond(fail="b")
    eng.insert_all(wf)
    testing.drain(eng, "wf")
    assert _states(eng, wf) == {"a": "completed", "b": "discarded", "c": "completed", "d": "cancelled"}
    d = next(j for j in eng.workflow_steps(wf.id) if j.workflow_step == "d")
    assert "depends on was cancelled or discarded" in d.errors[-1]["error"]


def test_ignore_discarded_lets_the_step_run(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"wf": 4})
    wf = _diamond(fail="b", ignore_discarded=True)
    eng.insert_all(wf)
    testing.drain(eng, "wf")
    assert _states(eng, wf)["d"] == "completed"


def test_cancelling_a_step_or_the_workflow(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"wf": 4})
    wf = _diamond()
    jobs = eng.insert_all(wf)
    eng.cancel_job(jobs[0].id)  # cancel a: everything downstream goes with it
    assert set(_states(eng, wf).values()) == {"cancelled"}
    other = _diamond(ignore_cancelled=True)
    eng.insert_all(other)
    assert len(eng.cancel_workflow(other.id)) == 4
    assert set(_states(eng, other).values()) == {"cancelled"}


class Flaky(Worker, queue="wf", max_attempts=1):
    """Breaks until the test mends it."""

    mended = False

    def perform(self, job: Job) -> dict[str, Any]:
        if not Flaky.mended:
            raise RuntimeError("broken for now")
        return {"step": job.workflow_step, "deps": job.workflow_results()}


def test_retrying_a_failed_workflow_runs_the_failed_steps_in_graph_order(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"wf": 4})
    Flaky.mended = False
    wf = (Workflow(name="diamond")
          .add("a", Step.new({"name": "a"}))
          .add("b", Flaky.new(), deps=["a"])
          .add("c", Step.new({"name": "c"}), deps=["a"])
          .add("d", Step.new({"name": "d"}), deps=["b", "c"]))
    jobs = {j.workflow_step: j for j in eng.insert_all(wf)}
    testing.drain(eng, "wf")
    assert _states(eng, wf) == {"a": "completed", "b": "discarded", "c": "completed", "d": "cancelled"}
    Flaky.mended = True
    assert eng.retry_workflow(wf.id) == sorted([jobs["b"].id, jobs["d"].id])
    # b's dependency completed: it runs now; d waits for b again instead of running early.
    assert _states(eng, wf) == {"a": "completed", "b": "available", "c": "completed", "d": "held"}
    assert testing.drain(eng, "wf") == {"completed": 2}
    steps = {j.workflow_step: j for j in eng.workflow_steps(wf.id)}
    assert {name: j.state.value for name, j in steps.items()} == dict.fromkeys("abcd", "completed")
    assert steps["b"].attempt == 2 and steps["b"].max_attempts == 2  # one more attempt, as a retry by hand
    assert set(steps["d"].result["deps"]) == {"b", "c"}  # d ran after b, with b's result
    assert eng.retry_workflow(wf.id) == []  # nothing failed: nothing to do


def test_a_step_retried_by_hand_still_waits_for_its_dependencies(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"wf": 4})
    Flaky.mended = False
    wf = (Workflow(name="pair")
          .add("b", Flaky.new())
          .add("d", Step.new({"name": "d"}), deps=["b"]))
    jobs = {j.workflow_step: j for j in eng.insert_all(wf)}
    testing.drain(eng, "wf")
    assert _states(eng, wf) == {"b": "discarded", "d": "cancelled"}
    assert eng.retry_job(jobs["d"].id)
    assert _states(eng, wf) == {"b": "discarded", "d": "held"}  # not available: b has not completed
    assert testing.drain(eng, "wf") == {}
    Flaky.mended = True
    assert eng.retry_job(jobs["b"].id)
    assert testing.drain(eng, "wf") == {"completed": 2}  # b, then d, promoted when b's ack resolved it
    assert set(eng.get_job(jobs["d"].id).result["deps"]) == {"b"}


def test_retrying_a_cancelled_workflow_starts_again_from_its_roots(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"wf": 4})
    wf = _diamond()
    eng.insert_all(wf)
    assert len(eng.cancel_workflow(wf.id)) == 4
    assert len(eng.retry_workflow(wf.id)) == 4
    assert _states(eng, wf) == {"a": "available", "b": "held", "c": "held", "d": "held"}
    assert testing.drain(eng, "wf") == {"completed": 4}


def test_invalid_graphs_are_refused_and_nothing_is_inserted(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    with pytest.raises(InvalidJob, match="unknown steps"):
        eng.insert_all(Workflow().add("a", Step.new()).add("b", Step.new(), deps=["zzz"]))
    with pytest.raises(InvalidJob, match="cycle: a -> b -> a"):
        eng.insert_all(Workflow().add("a", Step.new(), deps=["b"]).add("b", Step.new(), deps=["a"]))
    with pytest.raises(InvalidJob, match="already has a step"):
        Workflow().add("a", Step.new()).add("a", Step.new())
    with pytest.raises(InvalidJob, match="depends on itself"):
        Workflow().add("a", Step.new(), deps=["a"])
    assert conn.execute(f'SELECT count(*) FROM "{prefix}".lysmore_jobs').fetchone()[0] == 0


def test_insert_is_atomic(make_engine, conn, prefix, database_url) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    with psycopg.connect(database_url) as tx:
        eng.insert_all(_diamond(), conn=tx)
        tx.rollback()
    assert conn.execute(f'SELECT count(*) FROM "{prefix}".lysmore_jobs').fetchone()[0] == 0


def test_sweeper_resolves_a_step_left_held(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"wf": 2})
    wf = _diamond()
    eng.insert_all(wf)
    # As if a node died between finishing the upstream steps and resolving the workflow.
    conn.execute(f"""UPDATE "{prefix}".lysmore_jobs SET state = 'completed' WHERE workflow_step IN ('a', 'b', 'c')""")
    eng._leader.elect()
    assert testing.run_round(eng, "workflows") == 1
    assert _states(eng, wf)["d"] == "available"


@pytest.mark.slow
def test_two_hundred_workflows_under_chaos(make_engine, conn, database_url, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    create_ledger(conn, prefix)
    flows = []
    for i in range(200):
        wf = (Workflow(name=f"flow-{i}")
              .add("a", StepJob.new({"ms": [50, 250]}, queue="work"))
              .add("b", StepJob.new({"ms": [50, 250]}, queue="work"), deps=["a"])
              .add("c", StepJob.new({"ms": [50, 250]}, queue="work"), deps=["a"])
              .add("d", StepJob.new({"ms": [50, 250]}, queue="work"), deps=["b", "c"]))
        flows.append(wf)
    env = {"CLUSTER_NODE_TTL": "2", "CLUSTER_LEASE": "2", "CLUSTER_HEARTBEAT": "0.5"}
    names = ["w1", "w2", "w3"]
    procs = {n: Node(n, database_url, prefix, **env).start() for n in names}
    started = list(procs.values())
    try:
        for wf in flows:
            eng.insert_all(wf)
        rng = random.Random(11)
        for _ in range(5):
            time.sleep(3)  # the chaos schedule: one kill -9 every three seconds
            victim = rng.choice(names)
            procs[victim].kill()
            procs[victim] = Node(victim, database_url, prefix, **env).start()
            started.append(procs[victim])
        wait_for(lambda: conn.execute(
            f"""SELECT count(*) FROM "{prefix}".lysmore_jobs
                WHERE state NOT IN ('completed', 'cancelled', 'discarded')""").fetchone()[0] == 0,
            timeout=30, what="every workflow resolved")
    finally:
        for node in started:
            node.kill()
    # d never started before both b and c completed.
    early = conn.execute(f"""
        SELECT d.id FROM "{prefix}".lysmore_jobs d
        JOIN "{prefix}".ledger l ON l.job_id = d.id
        JOIN "{prefix}".lysmore_jobs u ON u.workflow_id = d.workflow_id AND u.workflow_step IN ('b', 'c')
        WHERE d.workflow_step = 'd' AND (u.state <> 'completed' OR l.at < u.completed_at)""").fetchall()
    assert early == []
    # A step whose upstream failed for good was cancelled, never run.
    wrong = conn.execute(f"""
        SELECT d.id FROM "{prefix}".lysmore_jobs d
        JOIN "{prefix}".lysmore_jobs u ON u.workflow_id = d.workflow_id AND u.workflow_step = ANY(d.workflow_deps)
        WHERE u.state IN ('discarded', 'cancelled') AND d.state <> 'cancelled'""").fetchall()
    assert wrong == []
    failed = conn.execute(f"""SELECT count(*) FROM "{prefix}".lysmore_jobs WHERE state = 'discarded'""").fetchone()[0]
    assert failed > 0  # the random failures did happen
