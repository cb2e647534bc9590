"""The change gate and access: read-only, then rights, then job states; every attempt is audited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from engine import Engine
from tui.access import Access, DefaultResolver, ReadOnlyResolver, load_resolver, resolve_access
from tui.actions import ACTIONS, PERMISSIONS, actions_for, gated_for_key, help_sections
from tui.control import (
    Gate,
    jobs_request,
    node_pause_request,
    queue_node_pause_request,
    queue_pause_request,
    scale_request,
)

ALL = Access("ops", frozenset(PERMISSIONS), read_only=False)


class OnlyRetry:
    """A resolver that lets everyone retry and nothing else."""

    def resolve_user(self) -> str:
        return "carol"

    def resolve_access(self, user: str) -> Any:
        return {"retry_jobs"}

    def resolve_refresh(self, user: str) -> float:
        return 5


@pytest.fixture
def eng(database_url: str, seeded: str) -> Iterator[Engine]:
    e = Engine(database_url=database_url, prefix=seeded)
    yield e
    e.stop()


def state_of(conn: psycopg.Connection, prefix: str, job_id: int) -> str | None:
    row = conn.execute(
        sql.SQL("SELECT state::text FROM {}.lysmore_jobs WHERE id = %s").format(sql.Identifier(prefix)), (job_id,)
    ).fetchone()
    return None if row is None else row[0]


def audit_rows(conn: psycopg.Connection, prefix: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        sql.SQL("SELECT actor, action, targets, outcome, detail FROM {}.lysmore_audit WHERE id > 2 ORDER BY id")
        .format(sql.Identifier(prefix))
    ).fetchall()


# -- registry --------------------------------------------------------------------------------------
def test_registry_rules() -> None:
    for a in ACTIONS:
        if a.permission:
            assert a.permission in PERMISSIONS
            assert len(a.key) == 1 and a.key.isupper(), f"{a.id}: changes need an uppercase key"
        elif len(a.key) == 1 and a.key.isalpha():
            assert a.key.islower() or a.id == "select_all", f"{a.id}: uppercase keys are for changes"
    for scope in ("app", "queues", "queue", "jobs", "job", "nodes", "workflows", "workflow", "audit"):
        keys = [a.key for a in actions_for(scope)]
        assert len(keys) == len(set(keys)), f"duplicate key on {scope}"
    assert gated_for_key("jobs", "D") is not None and gated_for_key("jobs", "d") is None
    assert gated_for_key("queues", "C") is None
    titles = [t for t, _ in help_sections("jobs")]
    assert titles == ["Jobs", "Everywhere"]
    assert help_sections("audit")[0][0] == "Everywhere"


# -- access ----------------------------------------------------------------------------------------
def test_default_resolver_names_the_ssh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CLIENT", "10.1.2.3 51234 22")
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    access = resolve_access(None)
    assert access.user == "alice@10.1.2.3"
    assert access.rights == frozenset(PERMISSIONS) and not access.read_only
    monkeypatch.delenv("SSH_CLIENT")
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    assert DefaultResolver().resolve_user() == "alice"


def test_resolvers_by_path_class_or_object() -> None:
    for given in ("tests.tui.test_gate:OnlyRetry", "tests.tui.test_gate.OnlyRetry", OnlyRetry, OnlyRetry()):
        access = resolve_access(given)
        assert (access.user, access.rights, access.read_only, access.refresh) == (
            "carol", frozenset({"retry_jobs"}), False, 5.0,
        )
    assert resolve_access(ReadOnlyResolver).read_only
    assert resolve_access(OnlyRetry, read_only=True).rights == frozenset()
    with pytest.raises(ValueError):
        load_resolver("no.such.module:Thing")
    with pytest.raises(ValueError):
        load_resolver("justaname")


def test_a_failing_resolver_means_read_only() -> None:
    class Broken:
        def resolve_access(self, user: str) -> Any:
            raise RuntimeError("ldap down")

    access = resolve_access(Broken())
    assert access.read_only and not access.may("retry_jobs")
    assert access.why_not("retry_jobs") == "read-only"
    assert Access("x", frozenset({"cancel_jobs"}), False).why_not("retry_jobs") == "not allowed to retry jobs"


# -- the gate --------------------------------------------------------------------------------------
def test_gate_order_read_only_then_rights_then_states(eng: Engine) -> None:
    request = jobs_request("retry", [(6, "executing", "W"), (4, "retryable", "W")])
    ro = Gate(eng, Access("ro", frozenset(), read_only=True)).check(request)
    assert (ro.allowed, ro.outcome, ro.reason) == (False, "denied", "read-only")
    nope = Gate(eng, Access("x", frozenset({"cancel_jobs"}), False)).check(request)
    assert (nope.allowed, nope.outcome) == (False, "denied")
    ok = Gate(eng, ALL).check(request)
    assert ok.allowed and [t.key for t in ok.eligible] == [4] and ok.skipped == (("executing", 1),)
    none = Gate(eng, ALL).check(jobs_request("retry", [(6, "executing", "W")]))
    assert (none.allowed, none.outcome, none.reason) == (False, "rejected", "nothing to retry: 1 executing")
    assert not Gate(eng, ALL).check(jobs_request("delete", [])).allowed


def test_perform_changes_and_audits_in_one_transaction(eng: Engine, conn: psycopg.Connection, seeded: str) -> None:
    gate = Gate(eng, ALL)
    result = gate.perform(jobs_request("retry", [(4, "retryable", "W"), (6, "executing", "W")], "state:retryable"))
    assert result.ok and result.message == "Retried 1 job (1 skipped: executing)"
    assert state_of(conn, seeded, 4) == "available"
    actor, action, targets, outcome, detail = audit_rows(conn, seeded)[-1]
    assert (actor, action, targets, outcome) == ("ops", "retry_jobs", [4, 6], "allowed")
    assert detail["changed"] == [4] and detail["skipped"] == {"executing": 1}
    assert gate.perform(jobs_request("cancel", [(13, "available", "W")])).message == "Cancelled 1 job"
    assert state_of(conn, seeded, 13) == "cancelled"
    deleted = gate.perform(jobs_request("delete", [(5, "cancelled", "W"), (1, "completed", "W")]))
    assert deleted.message == "Deleted 2 jobs"
    assert state_of(conn, seeded, 5) is None and state_of(conn, seeded, 1) is None


def test_a_job_that_moved_on_is_reported_not_hidden(eng: Engine, conn: psycopg.Connection, seeded: str) -> None:
    # The user saw job 14 completed; it is executing by the time they confirm.
    conn.execute(sql.SQL("UPDATE {}.lysmore_jobs SET state = 'executing' WHERE id = 14").format(sql.Identifier(seeded)))
    result = Gate(eng, ALL).perform(jobs_request("delete", [(14, "completed", "W")]))
    assert result.message == "Deleted 0 jobs (1 skipped: changed meanwhile)"
    assert state_of(conn, seeded, 14) == "executing"


def test_if_the_audit_row_fails_nothing_changes(eng: Engine, conn: psycopg.Connection, seeded: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("audit table is gone")

    monkeypatch.setattr(eng, "record_audit", broken)
    result = Gate(eng, ALL).perform(jobs_request("retry", [(3, "discarded", "W")]))
    assert not result.ok and "audit table is gone" in result.message
    assert state_of(conn, seeded, 3) == "discarded"


def test_refusals_and_declines_are_audited(eng: Engine, conn: psycopg.Connection, seeded: str) -> None:
    ro = Gate(eng, Access("guest", frozenset(), read_only=True))
    request = jobs_request("delete", [(3, "discarded", "W")])
    result = ro.perform(request)  # even called directly, the gate refuses
    assert not result.ok
    ro.refuse(request, ro.check(request))
    Gate(eng, ALL).decline(queue_pause_request("default", False, 2))
    rows = audit_rows(conn, seeded)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("guest", "delete_jobs", "denied"), ("guest", "delete_jobs", "denied"), ("ops", "pause_queue", "declined"),
    ]
    assert rows[0][4]["reason"] == "read-only"
    assert state_of(conn, seeded, 3) == "discarded"


def settings(conn: psycopg.Connection, prefix: str) -> dict[tuple[str, str], tuple[Any, Any]]:
    rows = conn.execute(
        sql.SQL("SELECT queue, node, paused, local_limit FROM {}.lysmore_queue_settings").format(sql.Identifier(prefix))
    ).fetchall()
    return {(q, n): (p, limit) for q, n, p, limit in rows}


def test_queue_and_node_control(eng: Engine, conn: psycopg.Connection, seeded: str) -> None:
    gate = Gate(eng, ALL)
    assert gate.perform(queue_pause_request("default", False, 2)).message == "Paused default on 2 nodes"
    assert settings(conn, seeded)[("default", "*")][0] is True
    assert gate.perform(queue_pause_request("default", True, 2)).message == "Resumed default on 2 nodes"
    assert gate.perform(queue_node_pause_request("mailers", "node-a", False)).message == "Paused mailers on node-a"
    assert settings(conn, seeded)[("mailers", "node-a")][0] is True
    assert gate.perform(scale_request("mailers", 7, None, 2)).message == "Scaled mailers to 7 on 2 nodes"
    assert settings(conn, seeded)[("mailers", "*")][1] == 7
    assert gate.perform(node_pause_request("node-b", ("default", "media"), False)).message == "Paused 2 queues on node-b"
    s = settings(conn, seeded)
    assert s[("default", "node-b")][0] is True and s[("media", "node-b")][0] is True
    actions = [r[1] for r in audit_rows(conn, seeded)]
    assert actions == ["pause_queue", "resume_queue", "pause_queue", "scale_queue", "pause_node"]


def test_parse_scale_accepts_local_global_and_rate() -> None:
    from tui.control import ScaleChange, parse_scale

    assert parse_scale("20") == ScaleChange(local=20)
    assert parse_scale("global 10") == ScaleChange(global_allowed=10)
    assert parse_scale("5, g 3, r 20/30") == ScaleChange(5, 3, (20, 30.0))
    for bad in ("", "abc", "global -1", "rate 20", "rate 5/0", "local 20000"):
        with pytest.raises(ValueError):
            parse_scale(bad)
