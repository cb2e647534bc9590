"""The Charts view's model and presenter: what it shows of the per-minute rollups, drawn as text.

Charts are drawn here with block characters (``▁``..``█``, eight heights a cell), not with a
charting package: a column per slot fits the hour (60 minutes) and the day (72 slots of 20
minutes) at 80 columns with a y-axis beside it, a plain terminal (``tui.terminal``: ``TERM=vt100``,
``linux``, ``LYSMORE_ASCII=1``) gets ``#`` and ``:`` drawn for it rather than blocks its driver
would have to replace, and the dashboard takes on no dependency for it. Pure
functions of a snapshot, so they are tested without Textual.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text

from engine import Rollup, RollupSeries

from .model import Cluster

# span -> (slots, seconds a slot): an hour by the minute, a day by 20 minutes.
SPANS: dict[str, tuple[int, float]] = {"hour": (60, 60.0), "day": (72, 1200.0)}
SPAN_NAMES: tuple[str, ...] = tuple(SPANS)
AXIS = 7  # columns of the y-axis labels and their rule
EIGHTHS = " ▁▂▃▄▅▆▇█"
STYLE_DONE = "#2aa198"  # completed: cyan, as the state palette
STYLE_FAILED = "#dc322f"  # failed: red, as discarded
STYLE_P50 = "#859900"
STYLE_P95 = "#b58900"
STYLE_DIM = "dim"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a chart is of: every queue, one queue or one worker."""

    kind: str = "all"  # all | queue | worker
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("all", "queue", "worker"):
            raise ValueError(f"a chart is of all, a queue or a worker, not {self.kind!r}")
        if (self.kind == "all") != (self.name is None):
            raise ValueError("a queue or a worker chart needs a name, and only they take one")

    @property
    def queue(self) -> str | None:
        return self.name if self.kind == "queue" else None

    @property
    def worker(self) -> str | None:
        return self.name if self.kind == "worker" else None

    @property
    def label(self) -> str:
        return "all queues" if self.name is None else f"{self.kind} {self.name}"


ALL = Subject()


@dataclass(frozen=True, slots=True)
class ChartsSnapshot:
    """One subject's rollups over one span, and what else there is to chart."""

    now: datetime
    subject: Subject
    span: str
    series: RollupSeries
    queues: tuple[str, ...]
    workers: tuple[str, ...]
    cluster: Cluster

    @property
    def subjects(self) -> list[Subject]:
        return subjects(self.queues, self.workers)


def subjects(queues: Sequence[str], workers: Sequence[str]) -> list[Subject]:
    """Every subject in the order ``[`` and ``]`` step through them: all, the queues, the workers."""
    return [ALL, *(Subject("queue", q) for q in queues), *(Subject("worker", w) for w in workers)]


def step_subject(current: Subject, choices: Sequence[Subject], by: int) -> Subject:
    """The subject ``by`` places from ``current`` (round the list); the first when it is not there."""
    if not choices:
        return ALL
    if current not in choices:
        return choices[0]
    return choices[(list(choices).index(current) + by) % len(choices)]


