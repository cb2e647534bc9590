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

from engine import CronStatus, GlobalLimit, RateLimit, SentNotification

from .layout import Col, Item, fit_line
from .model import (
    STATES,
    WAITING_STATES,
    AuditRow,
    Count,
    JobDetail,
    JobRow,
    NodeRow,
    QueueNode,
    QueueRow,
    Sort,
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


def fmt_span(seconds: float) -> str:
    """A duration in its two largest units, never rounded to one: ``13s``, ``5m 12s``, ``2h 5m``,
    ``3d 4h`` (a zero second unit is left out: ``5m``, ``2h``)."""
    s = int(max(0.0, seconds))
    for size, unit, small, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s")):
        if s >= size:
            rest = (s % size) // small
            return f"{s // size}{unit} {rest}{small_unit}" if rest else f"{s // size}{unit}"
    return f"{s}s"


SPAN_WIDTH = 7  # the widest span below 100 days: "23h 59m", "99d 23h"


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


def short_worker(worker: str) -> str:
    """A worker's class name without its module path (the detail screen shows the whole)."""
    return worker.rsplit(".", 1)[-1]


def fmt_limit(limit: GlobalLimit | RateLimit | None) -> str:
    """``10`` for a global limit, ``100/60s`` for a rate limit, ``-`` for none."""
    if limit is None:
        return "-"
    text = str(limit.allowed)
    if isinstance(limit, RateLimit):
        text += f"/{fmt_duration(limit.period)}"
    if limit.partition:
        text += f" by {limit.partition.label}"
    return text


# -- cluster summary and state lists -------------------------------------------------------------
STATE_SHORT: dict[str, str] = {
    "available": "avail", "scheduled": "sched", "executing": "exec", "retryable": "retry",
    "completed": "done", "discarded": "disc", "cancelled": "canc", "held": "held",
}
# Finished states are shortened first; when even glyphs and counts do not fit, the states that say
# least about a stuck queue go first.
SUMMARY_SHRINK: dict[str, int] = {"completed": 0, "cancelled": 0, "discarded": 0, "held": 0}
SUMMARY_DROP: dict[str, int] = {
    "completed": 1, "cancelled": 2, "held": 3, "scheduled": 4, "discarded": 5, "retryable": 6,
    "executing": 7, "available": 8,
}


def state_summary(states: Iterable[tuple[str, Count]]) -> list[Item]:
    """Counts by state for one line: ``○ available 12``, else ``○ avail 12``, else ``○ 12``."""
    items = []
    for state, count in states:
        number = Text(fmt_count(count), style="bold")
        style = STATE_STYLE[state]
        items.append(Item((
            Text.assemble((f"{STATE_GLYPH[state]} {state} ", style), number),
            Text.assemble((f"{STATE_GLYPH[state]} {STATE_SHORT[state]} ", style), number),
            Text.assemble((f"{STATE_GLYPH[state]} ", style), number),
        ), drop=SUMMARY_DROP.get(state), shrink=SUMMARY_SHRINK.get(state, 1)))
    return items


def name_forms(name: str, style: str = "bold", widths: Sequence[int] = (24, 12)) -> tuple[Text, ...]:
    """A name whole, then ellipsised to each of ``widths`` where it is longer (forms of an ``Item``)."""
    forms = [Text(name, style=style)]
    forms += [Text(shorten(name, w), style=style) for w in widths if len(name) > w]
    return tuple(forms)


def labelled(label: str, name: str, style: str = "") -> tuple[Text, ...]:
    """``label`` then ``name`` whole, then with the name ellipsised (forms of an ``Item``)."""
    return tuple(Text.assemble(label, form) for form in name_forms(name, style))


def state_option(state: str | None, count: Count | None, width: int = 17) -> Text:
    """A line of the Jobs sidebar: glyph, state and its count right-aligned."""
    label = f"{STATE_GLYPH[state]} {state}" if state else "  all"
    number = fmt_count(count)
    pad = max(1, width - len(label) - len(number))
    return Text.assemble((label, STATE_STYLE.get(state or "", "")), " " * pad, number)


# -- queues ----------------------------------------------------------------------------------
# Narrow tables drop columns in ``drop`` order (``layout.fit_columns``); names shrink last.
QUEUE_COLUMNS: tuple[Col, ...] = (
    Col("queue", "queue", shrink_to=10),
    Col("exec", "exec/limit"),
    Col("available", "avail"),
    Col("oldest", "oldest", drop=8),
    Col("nodes", "nodes", drop=7),
    Col("done", "done/min", drop=5),
    Col("failed", "fail/m", drop=6),
    Col("scheduled", "sched", drop=4),
    Col("retryable", "retry", drop=3),
    Col("global", "global", drop=2),
    Col("rate", "rate", drop=1),
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
    if q.orphaned:  # held by nodes whose lease lapsed: outside every live limit, awaiting rescue
        exec_text.append(f" +{q.orphaned}✗", style="bold #dc322f")
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


QUEUE_NODE_COLUMNS: tuple[Col, ...] = (
    Col("node", "node", shrink_to=10),
    Col("host", "host", drop=1, shrink_to=8),
    Col("limit", "limit"),
    Col("executing", "executing"),
    Col("paused", "paused", drop=3),
    Col("heartbeat", "heartbeat", drop=2),
)


def heartbeat_text(heartbeat_at: datetime, now: datetime, live: bool) -> Text:
    """The heartbeat age, red (and marked) when the engine takes the node's lease for lost."""
    age = (now - heartbeat_at).total_seconds()
    if not live:
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
        heartbeat_text(n.heartbeat_at, now, n.live),
    )


def queue_summary(
    q: QueueRow | None, now: datetime, setting_paused: bool | None, setting_limit: int | None,
) -> list[list[Item]]:
    """The lines above the per-node table: counts, limits and the settings for every node."""
    if q is None:
        return [[Item.of(Text("This queue has no jobs, producers or settings any more.", style="dim"))]]
    counts = [
        Item.of(f"executing {q.executing}/{q.local_limit}", f"exec {q.executing}/{q.local_limit}"),
        *([Item.of(Text(f"+{q.orphaned} on lost nodes (rescued soon)", style="bold #dc322f"),
                   Text(f"+{q.orphaned} lost", style="bold #dc322f"))] if q.orphaned else []),
        Item.of(f"available {fmt_count(q.available)}", f"avail {fmt_count(q.available)}"),
        Item.of(f"scheduled {fmt_count(q.scheduled)}", f"sched {fmt_count(q.scheduled)}", ""),
        Item.of(f"retryable {fmt_count(q.retryable)}", f"retry {fmt_count(q.retryable)}", ""),
    ]
    limits = [
        Item.of(f"global {fmt_limit(q.global_limit)}", drop=2),
        Item.of(f"rate {fmt_limit(q.rate_limit)}", drop=1),
    ]
    if q.oldest_available_at is not None:
        age = fmt_duration((now - q.oldest_available_at).total_seconds(), True)
        limits.append(Item.of(f"oldest available {age}", f"oldest {age}"))
    every = (["paused"] if setting_paused else []) + ([f"limit {setting_limit}"] if setting_limit is not None else [])
    if every:
        limits.append(Item.of(Text("all nodes: " + ", ".join(every), style="#b58900"),
                              Text("all: " + ", ".join(every), style="#b58900")))
    return [[Item(name_forms(q.name), shrink=1), *counts], limits]


# -- jobs --------------------------------------------------------------------------------------
# Columns whose cells have a widest form are that wide from the start (states, times, counts), so
# widths hold from one refresh to the next; at 80x24 the queue goes before a time is ever cut.
STATE_WIDTH = 2 + max(len(s) for s in STATE_GLYPH)
WHEN_WIDTH = len("running ") + SPAN_WIDTH
JOB_COLUMNS: tuple[Col, ...] = (
    Col("mark", " ", width=1),
    Col("id", "id"),
    Col("state", "state", width=STATE_WIDTH),
    Col("worker", "worker", shrink_to=8),
    Col("queue", "queue", drop=5, shrink_to=8),
    Col("when", "when", width=WHEN_WIDTH),
    Col("took", "took", drop=0, width=SPAN_WIDTH),
    Col("attempt", "att", drop=2, width=5),
    Col("priority", "pri", drop=1, width=3),
    Col("args", "args", drop=3, shrink_to=8, shrink_early=True),
)


def job_when(job: JobRow, now: datetime) -> str:
    """A relative time that fits the state: ``in 5m``, ``running 12s``, ``3h ago``."""
    state = job.state
    if state in ("scheduled", "retryable"):
        if job.scheduled_at > now:
            return f"in {fmt_span((job.scheduled_at - now).total_seconds())}"
        return f"due {fmt_span((now - job.scheduled_at).total_seconds())}"
    if state == "available":
        return f"waits {fmt_span((now - job.scheduled_at).total_seconds())}"
    if state == "executing":
        took = job_took(job, now)
        return f"running {took}" if took else "running"
    if state == "held":
        return f"held {fmt_span((now - job.inserted_at).total_seconds())}"
    when = job.finished_at or job.attempted_at or job.inserted_at
    return f"{fmt_span((now - when).total_seconds())} ago" if when <= now else f"in {fmt_span((when - now).total_seconds())}"


def job_took(job: JobRow, now: datetime) -> str:
    """How long the last attempt ran: so far while it executes, start to end once finished; ``""``
    for a job that has not run (or whose end is not recorded)."""
    if job.attempted_at is None:
        return ""
    end = now if job.state == "executing" else job.finished_at
    if end is None or end < job.attempted_at:
        return ""
    return fmt_span((end - job.attempted_at).total_seconds())


def job_row(job: JobRow, now: datetime, marked: bool = False) -> Row:
    """The cells of one job in the jobs table."""
    return str(job.id), (
        Text(MARK, style="bold") if marked else "",
        str(job.id),
        state_text(job.state),
        short_worker(job.worker),
        job.queue,
        job_when(job, now),
        job_took(job, now),
        f"{job.attempt}/{job.max_attempts}",
        str(job.priority),
        shorten(job.args_preview, 40),
    )


SORT_ORDER_WORDS: dict[str, tuple[str, str]] = {  # key -> (largest first, smallest first)
    "id": ("newest", "oldest"), "attempt": ("most", "fewest"), "priority": ("9 first", "0 first"),
    "age": ("oldest", "newest"), "duration": ("longest", "shortest"),
}


def sort_label(sort: Sort, window: int | None = None) -> Item:
    """``sort age ↓ oldest`` (and how many newest ids a sort no index keeps read), shortened to ``age↓``."""
    arrow = "↓" if sort.descending else "↑"
    words = SORT_ORDER_WORDS[sort.key][0 if sort.descending else 1]
    within = f" of newest {fmt_int(window)}" if window else ""
    return Item.of(f"sort {sort.key} {arrow} {words}{within}", f"sort {sort.key}{arrow}{within}",
                   f"{sort.key}{arrow}", shrink=1)


def page_status(
    page: int, rows: int, has_more: bool, marked: int, filter_text: str, state: str | None = None,
    sort: Sort | None = None, sort_window: int | None = None,
) -> list[Item]:
    """The line above the jobs table: state, page, sort, marks, filter (ellipsised before anything goes)."""
    items = [Item.of(Text(f"{state} · page {page}" if state else f"page {page}", style="bold"))]
    items.append(Item.of(f"{rows}{'+' if has_more else ''} shown"))
    if sort is not None:
        items.append(sort_label(sort, sort_window))
    if marked:
        items.append(Item.of(Text(f"{marked} marked", style="bold #b58900")))
    if filter_text:
        items.append(Item(labelled("filter ", filter_text, "italic")))
    if not rows:
        items.append(Item.of(Text("no jobs match", style="dim"), drop=1))
    return items


# -- job detail --------------------------------------------------------------------------------
def pretty_json(value: Any) -> str:
    """JSON with two-space indents and keys in stored order."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def job_heading(job: JobDetail) -> list[list[Item]]:
    """``job 42 ▸ executing  app.workers.Mailer`` over ``queue mailers · attempt 2/20 · priority 0 · tags``."""
    # The whole dotted path, then the class name alone, then the class name ellipsised.
    worker = name_forms(job.worker, widths=())
    if short_worker(job.worker) != job.worker:
        worker += name_forms(short_worker(job.worker), widths=())
    worker += name_forms(short_worker(job.worker))[1:]
    # Priority, tags and unique key shorten and go before the queue's name is cut.
    second = [Item(labelled("queue ", job.queue), shrink=1), Item.of(f"attempt {job.attempt}/{job.max_attempts}"),
              Item.of(f"priority {job.priority}", f"pri {job.priority}", "")]
    if job.tags:
        second.append(Item((*labelled("tags ", ", ".join(job.tags)), Text())))
    if job.unique_key:
        second.append(Item((*labelled("unique ", job.unique_key), Text())))
    return [[Item.of(Text.assemble((f"job {job.id} ", "bold"), state_text(job.state))), Item(worker)], second]


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
    if job.state not in WAITING_STATES:
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
        which = f"partition limit ({facts.global_limit.partition.label}) full" if facts.global_limit.partition \
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
            f"{fmt_duration(facts.rate_limit.period)}{nxt}"
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
NODE_COLUMNS: tuple[Col, ...] = (
    Col("name", "node", shrink_to=10),
    Col("host", "host/pid", drop=2, shrink_to=8),
    Col("started", "started", drop=1),
    Col("heartbeat", "heartbeat", drop=3),
    Col("executing", "exec"),
    Col("queues", "queues", shrink_to=10, shrink_early=True),
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
        heartbeat_text(n.heartbeat_at, now, n.live),
        str(n.executing),
        queues,
    )


# -- audit -------------------------------------------------------------------------------------
AUDIT_COLUMNS: tuple[Col, ...] = (
    Col("at", "when"),
    Col("actor", "user", shrink_to=8),
    Col("action", "action", shrink_to=11),
    Col("outcome", "outcome"),
    Col("targets", "targets", shrink_to=8, shrink_early=True),
)
OUTCOME_STYLE = {"allowed": "#3c9a3c", "denied": "bold #dc322f", "rejected": "#b58900", "declined": "dim"}
NOTIFICATION_COLUMNS: tuple[Col, ...] = (
    Col("at", "when"),
    Col("status", "sent"),
    Col("channel", "channel", shrink_to=6, shrink_early=True),
    Col("what", "notification", shrink_to=12),
    Col("count", "×"),
    Col("message", "message", shrink_to=8, shrink_early=True),
)
NOTIFICATION_STYLE = {"sent": "#3c9a3c", "failed": "bold #dc322f", "rate_limited": "#b58900"}
NOTIFICATION_KIND = {"failure": "failed", "discard": "discarded", "stale_ack": "stale ack", "node_lost": "node lost"}


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
    return str(a.id), (ago(a.at, now), a.actor, a.action, outcome, fmt_targets(a.targets))


def notification_row(n: SentNotification, now: datetime) -> Row:
    """One notification of the error reporter: when, whether the channel took it, what it said."""
    who = n.worker.rsplit(".", 1)[-1] if n.worker else n.node
    what = f"{NOTIFICATION_KIND.get(n.kind, n.kind)} {who} {n.error_type}"
    status = Text(n.status.replace("_", " "), style=NOTIFICATION_STYLE.get(n.status, ""))
    message = n.message.splitlines()[0] if n.message else ""
    if n.status == "failed" and n.error:
        message = f"channel failed: {n.error}"
    return str(n.id), (ago(n.at, now), status, n.channel, what, str(n.count), message)


def audit_detail(a: AuditRow | None) -> list[list[Item]]:
    """The lines under the audit table for the entry under the cursor; long values are ellipsised."""
    if a is None:
        return [[Item.of(Text("No actions recorded yet.", style="dim"))]]
    lines = [
        [Item.of(Text(f"{fmt_time(a.at)} UTC", style="dim"), Text(fmt_time(a.at)[11:], style="dim"), ""),
         Item(name_forms(a.actor), shrink=1),
         Item.of(a.action), Item.of(Text(a.outcome, style=OUTCOME_STYLE.get(a.outcome, "")))],
        [Item.of(f"targets {fmt_targets(a.targets, 200)}")],
    ]
    if a.filter:
        lines.append([Item.of(f"filter {a.filter}")])
    if a.detail:
        lines.append([Item.of(f"detail {json.dumps(a.detail, default=str)[:300]}")])
    return lines


# -- workflows ---------------------------------------------------------------------------------
WORKFLOW_COLUMNS: tuple[Col, ...] = (
    Col("name", "workflow", shrink_to=10),
    Col("progress", "progress"),
    Col("states", "states", shrink_to=8, shrink_early=True),
    Col("inserted", "inserted", drop=1),
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
    return [
        Text.assemble("  " * depth + ("└ " if depth else ""), state_text(s.state, short=True), " ", (s.step, "bold"),
                      f"  {s.state}  job {s.job_id}" + (f"  (also after {', '.join(extra)})" if extra else ""))
        for s, depth, extra in tree_order(steps)
    ]


WORKFLOW_STEP_COLUMNS: tuple[Col, ...] = (
    Col("step", "step", shrink_to=12),
    Col("state", "state", width=STATE_WIDTH),
    Col("job", "job"),
    Col("after", "also after", drop=1, shrink_to=10, shrink_early=True),
)


def workflow_step_rows(steps: Sequence[Step]) -> list[Row]:
    """The dependency tree as table rows keyed by job id, so a step can be selected and opened."""
    return [
        (str(s.job_id), (
            Text.assemble("  " * depth + ("└ " if depth else ""), state_text(s.state, short=True), " ", (s.step, "bold")),
            state_text(s.state),
            str(s.job_id),
            ", ".join(extra),
        ))
        for s, depth, extra in tree_order(steps)
    ]


def tree_order(steps: Sequence[Step]) -> list[tuple[Step, int, list[str]]]:
    """Each step once, in tree order, with its depth and its dependencies beyond the one it hangs under."""
    by_step = {s.step: s for s in steps}
    children: dict[str, list[Step]] = {}
    roots: list[Step] = []
    for s in steps:
        known = [d for d in s.deps if d in by_step]
        if not known:
            roots.append(s)
        else:
            children.setdefault(known[0], []).append(s)
    order: list[tuple[Step, int, list[str]]] = []
    seen: set[str] = set()

    def walk(s: Step, depth: int) -> None:
        if s.step in seen:
            return
        seen.add(s.step)
        order.append((s, depth, [d for d in s.deps if d in by_step][1:]))
        for child in children.get(s.step, []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    for s in steps:
        walk(s, 0)
    return order


# -- frame -------------------------------------------------------------------------------------
def refresh_label(rate: float | None, stale_for: float | None, frozen: bool, paused: bool = False) -> Text:
    """The right end of the header: ``⟳ 2s``, ``off``, ``frozen``, ``paused`` (a dialog holds refreshes
    on purpose) or ``stale 14s``."""
    if stale_for is not None:
        return Text(f"stale {int(stale_for)}s", style="bold #dc322f")
    if paused:
        return Text("paused", style="bold #b58900")
    if frozen:
        return Text("frozen", style="bold #b58900")
    if rate is None:
        return Text("off", style="dim")
    return Text(f"⟳ {rate:g}s")


def header_text(
    view: str, database: str, prefix: str, nodes: int | None, leader: str | None,
    badges: Sequence[str], right: Text, width: int, *, several: bool = False,
) -> Text:
    """One header line: the refresh state always on the right, badges always shown; the leader's
    name, the database and the view's name are shortened, then the leader and the database go.
    With ``several`` instances in the run the prefix is an item of its own that never goes."""
    where = database if several else f"{database} · {prefix}"
    items = [
        Item.of(Text(" Lysmore ", style="bold reverse")),
        Item(tuple(Text(f" {form.plain} ", style="bold") for form in name_forms(view, widths=(20, 12))), shrink=1),
        Item(tuple(Text(f"│ {form.plain} ") for form in name_forms(where, "", (24, 12))), drop=2, shrink=2),
    ]
    if several:
        items.append(Item(tuple(Text.assemble("│ ", (form.plain, "bold underline"), " ")
                                for form in name_forms(prefix, widths=(24, 12))), shrink=2))
    if nodes is not None:
        count = f"│ {plural_nodes(nodes)} "
        names = name_forms(leader, "", (24, 16, 12)) if leader else ()
        forms = (*(f"{count}★{name.plain} " for name in names), count)
        items.append(Item.of(*forms, drop=1))
    items += [Item.of(Text.assemble(" ", (f" {badge} ", "bold reverse #b58900"))) for badge in badges]
    left = fit_line(items, max(0, width - right.cell_len - 1), sep="")
    return Text.assemble(left, " " * max(1, width - left.cell_len - right.cell_len), right)


def nodes_summary(registered: int, live: int, leader: str | None, pause_key: str) -> list[Item]:
    """The line above the nodes table: how many, who leads, what the pause key does."""
    return [
        Item.of(f"{registered} registered, {live} live"),
        Item(labelled("leader ★ ", leader or "none", "bold"), shrink=1),
        Item.of(Text(f"{pause_key} pauses all its queues", style="dim"), Text(f"{pause_key} pauses", style="dim"), ""),
    ]


def plural_nodes(n: int) -> str:
    """``1 node``, ``3 nodes``."""
    return f"{n} node" if n == 1 else f"{n} nodes"


# -- crons -------------------------------------------------------------------------------------
CRON_COLUMNS: tuple[Col, ...] = (
    Col("name", "entry", shrink_to=10),
    Col("schedule", "schedule", shrink_to=9),
    Col("timezone", "zone", drop=2, shrink_to=8, shrink_early=True),
    Col("last", "last run", drop=3),
    Col("next", "next run"),
    Col("runs", "runs"),
    Col("worker", "worker", drop=1),
)
CRON_GONE = "·"  # a run whose job was pruned or deleted


def cron_runs_text(c: CronStatus) -> Text:
    """The newest runs' jobs as state glyphs, oldest left, newest right; ``-`` before any run."""
    if not c.recent:
        return Text("-", style="dim")
    text = Text()
    for run in reversed(c.recent):
        if run.state is None:
            text.append(CRON_GONE, style="dim")
        else:
            text.append(STATE_GLYPH.get(run.state, "?"), style=STATE_STYLE.get(run.state, ""))
    return text


def cron_next_text(c: CronStatus, now: datetime) -> Text:
    """When the entry runs next: ``in 5m``, ``‖ paused``, or ``inactive`` for an entry the leader's
    crontab no longer holds."""
    if not c.active:
        return Text("inactive", style="dim")
    if c.paused:
        return Text(f"{PAUSED} paused", style="bold #b58900")
    return Text(ago(c.next_run, now))


def cron_row(c: CronStatus, now: datetime) -> Row:
    """One cron entry on the Crons screen; a paused one is marked before its name."""
    name = Text.assemble((f"{PAUSED} " if c.paused else "  ", "bold #b58900"),
                         (c.name, "bold" if c.active else "dim"))
    return c.name, (
        name,
        c.expression,
        c.timezone,
        ago(c.last_run, now),
        cron_next_text(c, now),
        cron_runs_text(c),
        c.worker,
    )


def crons_summary(entries: Sequence[CronStatus], pause_key: str) -> list[Item]:
    """The line above the crons table: how many entries, how many paused, what the pause key does."""
    active = [c for c in entries if c.active]
    paused = sum(1 for c in active if c.paused)
    gone = len(entries) - len(active)
    counts = f"{len(active)} {'entry' if len(active) == 1 else 'entries'}, {paused} paused"
    return [
        Item.of(counts + (f", {gone} no longer in the crontab" if gone else ""), counts),
        Item.of(Text(f"{pause_key} pauses or resumes one", style="dim"), Text(f"{pause_key} pauses", style="dim"), ""),
    ]


def cron_detail(c: CronStatus | None, now: datetime) -> list[list[Item]]:
    """The lines under the crons table for the entry under the cursor: what it inserts, its newest
    runs in words (newest first), and who recorded it or since when it is paused."""
    if c is None:
        return [[Item.of(Text("No cron entries recorded: a leader records its crontab when it takes office.",
                              style="dim"), Text("No cron entries recorded.", style="dim"))]]
    args = json.dumps(c.args, separators=(",", ":"), default=str)
    lines = [[Item(name_forms(c.name), shrink=1), Item.of(f"{c.worker} → {c.queue}", shrink=2),
              Item.of(Text(f"args {shorten(args, 60)}", style="dim"), Text(f"args {shorten(args, 20)}", style="dim"),
                      "", shrink=3)]]
    runs: list[Item] = [Item.of("runs")]
    for i, run in enumerate(c.recent):
        word = run.state or "gone"
        style = STATE_STYLE.get(word, "dim")
        glyph = STATE_GLYPH.get(word, CRON_GONE)
        runs.append(Item.of(Text.assemble((f"{glyph} {word}", style), f" {ago(run.instant, now)}"),
                            Text(glyph, style=style), drop=len(c.recent) - i))
    if not c.recent:
        runs.append(Item.of(Text("none yet", style="dim")))
    lines.append(runs)
    if c.paused:
        since = f" since {ago(c.paused_at, now)}" if c.paused_at else ""
        state = Text(f"{PAUSED} paused{since}: inserts nothing until resumed", style="#b58900")
    elif not c.active:
        state = Text("not in the leader's crontab: it runs nowhere", style="dim")
    else:
        state = Text(f"next {fmt_time(c.next_run)} UTC", style="dim")
    lines.append([Item.of(state), Item.of(Text(f"recorded by {c.recorded_by or '?'} {ago(c.recorded_at, now)}",
                                                style="dim"), "", drop=1)])
    return lines
