"""Pure functions from snapshots to table rows and Rich text; no Textual, no database.

Every relative time is computed against the snapshot's ``now`` (the database clock, or a fixed
clock in tests), so what the screen says does not depend on the machine running the dashboard.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from .model import (
    STALE_AFTER_SECONDS,
    STATES,
    AuditRow,
    Count,
    JobDetail,
    JobRow,
    Limit,
    NodeRow,
    QueueNode,
    QueueRow,
    Step,
    WaitFacts,
    WorkflowRow,
)

# One palette for states, always paired with a glyph and the word (NO_COLOR loses nothing).
STATE_STYLE: dict[str, str] = {  # mid-tones (Solarized-like) that read on dark and light themes
    "scheduled": "#6c71c4",
    "available": "#268bd2",
    "executing": "#3c9a3c",
    "retryable": "#b58900",
    "completed": "#2aa198",
    "cancelled": "#a356c4",
    "discarded": "#dc322f",
    "held": "#839496",
}
STATE_GLYPH: dict[str, str] = {
    "scheduled": "◷",
    "available": "○",
    "executing": "▸",
    "retryable": "↻",
    "completed": "✓",
    "cancelled": "⊘",
    "discarded": "✗",
    "held": "‖",
}
SPARK = "▁▂▃▄▅▆▇█"
PAUSED = "‖"  # paused queues; states use single-width glyphs that never turn into emoji
STALE_HEARTBEAT = STALE_AFTER_SECONDS
MARK = "✔"
Cells = tuple[Any, ...]
Row = tuple[str, Cells]


# -- small formatters --------------------------------------------------------------------------
def fmt_duration(seconds: float, precise: bool = False) -> str:
    """``12s``, ``5m``, ``3h``, ``2d`` (with ``precise``: ``5m12s``, ``3h05m``, ``2d04h``)."""
    seconds = max(0.0, seconds)
    if seconds < 1 and seconds > 0:
        return f"{int(seconds * 1000)}ms" if precise else "0s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if precise else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m" if precise else f"{s // 3600}h"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h" if precise else f"{s // 86400}d"


def ago(when: datetime | None, now: datetime) -> str:
    """``3h ago`` or ``in 5m`` for ``when`` relative to ``now``; ``-`` for nothing."""
    if when is None:
        return "-"
    delta = (now - when).total_seconds()
    if delta >= 0:
        return f"{fmt_duration(delta)} ago"
    return f"in {fmt_duration(-delta)}"


def fmt_time(when: datetime | None) -> str:
    """An absolute time in UTC, to the second."""
    if when is None:
        return "-"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_int(value: int) -> str:
    """``1,234``; ``1.2M`` past ten million so a column stays narrow."""
    if value >= 10_000_000:
        return f"{value / 1_000_000:.1f}M"
    return f"{value:,}"


def fmt_count(count: Count | None) -> str:
    """An exact count as is, an estimate with ``~`` and in round figures."""
    if count is None:
        return "-"
    if count.exact:
        return fmt_int(count.value)
    value = count.value
    if value >= 1_000_000:
        return f"~{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"~{value / 1_000:.0f}k"
    return f"~{value}"


def state_text(state: str, short: bool = False) -> Text:
    """The state as glyph plus word in its colour (glyph only when ``short``)."""
    glyph = STATE_GLYPH.get(state, "?")
    return Text(glyph if short else f"{glyph} {state}", style=STATE_STYLE.get(state, ""))


def sparkline(values: Sequence[int]) -> str:
    """One character per value, scaled to the largest; blanks for zero."""
    top = max(values, default=0)
    if top <= 0:
        return "·" * len(values)
    chars = []
    for v in values:
        if v <= 0:
            chars.append(" ")
        else:
            chars.append(SPARK[min(len(SPARK) - 1, max(0, round(v / top * (len(SPARK) - 1))))])
    return "".join(chars)


def bar(used: int, limit: int, width: int = 5) -> str:
    """A bar of ``width`` cells filled in proportion to ``used``/``limit``."""
    if limit <= 0:
        return "░" * width
    filled = min(width, round(width * used / limit)) if used else 0
    if used and not filled:
        filled = 1
    return "█" * filled + "░" * (width - filled)


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def short_worker(worker: str, width: int = 24) -> str:
    """A worker's class name without its module path (the detail screen shows the whole)."""
    return shorten(worker.rsplit(".", 1)[-1], width)


