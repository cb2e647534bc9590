"""The dashboard's read side on real PostgreSQL: snapshots, filters as bound SQL, counts, paging."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

import engine._inspect
import tui.data
from engine import Engine, GlobalLimit, Partition, RateLimit
from engine._queues import stored_global_limit, stored_rate_limit
from tests.tui.seed import NOW, clock
from tui.data import Store
from tui.filters import parse_filter
from tui.model import STATES, Count
from tui.presenters import why_waiting


@pytest.fixture
def store(database_url: str, seeded: str) -> Iterator[Store]:
    eng = Engine(database_url=database_url, prefix=seeded)
    yield Store(eng, clock=clock)
    eng.stop()


def test_queues_snapshot(store: Store) -> None:
    snap = store.queues()
    assert snap.now == NOW
    assert snap.cluster.nodes == 2 and snap.cluster.leader == "node-a"
    assert dict(snap.states)["available"] == Count(5)
    by_name = {q.name: q for q in snap.queues}
    assert list(by_name) == ["default", "mailers", "media", "reports"]
    default = by_name["default"]
    assert (default.executing, default.local_limit, default.nodes) == (2, 20, 2)  # node-old's lease is gone
    assert default.rate_limit == RateLimit(100, 60.0)
    # complete minutes, then the sliding minute up to NOW (12:00:00 sharp: the minute before)
    assert default.completed_per_minute[-3:] == (14, 11, 11)
    assert by_name["mailers"].global_limit == GlobalLimit(3)
    media = by_name["media"]
    assert (media.nodes, media.nodes_paused, media.paused) == (1, 1, True)
    assert media.oldest_available_at == NOW - timedelta(minutes=8)
    reports = by_name["reports"]
    assert reports.nodes == 0 and reports.paused_everywhere and reports.paused


def test_queue_detail_per_node(store: Store) -> None:
    snap = store.queue_detail("default")
    assert [(n.name, n.local_limit, n.executing, n.paused) for n in snap.nodes] == [
        ("node-a", 10, 2, False), ("node-b", 10, 0, False),
    ]
    assert snap.queue is not None and snap.queue.name == "default"
    assert store.queue_detail("nope").queue is None


FILTERS = [
    ("", list(range(18, 0, -1))),
    ("state:available,executing !queue:media", [17, 13, 12, 7, 6]),
    ("queue:mailers", [8, 7, 5, 2]),
    ("args.account_id:7", [13, 3]),
    ('args.account_id:"7"', []),
    ("args.email:*", [7, 2]),
    ("meta.source:api", [13]),
    ("args.deep:true", [17]),
    ("age:>50m", [9, 3, 2, 1]),
    ("age:<1m", [13]),
    ('error:"refused"', [4]),
    ("error:DEADLOCK", [14]),
    ("tag:billing", [4, 3]),
    ("!tag:billing state:retryable,discarded,completed", [15, 14, 2, 1]),
    ("Charge", [4, 3]),
    ("charge !attempt:>2", [4]),
    ("worker:Thumb", [11, 10]),
    ("priority:>0", [10]),
    ("node:node-a", [17, 15, 6, 3, 1]),
    ("attempt:>=2", [14, 4, 3]),
    ("id:3,4", [4, 3]),
    ("id:<3", [2, 1]),
    ('queue:"x\'; DROP TABLE jobs; --"', []),
    ('error:"100%"', []),
    ("!state:completed,executing,available", [18, 9, 8, 5, 4, 3]),
    ("queue:media,reports", [16, 15, 12, 11, 10]),
    ("worker:Report,Thumb", [12, 11, 10, 6, 1]),
    ("worker:nobody", []),
    ("!worker:nobody", list(range(18, 0, -1))),
    ("node:node-b,node-old", [14, 7, 4, 2]),
    ("!node:node-a", [18, 16, 14, 13, 12, 11, 10, 9, 8, 7, 5, 4, 2]),
    ("tag:nope", []),
    ("meta.source:*", [13]),
    ("meta.source:cron", []),
    ("!meta.source:api state:available", [16, 12, 11, 10]),
    ("args.account_id:7,8", [13, 4, 3]),
    ("args.report:*,daily", [12, 6, 1]),
    ("args.a.b:*", []),
    ("attempt:3", [3]),
    ("attempt:>10", []),
    ("priority:1", [10]),
    ("priority:5", []),
    ("age:>1d", []),
    ('error:"File \\"app/workers.py\\""', [14, 4, 3]),
    ("error:attempt", []),
    ("!error:refused state:retryable,discarded", [3]),
]


@pytest.mark.parametrize(("text", "ids"), FILTERS)
def test_filter_qualifiers_select_the_right_jobs(store: Store, text: str, ids: list[int]) -> None:
    assert [r.id for r in store.jobs(None, parse_filter(text)).rows] == ids


@pytest.mark.parametrize(("text", "ids"), FILTERS)
def test_filters_find_the_same_jobs_through_windows_and_spans(
    store: Store, text: str, ids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window of 2 ids and spans of 4, then 8, ...: the paths a million jobs take, on 18.
    monkeypatch.setattr(tui.data, "RECENT_WINDOW", 2)
    monkeypatch.setattr(tui.data, "SPAN_GROWTH", 2)
    assert [r.id for r in store.jobs(None, parse_filter(text)).rows] == ids
    paged: list[int] = []
    before = None
    while True:
        snap = store.jobs(None, parse_filter(text), before=before, limit=2)
        paged += [r.id for r in snap.rows]
        if not snap.has_more:
            break
        before = snap.rows[-1].id
    assert paged == ids


@pytest.mark.parametrize(
    "text",
    ["worker:Report,Sync", "node:node-a,node-b", "args.report:*", "age:>50m", "age:<50m", "Charge",
     "queue:default", "!tag:billing", "tag:billing age:>1m"],
)
def test_a_state_list_and_a_filter_find_the_same_jobs_through_spans(
    store: Store, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The live side is searched once and the finished side in spans: each state's list agrees with
    # the whole list, however the jobs are found.
    everything = [(r.id, r.state) for r in store.jobs(None, parse_filter(text)).rows]
    monkeypatch.setattr(tui.data, "RECENT_WINDOW", 2)
    monkeypatch.setattr(tui.data, "SPAN_GROWTH", 2)
    # The whole list too: the live side read once (no filter index serves age, queue or a negated
    # term) or in two parts (one does), the same jobs in the same order.
    assert [(r.id, r.state) for r in store.jobs(None, parse_filter(text)).rows] == everything
    for state in STATES:
        assert [r.id for r in store.jobs(state, parse_filter(text)).rows] == [i for i, s in everything if s == state]


def test_filters_without_the_filter_indexes(store: Store, conn: psycopg.Connection, seeded: str,
                                            database_url: str) -> None:
    """A schema from before migration 5 (no filter indexes, no error text function) filters the same."""
    conn.execute(sql.SQL("DROP FUNCTION {}.lysmore_error_text(jsonb) CASCADE").format(sql.Identifier(seeded)))
    eng = Engine(database_url=database_url, prefix=seeded)
    old = Store(eng, clock=clock)
    try:
        for text, ids in FILTERS:
            if text == "error:attempt":  # the JSON of the errors, keys included, is searched instead
                continue
            assert [r.id for r in old.jobs(None, parse_filter(text)).rows] == ids, text
    finally:
        eng.stop()


def test_worker_patterns_with_too_many_workers_to_list(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tui.data, "WORKER_NAMES_MAX", 3)
    assert [r.id for r in store.jobs(None, parse_filter("worker:Report,Thumb")).rows] == [12, 11, 10, 6, 1]
    assert [r.id for r in store.jobs(None, parse_filter("Charge")).rows] == [4, 3]


def test_filters_compile_without_a_connection(store: Store) -> None:
    conds, params = store.compile_filter(parse_filter("worker:Mail error:x tag:a queue:q"), NOW)
    assert len(conds) == 4 and params["f0"] == ["%Mail%"] and params["f1"] == "%x%"


def test_state_list_and_filter_combine(store: Store) -> None:
    rows = store.jobs("available", parse_filter("queue:media")).rows
    assert [r.id for r in rows] == [16, 11, 10]


def test_keyset_paging(store: Store) -> None:
    first = store.jobs(None, None, limit=5)
    assert [r.id for r in first.rows] == [18, 17, 16, 15, 14] and first.has_more
    second = store.jobs(None, None, before=first.rows[-1].id, page=2, limit=5)
    assert [r.id for r in second.rows] == [13, 12, 11, 10, 9] and second.page == 2
    last = store.jobs(None, None, before=4, limit=5)
    assert [r.id for r in last.rows] == [3, 2, 1] and not last.has_more


def test_select_matching_is_capped(store: Store) -> None:
    sel = store.select_matching(None, parse_filter("state:completed"))
    assert sel.ids == ((15, "completed", "app.workers.Fetch"), (14, "completed", "app.workers.Sync"),
                       (2, "completed", "app.workers.Welcome"), (1, "completed", "app.workers.Report"))
    assert not sel.capped
    capped = store.select_matching(None, parse_filter(""), cap=3)
    assert len(capped.ids) == 3 and capped.capped


def test_counts_are_estimated_when_large(store: Store, conn: psycopg.Connection, seeded: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    conn.execute(sql.SQL("ANALYZE {}.lysmore_jobs").format(sql.Identifier(seeded)))
    monkeypatch.setattr(engine._inspect, "EXACT_BELOW", 3)
    states = dict(store.queues().states)
    assert not states["available"].exact and states["available"].value > 0
    assert states["discarded"] == Count(1)  # small states stay exact
    media = next(q for q in store.queues().queues if q.name == "media")
    assert not media.available.exact


def test_reads_are_read_only_with_a_statement_timeout(store: Store) -> None:
    with store.transaction() as c:
        assert c.execute("SHOW statement_timeout").fetchone() == ("5s",)
        assert c.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert c.execute("SHOW plan_cache_mode").fetchone() == ("force_custom_plan",)


def test_job_detail_and_wait_facts(store: Store) -> None:
    snap = store.job(16)
    assert snap.job is not None and snap.job.workflow_step == "resize"
    assert [s.step for s in snap.steps] == ["fetch", "resize", "scan", "publish"]
    assert snap.facts.paused_nodes == ("node-b",) and snap.facts.ahead == 1
    retry = store.job(4)
    assert retry.job is not None and [e.attempt for e in retry.job.errors] == [1, 2]
    assert retry.job.errors[0].error == "RuntimeError: connection refused"
    assert store.job(999).job is None
    nobody = store.job(12).facts
    assert nobody.queue_nodes == () and nobody.paused_everywhere


def test_nodes_audit_workflows(store: Store) -> None:
    nodes = store.nodes().nodes
    assert [(n.name, n.leader, n.executing) for n in nodes] == [
        ("node-a", True, 2), ("node-b", False, 1), ("node-old", False, 0),
    ]
    assert [q.queue for q in nodes[1].queues if q.paused] == ["media"]
    audit = store.audit().rows
    assert [(a.action, a.outcome) for a in audit] == [("delete_jobs", "denied"), ("pause_queue", "allowed")]
    flows = store.workflows().rows
    assert len(flows) == 1 and flows[0].name == "ingest" and flows[0].total == 4
    assert flows[0].count("completed") == 1
    assert [s.step for s in store.workflow(flows[0].id).steps] == ["fetch", "resize", "scan", "publish"]


def test_limits_are_read_defensively() -> None:
    assert stored_global_limit(None) is None
    assert stored_global_limit(5) == GlobalLimit(5)
    by = stored_rate_limit({"allowed": 3, "period": 60, "partition": {"fields": ["worker", "args"], "keys": ["id"]}})
    assert by == RateLimit(3, 60.0, Partition(worker=True, args=True, keys=("id",)))
    assert by.partitioned and by.partition is not None and by.partition.label == "worker,args.id"
    assert stored_global_limit('{"allowed": 2}') == GlobalLimit(2)
    assert stored_global_limit({"allowed": "many"}) is None
    assert stored_global_limit("not json") is None
    assert stored_global_limit([1, 2]) is None


def test_an_empty_instance_reads_fine(database_url: str, make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    store = Store(eng)
    snap = store.queues()
    assert snap.queues == () and snap.cluster.nodes == 0
    assert store.jobs().rows == ()
    assert store.nodes().nodes == () and store.audit().rows == () and store.workflows().rows == ()


def test_why_waiting_reads_partitions_and_the_rate_log(store: Store, conn: psycopg.Connection, seeded: str) -> None:
    s = sql.Identifier(seeded)
    conn.execute(sql.SQL("UPDATE {}.lysmore_queue_settings SET global_limit = %s WHERE queue = 'default'").format(s),
                 (json.dumps({"allowed": 1, "partition": {"fields": ["args"], "keys": ["account_id"]}}),))
    conn.execute(sql.SQL("UPDATE {}.lysmore_jobs SET args = '{{\"account_id\": 7}}' WHERE id = 6").format(s))
    conn.execute(sql.SQL("INSERT INTO {}.lysmore_rate_log (queue, partition, started_at)"
                         " SELECT 'default', '', %s FROM generate_series(1, 100)").format(s),
                 (NOW - timedelta(seconds=30),))
    snap = store.job(13)  # available in default, account 7
    assert snap.job is not None
    facts = snap.facts
    assert facts.global_limit is not None and facts.global_limit.partition is not None and facts.global_limit.partition.label == "args.account_id"
    assert facts.holders == (("node-a", 1),)  # job 17 runs in default too, but for another account
    assert (facts.rate_used, facts.rate_next_at) == (100, NOW + timedelta(seconds=30))
    reasons = why_waiting(snap.job, facts, snap.steps, snap.now)
    assert reasons[0] == "partition limit (args.account_id) full: 1/1 executing (held by node-a 1)"
    assert reasons[1] == "rate window used up: 100/100 started in the last 1m, next slot in 30s"
