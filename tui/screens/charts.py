"""The Charts screen: completed and failed per minute and p50/p95 execution time, over the last
hour or day, of every queue, one queue or one worker (``tui.charts`` draws them)."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widget import Widget

from ..charts import (
    ALL,
    SPAN_NAMES,
    ChartsSnapshot,
    Subject,
    chart_lines,
    step_subject,
)
from ..terminal import plain_terminal
from .base import Command, DataScreen, Loader, bindings_for


class ChartView(Widget):
    """The charts of one snapshot, drawn to fit the widget's size (again on every resize)."""

    DEFAULT_CSS = """
    ChartView {
        height: 1fr;
        padding: 0;
    }
    """

    def __init__(self, plain: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plain = plain
        self.snapshot: ChartsSnapshot | None = None
        self.keys: tuple[str, str, str] = ("[", "]", "t")

    def show(self, snapshot: ChartsSnapshot, keys: tuple[str, str, str]) -> None:
        self.snapshot = snapshot
        self.keys = keys
        self.refresh()

    def render(self) -> Text:
        if self.snapshot is None:
            return Text("Loading…", style="dim")
        width, height = self.content_region.size
        return Text("\n").join(chart_lines(self.snapshot, width, height, self.keys, self.plain))


class ChartsScreen(DataScreen):
    """Rollups as charts; ``[`` and ``]`` step through all queues, each queue and each worker."""

    scope = "charts"
    view_title = "Charts"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("charts")
    snapshot: ChartsSnapshot | None = None

    def __init__(self, subject: Subject = ALL, span: str = "hour") -> None:
        super().__init__()
        self.subject = subject
        self.span = span

    def title_text(self) -> str:
        return f"Charts · {self.subject.label}"

    def compose_body(self) -> ComposeResult:
        yield ChartView(plain=plain_terminal(), id="charts")

    def loader(self) -> Loader:
        subject, span = self.subject, self.span
        return lambda store: store.charts(subject, span)

    def _keys(self) -> tuple[str, str, str]:
        key = partial(self.dash.key_of, scope=self.scope)
        return key("chart_prev"), key("chart_next"), key("chart_span")

    def show(self, snapshot: ChartsSnapshot) -> None:
        self.query_one("#charts", ChartView).show(snapshot, self._keys())

    def choose(self, subject: Subject | None = None, span: str | None = None) -> None:
        """Show another subject or span: the header at once, the charts when they are read."""
        self.subject = subject or self.subject
        self.span = span or self.span
        self.dash.update_header()
        self.dash.request_refresh()

    def action_chart_next(self) -> None:
        """The next subject: all queues, then each queue, then each worker."""
        choices = self.snapshot.subjects if self.snapshot else [ALL]
        self.choose(step_subject(self.subject, choices, 1))

    def action_chart_prev(self) -> None:
        """The previous subject."""
        choices = self.snapshot.subjects if self.snapshot else [ALL]
        self.choose(step_subject(self.subject, choices, -1))

    def action_chart_span(self) -> None:
        """The last hour, or the last day."""
        self.choose(span=SPAN_NAMES[(SPAN_NAMES.index(self.span) + 1) % len(SPAN_NAMES)])

    def palette_commands(self) -> list[Command]:
        choices = self.snapshot.subjects if self.snapshot else [ALL]
        commands: list[Command] = [
            (f"charts: {s.label}", "chart this", partial(self.choose, s)) for s in choices
        ]
        commands += [(f"charts: last {span}", "the span of the charts", partial(self.choose, None, span))
                     for span in SPAN_NAMES]
        return commands