def fmt_limit(limit: Limit | None) -> str:
    """``10`` for a global limit, ``100/60s`` for a rate limit, ``-`` for none."""
    if limit is None:
        return "-"
    text = str(limit.allowed)
    if limit.period:
        text += f"/{fmt_duration(limit.period)}"
    if limit.partition:
        text += f" by {limit.partition}"
    return text


# -- cluster summary and state lists -------------------------------------------------------------
def state_summary(states: Iterable[tuple[str, Count]]) -> Text:
    """One line of counts by state, each with its glyph: ``○ available 12  ▸ executing 3 ...``."""
    text = Text()
    for i, (state, count) in enumerate(states):
        if i:
            text.append("  ")
        text.append(f"{STATE_GLYPH[state]} {state} ", style=STATE_STYLE[state])
        text.append(fmt_count(count), style="bold")
    return text


def state_option(state: str | None, count: Count | None, width: int = 17) -> Text:
    """A line of the Jobs sidebar: glyph, state and its count right-aligned."""
    label = f"{STATE_GLYPH[state]} {state}" if state else "  all"
    number = fmt_count(count)
    pad = max(1, width - len(label) - len(number))
    return Text.assemble((label, STATE_STYLE.get(state or "", "")), " " * pad, number)


# -- queues ----------------------------------------------------------------------------------
# (key, label, smallest table width that shows the column; 0: always)
Column = tuple[str, str, int]
QUEUE_COLUMNS: tuple[Column, ...] = (
    ("queue", "queue", 0),
    ("exec", "exec/limit", 0),
    ("available", "avail", 0),
    ("oldest", "oldest", 0),
    ("nodes", "nodes", 0),
    ("done", "done/min", 0),
    ("failed", "fail/m", 0),
    ("scheduled", "sched", 0),
    ("retryable", "retry", 0),
    ("global", "global", 0),
    ("rate", "rate", 0),
)


def nodes_cell(nodes: int, paused: int, paused_everywhere: bool) -> Text:
    """``3/3`` when all run the queue, ``2/3 paused`` when some are paused, ``none`` when none do."""
    if not nodes:
        return Text("paused", style="bold #b58900") if paused_everywhere else Text("none", style="dim")
    if paused:
        return Text(f"{paused}/{nodes} paused", style="bold #b58900")
    return Text(f"{nodes}/{nodes}")


def queue_row(q: QueueRow, now: datetime, sparklines: bool = True) -> Row:
    """The cells of one queue on the Queues screen."""
    oldest = "-"
    oldest_style = ""
    if q.oldest_available_at is not None:
        wait = (now - q.oldest_available_at).total_seconds()
        oldest = fmt_duration(wait, precise=True)
        if wait > 300:
            oldest_style = "bold #dc322f"
        elif wait > 60:
            oldest_style = "#b58900"
    name = Text(q.name, style="bold")
    if q.paused:
        name = Text.assemble((f"{PAUSED} ", "#b58900"), (q.name, "bold"))
    exec_text = Text.assemble(bar(q.executing, q.local_limit), f" {q.executing}/{q.local_limit}")
    done_now = q.completed_per_minute[-1] if q.completed_per_minute else 0
    failed_now = q.failed_per_minute[-1] if q.failed_per_minute else 0
    done = f"{sparkline(q.completed_per_minute[-10:])} {done_now}" if sparklines else str(done_now)
    return q.name, (
        name,
        exec_text,
        fmt_count(q.available),
        Text(oldest, style=oldest_style),
        nodes_cell(q.nodes, q.nodes_paused, q.paused_everywhere),
        done,
        Text(str(failed_now), style="#dc322f" if failed_now else ""),
        fmt_count(q.scheduled),
        fmt_count(q.retryable),
        fmt_limit(q.global_limit),
        fmt_limit(q.rate_limit),
    )


QUEUE_NODE_COLUMNS: tuple[Column, ...] = (
    ("node", "node", 0),
    ("host", "host", 0),
    ("limit", "limit", 0),
    ("executing", "executing", 0),
    ("paused", "paused", 0),
    ("heartbeat", "heartbeat", 0),
)


def heartbeat_text(heartbeat_at: datetime, now: datetime) -> Text:
    """The heartbeat age, red (and marked) when the lease looks lost."""
    age = (now - heartbeat_at).total_seconds()
    if age > STALE_HEARTBEAT:
        return Text(f"✗ {fmt_duration(age)} ago", style="bold #dc322f")
    return Text(f"{fmt_duration(age)} ago")


