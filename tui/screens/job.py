"""The Job detail screen: why it waits, its timeline, args and meta, errors newest first."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..control import jobs_request
from ..layout import Item
from ..model import JobDetailSnapshot
from ..presenters import (
    errors_newest_first,
    job_heading,
    pretty_json,
    timeline,
    why_waiting,
    workflow_lines,
)
from ..widgets import FitLines
from .base import Command, DataScreen, Loader, bindings_for


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def _section_lines(title: str, lines: list[Text]) -> list[list[Item]]:
    """A section for ``FitLines``: a blank line, the title, then one item a line."""
    return [[], [Item.of(Text(title, style="bold underline"))], *[[Item.of(line)] for line in lines]]


class JobScreen(DataScreen):
    """One job, refreshed in place while it moves through its states."""

    scope = "job"
    view_title = "Job"
    BINDINGS: ClassVar[list[BindingType]] = [
        *bindings_for("job"),
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
        Binding("g,home", "scroll_home", "Top", show=False),
        Binding("G,end", "scroll_end", "Bottom", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
    ]
    snapshot: JobDetailSnapshot | None = None

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id

    def title_text(self) -> str:
        return f"Job {self.job_id}"

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="job-body"):
            yield FitLines(sep=" · ", loading=True, id="job-heading")
            yield Static("", id="job-why")
            yield FitLines(id="job-timeline")
            yield FitLines(id="job-workflow")
            yield Static("", id="job-args")
            yield Static("", id="job-meta")
            yield Static("", id="job-errors")

    def on_mount(self) -> None:
        self.query_one("#job-body", VerticalScroll).focus()

    def loader(self) -> Loader:
        job_id = self.job_id
        return lambda store: store.job(job_id)

    def show(self, snapshot: JobDetailSnapshot) -> None:
        job = snapshot.job
        if job is None:
            gone = f"job {snapshot.job_id} is gone (deleted or pruned). {self.dash.key_of('back', self.scope)} goes back."
            self.query_one("#job-heading", FitLines).set_lines([Item.of(Text(gone, style="bold"))])
            for name in ("why", "timeline", "workflow", "args", "meta", "errors"):
                self.query_one(f"#job-{name}", Static).update("")
            return
        now = snapshot.now
        self.query_one("#job-heading", FitLines).set_lines(*job_heading(job))
        reasons = why_waiting(job, snapshot.facts, snapshot.steps, now)
        why = Text()
        if reasons:
            why.append_text(_section("Why is it not running?"))
            for i, reason in enumerate(reasons, 1):
                why.append(f"\n  {i}. {reason}")
        self.query_one("#job-why", Static).update(why)
        # One event or step a line, ellipsised when long (the errors below are shown whole).
        self.query_one("#job-timeline", FitLines).set_lines(
            *_section_lines("Timeline", [Text.assemble("  ", line) for line in timeline(job, now)])
        )
        flow = workflow_lines(job, snapshot.steps)
        self.query_one("#job-workflow", FitLines).set_lines(*_section_lines("Workflow", flow) if flow else ())
        self.query_one("#job-args", Static).update(Group(_section("Args"), JSON(pretty_json(job.args))))
        meta_parts: list[RenderableType] = [_section("Meta"), JSON(pretty_json(job.meta))]
        if job.result is not None:
            meta_parts += [_section("Result"), JSON(pretty_json(job.result))]
        self.query_one("#job-meta", Static).update(Group(*meta_parts))
        errors = errors_newest_first(job)
        err = Text()
        if errors:
            err.append_text(_section(f"Errors ({len(errors)}, newest first)"))
            for heading, trace in errors:
                err.append("\n")
                err.append_text(heading)
                if trace:
                    err.append("\n" + "\n".join("    " + t for t in trace.splitlines()), style="dim")
        self.query_one("#job-errors", Static).update(err)

    def _act(self, action: str) -> None:
        job = self.snapshot.job if self.snapshot else None
        if job is None:
            self.notify("This job is gone.", severity="warning")
            return
        self.dash.attempt(jobs_request(action, [(job.id, job.state, job.worker)]))

    def action_cancel(self) -> None:
        """Cancel this job."""
        self._act("cancel")

    def action_retry(self) -> None:
        """Retry this job now."""
        self._act("retry")

    def action_delete(self) -> None:
        """Delete this job."""
        self._act("delete")

    def _body(self) -> VerticalScroll:
        return self.query_one("#job-body", VerticalScroll)

    def action_scroll_down(self) -> None:
        """Scroll the page."""
        self._body().scroll_down()

    def action_scroll_up(self) -> None:
        """Scroll the page."""
        self._body().scroll_up()

    def action_scroll_home(self) -> None:
        """To the top."""
        self._body().scroll_home()

    def action_scroll_end(self) -> None:
        """To the bottom."""
        self._body().scroll_end()

    def action_page_down(self) -> None:
        """A page down."""
        self._body().scroll_page_down()

    def action_page_up(self) -> None:
        """A page up."""
        self._body().scroll_page_up()

    def palette_commands(self) -> list[Command]:
        return [
            ("job: cancel", f"cancel this job ({self.dash.key_of('cancel', self.scope)})", self.action_cancel),
            ("job: retry", f"retry this job now ({self.dash.key_of('retry', self.scope)})", self.action_retry),
            ("job: delete", f"delete this job ({self.dash.key_of('delete', self.scope)})", self.action_delete),
        ]
