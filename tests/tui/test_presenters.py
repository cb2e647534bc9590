"""Presenters: pure functions from snapshots to cells and text, tested without Textual or a database."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rich.text import Text

from engine import GlobalLimit, Partition, RateLimit
from tui.model import (
    Attempt,
    Count,
    JobDetail,
    JobRow,
    NodeQueue,
    NodeRow,
    QueueRow,
    Step,
    WaitFacts,
)
from tui.presenters import (
    STATE_GLYPH,
    STATE_STYLE,
    ago,
    bar,
    errors_newest_first,
    fmt_count,
    fmt_duration,
    fmt_limit,
    header_text,
    job_row,
    job_when,
    node_row,
    queue_row,
    refresh_label,
    sparkline,
    state_text,
    timeline,
    why_waiting,
    workflow_lines,
    workflow_tree,
)

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``NOW`` shifted by ``seconds`` (negative: in the past)."""
    return NOW + timedelta(seconds=seconds)


def job(**kw: object) -> JobRow:
    base = dict(
        id=7, state="available", queue="default", worker="app.workers.Mailer", attempt=0, max_attempts=20,
        priority=0, args_preview='{"a": 1}', tags=(), inserted_at=at(-600), scheduled_at=at(-60),
        attempted_at=None, finished_at=None, node=None,
    )
    base.update(kw)
    return JobRow(**base)  # type: ignore[arg-type]


def detail(**kw: object) -> JobDetail:
    base = dict(
        id=7, state="available", queue="mailers", worker="app.workers.Mailer", args={"a": 1}, meta={},
        tags=(), priority=1, attempt=0, max_attempts=20, errors=(), result=None, inserted_at=at(-600),
        scheduled_at=at(-60), attempted_at=None, completed_at=None, cancelled_at=None, discarded_at=None,
        node=None,
    )
    base.update(kw)
    return JobDetail(**base)  # type: ignore[arg-type]


def test_durations_and_relative_times() -> None:
    assert fmt_duration(12) == "12s"
    assert fmt_duration(300) == "5m"
    assert fmt_duration(312, precise=True) == "5m12s"
    assert fmt_duration(3 * 3600 + 300, precise=True) == "3h05m"
    assert fmt_duration(2 * 86400 + 4 * 3600, precise=True) == "2d04h"
    assert fmt_duration(-5) == "0s"
    assert ago(at(-3 * 3600), NOW) == "3h ago"
    assert ago(at(300), NOW) == "in 5m"
    assert ago(None, NOW) == "-"


def test_counts_show_estimates_with_a_tilde() -> None:
    assert fmt_count(Count(1234)) == "1,234"
    assert fmt_count(Count(1_234_567, exact=False)) == "~1.2M"
    assert fmt_count(Count(45_000, exact=False)) == "~45k"
    assert fmt_count(Count(12, exact=False)) == "~12"
    assert fmt_count(None) == "-"


def test_sparkline_and_bar() -> None:
    assert sparkline([0, 0, 0]) == "···"
    line = sparkline([0, 1, 4, 8])
    assert line[0] == " " and line[-1] == "█" and len(line) == 4
    assert bar(0, 10) == "░░░░░"
    assert bar(1, 100) == "█░░░░"  # anything running shows at least one cell
    assert bar(10, 10) == "█████"
    assert bar(3, 0) == "░░░░░"


def test_every_state_has_a_glyph_and_a_word() -> None:
    for state in STATE_STYLE:
        text = state_text(state)
        assert text.plain == f"{STATE_GLYPH[state]} {state}"
    assert len(set(STATE_GLYPH.values())) == len(STATE_GLYPH)