def queue_node_row(n: QueueNode, now: datetime) -> Row:
    """One node's view of a queue on the queue detail screen."""
    return n.node_id, (
        Text(n.name, style="bold"),
        n.host,
        str(n.local_limit),
        Text.assemble(bar(n.executing, n.local_limit), f" {n.executing}"),
        Text(f"{PAUSED} paused", style="bold #b58900") if n.paused else Text("running"),
        heartbeat_text(n.heartbeat_at, now),
    )


def queue_summary(q: QueueRow | None, now: datetime, setting_paused: bool | None, setting_limit: int | None) -> Text:
    """The lines above the per-node table: counts, limits and the settings for every node."""
    if q is None:
        return Text("This queue has no jobs, producers or settings any more.", style="dim")
    text = Text()
    text.append(q.name, style="bold")
    text.append(f"  executing {q.executing}/{q.local_limit}")
    text.append(f"  available {fmt_count(q.available)}")
    text.append(f"  scheduled {fmt_count(q.scheduled)}")
    text.append(f"  retryable {fmt_count(q.retryable)}")
    text.append("\n")
    text.append(f"global {fmt_limit(q.global_limit)}  rate {fmt_limit(q.rate_limit)}  ")
    if q.oldest_available_at is not None:
        text.append(f"oldest available {fmt_duration((now - q.oldest_available_at).total_seconds(), True)}  ")
    every = []
    if setting_paused:
        every.append("paused")
    if setting_limit is not None:
        every.append(f"limit {setting_limit}")
    if every:
        text.append("all nodes: " + ", ".join(every), style="#b58900")
    return text


# -- jobs --------------------------------------------------------------------------------------
JOB_COLUMNS: tuple[Column, ...] = (
    ("mark", " ", 0),
    ("id", "id", 0),
    ("state", "state", 0),
    ("worker", "worker", 0),
    ("queue", "queue", 0),
    ("when", "when", 0),
    ("attempt", "att", 76),
    ("priority", "pri", 84),
    ("args", "args", 0),
)


def job_when(job: JobRow, now: datetime) -> str:
    """A relative time that fits the state: ``in 5m``, ``running 12s``, ``3h ago``."""
    state = job.state
    if state in ("scheduled", "retryable"):
        if job.scheduled_at > now:
            return f"in {fmt_duration((job.scheduled_at - now).total_seconds())}"
        return f"due {fmt_duration((now - job.scheduled_at).total_seconds())}"
    if state == "available":
        return f"waits {fmt_duration((now - job.scheduled_at).total_seconds())}"
    if state == "executing" and job.attempted_at is not None:
        return f"running {fmt_duration((now - job.attempted_at).total_seconds())}"
    if state == "held":
        return f"held {fmt_duration((now - job.inserted_at).total_seconds())}"
    return ago(job.finished_at or job.attempted_at or job.inserted_at, now)


def job_row(job: JobRow, now: datetime, marked: bool = False) -> Row:
    """The cells of one job in the jobs table."""
    return str(job.id), (
        Text(MARK, style="bold") if marked else "",
        str(job.id),
        state_text(job.state),
        short_worker(job.worker),
        shorten(job.queue, 16),
        job_when(job, now),
        f"{job.attempt}/{job.max_attempts}",
        str(job.priority),
        shorten(job.args_preview, 40),
    )


def page_status(page: int, rows: int, has_more: bool, marked: int, filter_text: str) -> Text:
    """The line above the jobs table: page, marks, filter."""
    text = Text()
    text.append(f"page {page}", style="bold")
    more = "+" if has_more else ""
    text.append(f" · {rows}{more} shown")
    if marked:
        text.append(f" · {marked} marked", style="bold #b58900")
    if filter_text:
        text.append(" · filter ")
        text.append(filter_text, style="italic")
    return text