def duration_text(seconds: float | None) -> str:
    """``0.4ms``, ``18ms``, ``1.2s``, ``2m05s``, ``1h20m``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m}m{s:02d}s"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h}h{m:02d}m"


def rate_text(value: float) -> str:
    """A per-minute figure: whole when large, one decimal when small."""
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _failed(r: Rollup) -> int:
    return r.failed + r.discarded


def bars(values: Sequence[float], top: float, height: int, style: str, plain: bool) -> list[Text]:
    """Vertical bars, a column per value, ``height`` rows (top row first), scaled to ``top``. A
    value above zero always shows (at least the lowest mark)."""
    rows = [Text() for _ in range(height)]
    for value in values:
        if plain:
            cells = 0 if top <= 0 else round(value / top * height)
            for r in range(height):
                level = height - 1 - r
                char = "#" if level < cells else ("." if level == 0 and value > 0 else " ")
                rows[r].append(char, style)
            continue
        eighths = 0 if top <= 0 else round(value / top * height * 8)
        if value > 0:
            eighths = max(1, eighths)
        for r in range(height):
            level = height - 1 - r
            rows[r].append(EIGHTHS[max(0, min(8, eighths - level * 8))], style)
    return rows


def log_scale(low: float, top: float) -> Callable[[float | None], float]:
    """Where a time falls between ``low`` (0) and ``top`` (1) on a log scale: p50 and p95 are often
    orders of magnitude apart, and both must read."""
    span = math.log(top / low) if top > low > 0 else 0.0

    def at(value: float | None) -> float:
        if not value or value <= 0:
            return 0.0
        if span <= 0:
            return 1.0
        return max(0.0, min(1.0, math.log(value / low) / span))

    return at


def time_bars(p50: Sequence[float | None], p95: Sequence[float | None], scale: Callable[[float | None], float],
              height: int, plain: bool) -> list[Text]:
    """p95 as a shaded bar with p50 drawn solid over it, a column per slot, placed by ``scale``
    (0 to 1); a slot with executions always shows at least the lowest mark."""
    rows = [Text() for _ in range(height)]
    for mid, high in zip(p50, p95, strict=True):
        mid_eighths = 0 if not mid else max(1, round(scale(mid) * height * 8))
        high_cells = 0 if not high else max(1, round(scale(high) * height))
        for r in range(height):
            level = height - 1 - r
            fill = max(0, min(8, mid_eighths - level * 8))
            if fill >= (4 if plain else 8):
                rows[r].append("#" if plain else "█", STYLE_P50)
            elif fill and not plain:
                rows[r].append(EIGHTHS[fill], STYLE_P50)
            elif level < high_cells:
                rows[r].append(":" if plain else "░", STYLE_P95)
            else:
                rows[r].append(" ")
    return rows


def _axis(label: str, rule: str) -> Text:
    return Text(f"{label[: AXIS - 1]:>{AXIS - 1}}{rule}", style=STYLE_DIM)


def _chart(title: Text, rows: list[Text], top_label: str, plain: bool, low_label: str = "0") -> list[Text]:
    """A chart's title line, then its rows with the y-axis: the top value, then a rule, the lowest
    value at the bottom."""
    out = [title]
    rule = "|" if plain else "│"
    for i, row in enumerate(rows):
        label = top_label if i == 0 else (low_label if i == len(rows) - 1 and len(rows) > 1 else "")
        out.append(_axis(label, rule) + row)
    return out


def time_axis(span: str, columns: int, plain: bool) -> Text:
    """Tick labels under the charts, every quarter of the span (``-45m``, ``-6h``), ``now`` at the
    right edge; a tick whose slot was cut off by the width is left out."""
    slots, step = SPANS[span]
    line = [" "] * columns
    whole = slots * step
    for quarter in range(5):
        ago = whole * quarter / 4
        col = columns - 1 if quarter == 0 else columns - round(ago / step)
        if col < 0:
            continue
        label = "now" if quarter == 0 else (f"-{ago / 3600:g}h" if span == "day" else f"-{ago / 60:g}m")
        start = col - len(label) + 1 if quarter == 0 else min(max(0, col - len(label) // 2), columns - len(label))
        if start >= 0 and all(c == " " for c in line[max(0, start - 1): start + len(label) + 1]):
            line[start: start + len(label)] = list(label)
    rule = "+" if plain else "└"
    return Text(" " * (AXIS - 1) + rule + "".join(line), style=STYLE_DIM)


def heights(room: int) -> tuple[int, int, int]:
    """Rows for the completed, failed and time charts out of ``room`` (at least 2, 1 and 2)."""
    room = max(5, room)
    failed = max(1, room // 5)
    done = max(2, (room - failed) // 2)
    return done, failed, max(2, room - failed - done)


def selector_line(snapshot: ChartsSnapshot, keys: tuple[str, str, str], plain: bool) -> Text:
    """Which subject and span are shown, where the subject is in the list, and the keys to change them."""
    choices = snapshot.subjects
    place = choices.index(snapshot.subject) + 1 if snapshot.subject in choices else 0
    prev_key, next_key, span_key = keys
    text = Text()
    text.append(snapshot.subject.label, "bold")
    text.append(f" ({place}/{len(choices)})" if place else " (no rollups)", STYLE_DIM)
    sep = " | " if plain else " · "
    text.append("  ")
    for name in SPAN_NAMES:
        text.append(f"[{name}]" if name == snapshot.span else f" {name} ", "bold reverse" if name == snapshot.span else STYLE_DIM)
    text.append(f"  {prev_key} {next_key} subject{sep}{span_key} hour/day", STYLE_DIM)
    return text


def summary_line(snapshot: ChartsSnapshot, plain: bool = False) -> Text:
    """The span's totals: completed, failed, and p50/p95 of every execution in it."""
    total = snapshot.series.total()
    sep = " | " if plain else " · "
    text = Text()
    text.append(f"{total.completed:,} completed", STYLE_DONE)
    text.append(sep, STYLE_DIM)
    text.append(f"{_failed(total):,} failed", STYLE_FAILED if _failed(total) else "")
    text.append(sep, STYLE_DIM)
    text.append(f"p50 {duration_text(total.percentile(0.5))}", STYLE_P50)
    text.append(sep, STYLE_DIM)
    text.append(f"p95 {duration_text(total.percentile(0.95))}", STYLE_P95)
    if total.executions < total.completed + total.failed + total.discarded:
        text.append(f"{sep}some minutes have no times", STYLE_DIM)
    return text