def test_job_when_fits_the_state() -> None:
    assert job_when(job(state="scheduled", scheduled_at=at(300)), NOW) == "in 5m"
    assert job_when(job(state="retryable", scheduled_at=at(-5)), NOW) == "due 5s"
    assert job_when(job(state="available", scheduled_at=at(-90)), NOW) == "waits 1m 30s"
    assert job_when(job(state="executing", attempted_at=at(-12)), NOW) == "running 12s"
    assert job_when(job(state="completed", finished_at=at(-3 * 3600)), NOW) == "3h ago"
    assert job_when(job(state="held", inserted_at=at(-240)), NOW) == "held 4m"


def test_job_row_marks_and_keys() -> None:
    key, cells = job_row(job(), NOW, marked=True)
    assert key == "7"
    assert cells[0].plain == "✔"
    assert cells[3] == "Mailer"  # module path dropped in the table
    assert job_row(job(), NOW)[1][0] == ""


def test_queue_row_flags_a_stuck_paused_queue() -> None:
    q = QueueRow(
        name="mailers", executing=2, local_limit=10, nodes=3, nodes_paused=3, paused_everywhere=False,
        available=Count(40), scheduled=Count(1), retryable=Count(0), oldest_available_at=at(-600),
        completed_per_minute=(1, 2, 3), failed_per_minute=(0, 0, 2), global_limit=GlobalLimit(20),
        rate_limit=RateLimit(100, 60.0),
    )
    key, cells = queue_row(q, NOW)
    plain = [c.plain if isinstance(c, Text) else c for c in cells]
    assert key == "mailers"
    assert plain[0] == "‖ mailers"
    assert plain[1] == "█░░░░ 2/10"
    assert plain[3] == "10m00s"
    assert plain[4] == "3/3 paused"
    assert plain[9] == "20" and plain[10] == "100/1m"
    assert queue_row(q, NOW, sparklines=False)[1][5] == "3"
    some = replace(q, nodes_paused=1)
    assert not some.paused
    assert queue_row(some, NOW)[1][4].plain == "1/3 paused"
    assert queue_row(replace(q, nodes=0, nodes_paused=0, paused_everywhere=False), NOW)[1][4].plain == "none"


def test_limits_read_well() -> None:
    assert fmt_limit(None) == "-"
    assert fmt_limit(GlobalLimit(10)) == "10"
    assert fmt_limit(RateLimit(5, 1.0, Partition(worker=True))) == "5/1s by worker"


def test_why_waiting_lists_reasons_in_order() -> None:
    j = detail(state="scheduled", scheduled_at=at(300))
    facts = WaitFacts(
        queue_nodes=("a", "b"), paused_nodes=("b",), executing_in_queue=5, local_limit_total=20,
        global_limit=GlobalLimit(5), holders=(("a", 3), ("b", 2)), rate_limit=RateLimit(10, 60.0), rate_used=10,
        rate_next_at=at(20),
    )
    reasons = why_waiting(j, facts, (), NOW)
    assert reasons[0].startswith("scheduled in the future: runs in 5m")
    assert reasons[1] == "queue mailers is paused on b"
    assert reasons[2] == "global limit full: 5/5 executing (held by a 3, b 2)"
    assert reasons[3].startswith("rate window used up: 10/10 started in the last 1m, next slot in 20s")


def test_why_waiting_for_nodes_workflows_and_order() -> None:
    assert why_waiting(detail(), WaitFacts(), (), NOW) == ["no node runs queue mailers"]
    everywhere = WaitFacts(queue_nodes=("a",), paused_nodes=("a",))
    assert why_waiting(detail(), everywhere, (), NOW) == ["queue mailers is paused on every node (a)"]
    ahead = WaitFacts(queue_nodes=("a",), ahead=3, ahead_higher_priority=1, local_limit_total=5)
    assert why_waiting(detail(), ahead, (), NOW) == [
        "3 jobs ahead of it in queue mailers, 1 of them with higher priority"
    ]
    free = WaitFacts(queue_nodes=("a",), local_limit_total=5)
    assert why_waiting(detail(), free, (), NOW) == ["nothing holds it back: it should start at the next fetch"]
    held = detail(state="held", workflow_id="w", workflow_step="c", workflow_deps=("a", "b"))
    steps = (Step(1, "a", "completed", ()), Step(2, "b", "executing", ()))
    assert why_waiting(held, free, steps, NOW)[0] == "workflow dependency still pending: b (executing)"
    assert why_waiting(detail(state="completed"), WaitFacts(), (), NOW) == []