# -- job detail --------------------------------------------------------------------------------
def pretty_json(value: Any) -> str:
    """JSON with two-space indents and keys in stored order."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def job_heading(job: JobDetail) -> Text:
    """``job 42 ▸ executing  Mailer  queue mailers  attempt 2/20  priority 0``."""
    text = Text()
    text.append(f"job {job.id} ", style="bold")
    text.append_text(state_text(job.state))
    text.append(f"  {job.worker}", style="bold")
    text.append(f"\nqueue {job.queue} · attempt {job.attempt}/{job.max_attempts} · priority {job.priority}")
    if job.tags:
        text.append(" · tags " + ", ".join(job.tags))
    if job.unique_key:
        text.append(f" · unique {shorten(job.unique_key, 40)}")
    return text


def timeline(job: JobDetail, now: datetime) -> list[Text]:
    """Inserted, scheduled, each attempt (with node and duration where known), final state, in time order."""
    events: list[tuple[datetime, int, str, str]] = []
    events.append((job.inserted_at, 0, f"inserted ({ago(job.inserted_at, now)})", ""))
    if job.attempt == 0 and (job.state == "scheduled" or abs((job.scheduled_at - job.inserted_at).total_seconds()) >= 1):
        events.append((job.scheduled_at, 1, f"scheduled to run ({ago(job.scheduled_at, now)})", STATE_STYLE["scheduled"]))
    failed = {e.attempt: e for e in job.errors}
    for err in job.errors:
        if err.attempt == job.attempt and job.attempted_at is not None:
            continue  # told together with the start of the latest attempt below
        first = err.error.splitlines()[0] if err.error else ""
        events.append((err.at or job.inserted_at, 2, f"attempt {err.attempt} failed: {shorten(first, 70)}",
                       STATE_STYLE["retryable"]))
    if job.attempted_at is not None and job.attempt:
        node = f" on {job.node}" if job.node else ""
        last = failed.get(job.attempt)
        end = job.completed_at or job.discarded_at or job.cancelled_at
        if last is not None and last.at is not None:
            took = fmt_duration((last.at - job.attempted_at).total_seconds(), True)
            first = last.error.splitlines()[0] if last.error else ""
            text, style = f"attempt {job.attempt}{node} failed after {took}: {shorten(first, 60)}", STATE_STYLE["retryable"]
        elif job.state == "executing":
            text, style = f"attempt {job.attempt} started{node}, running {fmt_duration((now - job.attempted_at).total_seconds(), True)}", STATE_STYLE["executing"]
        elif end is not None and end >= job.attempted_at:
            text, style = f"attempt {job.attempt} started{node}, took {fmt_duration((end - job.attempted_at).total_seconds(), True)}", ""
        else:
            text, style = f"attempt {job.attempt} started{node}", ""
        events.append((job.attempted_at, 3, text, style))
    final = {"completed": job.completed_at, "discarded": job.discarded_at, "cancelled": job.cancelled_at}
    if job.state in final and final[job.state] is not None:
        when = final[job.state]
        assert when is not None
        events.append((when, 4, f"{STATE_GLYPH[job.state]} {job.state}", STATE_STYLE[job.state]))
    elif job.state in ("retryable", "scheduled") and job.attempt:
        events.append((job.scheduled_at, 4, f"next attempt {ago(job.scheduled_at, now)}", STATE_STYLE[job.state]))
    events.sort(key=lambda e: (e[0], e[1]))
    return [Text.assemble((f"{fmt_time(when)}  ", "dim"), (what, style)) for when, _, what, style in events]


def why_waiting(job: JobDetail, facts: WaitFacts, steps: Sequence[Step], now: datetime) -> list[str]:
    """Why a waiting job is not running, in the order a user should check; empty when it runs."""
    if job.state not in ("available", "scheduled", "retryable", "held"):
        return []
    reasons: list[str] = []
    if job.state == "held":
        by_step = {s.step: s for s in steps}
        pending = [d for d in job.workflow_deps if by_step.get(d) is None or by_step[d].state != "completed"]
        if pending:
            parts = [f"{d} ({by_step[d].state})" if d in by_step else f"{d} (missing)" for d in pending]
            reasons.append("workflow dependency still pending: " + ", ".join(parts))
        else:
            reasons.append("held: waiting for its workflow to release it")
    if job.state in ("scheduled", "retryable") and job.scheduled_at > now:
        what = "retry" if job.state == "retryable" else "scheduled"
        reasons.append(f"{what} in the future: runs {ago(job.scheduled_at, now)} (at {fmt_time(job.scheduled_at)} UTC)")
    if not facts.queue_nodes:
        reasons.append(f"no node runs queue {job.queue}")
    elif facts.paused_nodes:
        if len(facts.paused_nodes) >= len(facts.queue_nodes):
            reasons.append(f"queue {job.queue} is paused on every node ({', '.join(facts.paused_nodes)})")
        else:
            reasons.append(f"queue {job.queue} is paused on {', '.join(facts.paused_nodes)}")
    elif facts.paused_everywhere:
        reasons.append(f"queue {job.queue} is paused")
    if facts.global_limit is not None and facts.executing_in_queue >= facts.global_limit.allowed:
        holders = ", ".join(f"{name} {n}" for name, n in facts.holders) or "none recorded"
        which = f"partition limit ({facts.global_limit.partition}) full" if facts.global_limit.partitioned \
            else "global limit full"
        reasons.append(
            f"{which}: {facts.executing_in_queue}/{facts.global_limit.allowed} executing (held by {holders})"
        )
    elif facts.queue_nodes and facts.local_limit_total and facts.executing_in_queue >= facts.local_limit_total:
        reasons.append(
            f"every node is at its local limit ({facts.executing_in_queue}/{facts.local_limit_total} executing)"
        )
    if facts.rate_limit is not None and facts.rate_used >= facts.rate_limit.allowed:
        nxt = f", next slot {ago(facts.rate_next_at, now)}" if facts.rate_next_at else ""
        reasons.append(
            f"rate window used up: {facts.rate_used}/{facts.rate_limit.allowed} started in the last "
            f"{fmt_duration(facts.rate_limit.period or 0)}{nxt}"
        )
    if job.state == "available" and facts.ahead:
        higher = f", {facts.ahead_higher_priority} of them with higher priority" if facts.ahead_higher_priority else ""
        reasons.append(f"{facts.ahead} {'job' if facts.ahead == 1 else 'jobs'} ahead of it in queue {job.queue}{higher}")
    if not reasons and job.state == "available":
        reasons.append("nothing holds it back: it should start at the next fetch")
    if not reasons and job.state in ("scheduled", "retryable"):
        reasons.append("due now: the stager makes it available within a second or so")
    return reasons


def errors_newest_first(job: JobDetail) -> list[tuple[Text, str]]:
    """Each failed attempt as (heading, traceback), newest first."""
    out = []
    for err in sorted(job.errors, key=lambda e: e.attempt, reverse=True):
        heading = Text.assemble(
            (f"attempt {err.attempt}", "bold"), f"  {fmt_time(err.at)}  ", (err.error, STATE_STYLE["discarded"])
        )
        out.append((heading, err.traceback.rstrip()))
    return out


def workflow_lines(job: JobDetail, steps: Sequence[Step]) -> list[Text]:
    """The job's place in its workflow: upstream steps, itself, downstream steps, with states."""
    if not job.workflow_id:
        return []
    by_step = {s.step: s for s in steps}
    me = job.workflow_step or "?"
    lines = [Text(f"workflow {job.workflow_name or ''} {job.workflow_id}".replace("  ", " "), style="bold")]
    for dep in job.workflow_deps:
        s = by_step.get(dep)
        lines.append(Text.assemble("  ↑ upstream   ", dep, " ", state_text(s.state) if s else Text("missing")))
    lines.append(Text.assemble("  • this step  ", (me, "bold"), " ", state_text(job.state)))
    for s in steps:
        if me in s.deps:
            lines.append(Text.assemble("  ↓ downstream ", s.step, " ", state_text(s.state)))
    return lines