def chart_lines(snapshot: ChartsSnapshot, width: int, height: int, keys: tuple[str, str, str] = ("[", "]", "t"),
                plain: bool = False) -> list[Text]:
    """The whole view as lines fitted to ``width`` x ``height``: the selector, the totals, the
    completed and failed per minute, p50/p95 execution time, and the time axis. The oldest slots
    are left out when the width cannot hold them all."""
    columns = max(1, min(len(snapshot.series.slots), width - AXIS))
    slots = snapshot.series.slots[-columns:]
    per_minute = snapshot.series.step / 60.0
    done = [r.completed / per_minute for r in slots]
    failed = [_failed(r) / per_minute for r in slots]
    p50 = [r.percentile(0.5) for r in slots]
    p95 = [r.percentile(0.95) for r in slots]
    h_done, h_failed, h_time = heights(height - 6)
    every = " (average of 20 min)" if snapshot.span == "day" else ""
    top_done = max(done, default=0.0)
    top_failed = max(failed, default=0.0)
    top_time = max((v for v in p95 if v), default=0.0)
    low_time = min((v for v in p50 if v), default=0.0) / 2  # the fastest p50 stands half a step up
    lines = [selector_line(snapshot, keys, plain), summary_line(snapshot, plain)]
    lines += _chart(Text.assemble(("completed / min", STYLE_DONE), (every, STYLE_DIM)),
                    bars(done, top_done, h_done, STYLE_DONE, plain), rate_text(top_done), plain)
    lines += _chart(Text.assemble(("failed / min", STYLE_FAILED), (every, STYLE_DIM)),
                    bars(failed, top_failed, h_failed, STYLE_FAILED, plain), rate_text(top_failed), plain)
    key = Text.assemble(("execution time (log scale) ", ""), ("p50 ", STYLE_P50), ("#" if plain else "█", STYLE_P50),
                        ("  p95 ", STYLE_P95), (":" if plain else "░", STYLE_P95))
    if top_time == 0:
        key.append("  no times recorded", STYLE_DIM)
    lines += _chart(key, time_bars(p50, p95, log_scale(low_time, top_time), h_time, plain),
                    duration_text(top_time) if top_time else "", plain, duration_text(low_time) if top_time else "0")
    lines.append(time_axis(snapshot.span, columns, plain))
    for line in lines:
        line.truncate(width)
    return lines[:height]