def test_timeline_and_errors_newest_first() -> None:
    errors = (
        Attempt(1, at(-500), "RuntimeError: one", "Traceback one"),
        Attempt(2, at(-200), "RuntimeError: two", "Traceback two"),
    )
    j = detail(
        state="completed", attempt=3, errors=errors, attempted_at=at(-100), completed_at=at(-95), node="web-1",
        inserted_at=at(-600), scheduled_at=at(-600),
    )
    lines = [t.plain for t in timeline(j, NOW)]
    assert lines[0].endswith("inserted (10m ago)")
    assert "attempt 1 failed: RuntimeError: one" in lines[1]
    assert "attempt 3 started on web-1, took 5s" in lines[3]
    assert lines[-1].endswith("✓ completed")
    newest = errors_newest_first(j)
    assert newest[0][0].plain.startswith("attempt 2") and newest[0][1] == "Traceback two"


def test_workflow_position_and_tree() -> None:
    steps = (
        Step(1, "fetch", "completed", ()), Step(2, "resize", "available", ("fetch",)),
        Step(3, "scan", "executing", ("fetch",)), Step(4, "publish", "held", ("resize", "scan")),
    )
    j = detail(state="available", workflow_id="w1", workflow_name="ingest", workflow_step="resize",
               workflow_deps=("fetch",))
    lines = [t.plain for t in workflow_lines(j, steps)]
    assert lines[1] == "  ↑ upstream   fetch ✓ completed"
    assert lines[3] == "  ↓ downstream publish ‖ held"
    tree = [t.plain for t in workflow_tree(steps)]
    assert tree[0].startswith("✓ fetch")
    assert tree[1].startswith("  └ ○ resize")
    assert "(also after scan)" in tree[2]
    assert len(tree) == 4


def test_node_row_marks_leader_and_stale_heartbeat() -> None:
    n = NodeRow(id="x", name="web-1", host="h", pid=1, started_at=at(-3600), heartbeat_at=at(-120), leader=True, live=False,
                queues=(NodeQueue("default", 10, True, 2),), executing=2)
    _, cells = node_row(n, NOW)
    assert cells[0].plain == "★ web-1"
    assert cells[3].plain == "✗ 2m ago"
    assert cells[5] == "‖default 2/10"


def test_header_keeps_the_refresh_state_visible() -> None:
    right = refresh_label(2.0, None, False)
    text = header_text("Queues", "db/test", "public", 3, "web-1", ["READ-ONLY"], right, 80)
    assert text.cell_len == 80
    assert text.plain.endswith("⟳ 2s")
    assert "READ-ONLY" in text.plain and "3 nodes ★web-1" in text.plain
    narrow = header_text("Queues", "a-very-long-host-name/db", "public", 3, None, ["FROZEN"],
                         refresh_label(2.0, 14.2, False), 40)
    assert narrow.cell_len == 40 and narrow.plain.endswith("stale 14s")
    assert refresh_label(None, None, False).plain == "off"
    assert refresh_label(5.0, None, True).plain == "frozen"


def test_core_modules_do_not_import_textual() -> None:
    code = (
        "import sys, tui, tui.filters, tui.layout, tui.presenters, tui.actions, tui.access, tui.data, tui.control, tui.model; "
        "print([m for m in ('textual',) if m in sys.modules]); sys.exit('textual' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_tui_imports_only_engine_of_ours() -> None:
    code = (
        "import sys, tui.app, tui.screenshots; "
        "bad = [m for m in ('demo', 'licensing', 'lysmore') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