# -- nodes -------------------------------------------------------------------------------------
NODE_COLUMNS: tuple[Column, ...] = (
    ("name", "node", 0),
    ("host", "host/pid", 0),
    ("started", "started", 0),
    ("heartbeat", "heartbeat", 0),
    ("executing", "exec", 0),
    ("queues", "queues", 0),
)


def node_row(n: NodeRow, now: datetime) -> Row:
    """One node on the Nodes screen, with a star for the leader."""
    name = Text.assemble(("★ " if n.leader else "  ", "bold #b58900"), (n.name, "bold"))
    queues = ", ".join(
        f"{PAUSED if q.paused else ''}{q.queue} {q.running}/{q.local_limit}" for q in n.queues
    ) or "-"
    return n.id, (
        name,
        f"{n.host}/{n.pid}",
        ago(n.started_at, now),
        heartbeat_text(n.heartbeat_at, now),
        str(n.executing),
        queues,
    )


# -- audit -------------------------------------------------------------------------------------
AUDIT_COLUMNS: tuple[Column, ...] = (
    ("at", "when", 0),
    ("actor", "user", 0),
    ("action", "action", 0),
    ("outcome", "outcome", 0),
    ("targets", "targets", 0),
)
OUTCOME_STYLE = {"allowed": "#3c9a3c", "denied": "bold #dc322f", "rejected": "#b58900", "declined": "dim"}


def fmt_targets(targets: Sequence[Any], width: int = 40) -> str:
    """Targets as a short comma-separated list with a count when cut."""
    items = [str(t) if not isinstance(t, dict) else ",".join(f"{k}={v}" for k, v in t.items()) for t in targets]
    text = ", ".join(items)
    if len(text) > width:
        return shorten(text, width - 6) + f" ({len(items)})"
    return text


def audit_row(a: AuditRow, now: datetime) -> Row:
    """One audit entry."""
    outcome = Text(f"{'✓' if a.outcome == 'allowed' else '✗'} {a.outcome}", style=OUTCOME_STYLE.get(a.outcome, ""))
    return str(a.id), (ago(a.at, now), shorten(a.actor, 20), a.action, outcome, fmt_targets(a.targets))


# -- workflows ---------------------------------------------------------------------------------
WORKFLOW_COLUMNS: tuple[Column, ...] = (
    ("name", "workflow", 0),
    ("progress", "progress", 0),
    ("states", "states", 0),
    ("inserted", "inserted", 0),
)


def workflow_row(w: WorkflowRow, now: datetime) -> Row:
    """One workflow with a progress bar of its completed steps."""
    done = w.count("completed")
    states = Text()
    for state in STATES:
        n = w.count(state)
        if n:
            if states:
                states.append(" ")
            states.append(f"{STATE_GLYPH[state]}{n}", style=STATE_STYLE[state])
    return w.id, (
        Text(w.name or w.id[:8], style="bold"),
        f"{bar(done, w.total, 8)} {done}/{w.total}",
        states,
        ago(w.inserted_at, now),
    )


def workflow_tree(steps: Sequence[Step]) -> list[Text]:
    """Steps as an indented dependency tree: roots first, each dependent under its dependency."""
    by_step = {s.step: s for s in steps}
    children: dict[str, list[Step]] = {}
    roots: list[Step] = []
    for s in steps:
        known = [d for d in s.deps if d in by_step]
        if not known:
            roots.append(s)
        else:
            children.setdefault(known[0], []).append(s)
    lines: list[Text] = []
    seen: set[str] = set()

    def walk(s: Step, depth: int) -> None:
        if s.step in seen:
            return
        seen.add(s.step)
        extra = [d for d in s.deps if d in by_step][1:]
        also = f"  (also after {', '.join(extra)})" if extra else ""
        lines.append(Text.assemble("  " * depth + ("└ " if depth else ""), state_text(s.state, short=True), " ",
                                   (s.step, "bold"), f"  {s.state}  job {s.job_id}{also}"))
        for child in children.get(s.step, []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    for s in steps:
        walk(s, 0)
    return lines


# -- frame -------------------------------------------------------------------------------------
def refresh_label(rate: float | None, stale_for: float | None, frozen: bool) -> Text:
    """The right end of the header: ``⟳ 2s``, ``off``, ``frozen`` or ``stale 14s``."""
    if stale_for is not None:
        return Text(f"stale {int(stale_for)}s", style="bold #dc322f")
    if frozen:
        return Text("frozen", style="bold #b58900")
    if rate is None:
        return Text("off", style="dim")
    return Text(f"⟳ {rate:g}s")


def header_text(
    view: str, database: str, prefix: str, nodes: int | None, leader: str | None,
    badges: Sequence[str], right: Text, width: int,
) -> Text:
    """One header line: left part cut to fit, the refresh state always visible on the right."""
    left = Text()
    left.append(" Lysmore ", style="bold reverse")
    left.append(f" {view} ", style="bold")
    left.append(f"│ {database} · {prefix} ")
    if nodes is not None:
        left.append(f"│ {plural_nodes(nodes)}")
        if leader:
            left.append(f" ★{leader}")
        left.append(" ")
    for badge in badges:
        left.append(" ")
        left.append(f" {badge} ", style="bold reverse #b58900")
    room = max(0, width - right.cell_len - 1)
    if left.cell_len > room:
        left.truncate(room, overflow="ellipsis")
    pad = max(1, width - left.cell_len - right.cell_len)
    return Text.assemble(left, " " * pad, right)


def plural_nodes(n: int) -> str:
    """``1 node``, ``3 nodes``."""
    return f"{n} node" if n == 1 else f"{n} nodes"
