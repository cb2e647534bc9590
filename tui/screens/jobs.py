"""The Jobs screen: a state list, a filter bar, and a keyset-paged job table with marks."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option

from ..control import jobs_request, plural
from ..filters import Filter, FilterError, parse_filter
from ..model import SORT_KEYS, STATES, Count, JobRow, JobsSnapshot, Selection, Sort
from ..presenters import JOB_COLUMNS, fmt_int, job_row, page_status, state_option
from ..widgets import FitLines, KeyedTable
from .base import Command, DataScreen, Loader, bindings_for

SIDEBAR: tuple[str | None, ...] = (None, *STATES)


class JobsScreen(DataScreen):
    """Jobs by state, filterable; marks survive refreshes and pages."""

    scope = "jobs"
    view_title = "Jobs"
    BINDINGS: ClassVar[list[BindingType]] = bindings_for("jobs")
    snapshot: JobsSnapshot | None = None

    def __init__(self) -> None:
        super().__init__()
        self.state: str | None = None
        self.filter = Filter()
        self.sort = Sort()
        self.cursors: list[tuple[object, int] | None] = [None]  # each page's keyset: (sort value, id) after which it starts
        self.marked: dict[int, tuple[str, str]] = {}
        self._listing: tuple[object, ...] | None = None  # what the table last listed: state, filter, page
        self.selection_filter: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="jobs-body"):
            yield OptionList(*[Option(state_option(s, None), id=s or "all") for s in SIDEBAR], id="states")
            with Vertical(id="jobs-main"):
                bar = Input(
                    placeholder="filter: state:retryable queue:mailers age:>1h !tag:slow  (enter applies, esc leaves)",
                    id="filter", classes="-hidden",
                )
                bar.cursor_blink = self.dash.cursor_blink
                yield bar
                yield Static("", id="filter-error", classes="error-line")
                yield FitLines(sep=" · ", loading=True, id="jobs-status", classes="summary")
                yield KeyedTable(JOB_COLUMNS, id="jobs-table")

    def on_mount(self) -> None:
        # set_focus, not focus(), which would move focus later: after a `/` typed right behind the
        # key that showed this screen had put it on the filter bar.
        self.set_focus(self.query_one("#jobs-table", KeyedTable))
        self.query_one("#states", OptionList).highlighted = 0

    # -- loading ------------------------------------------------------------------------------
    def loader(self) -> Loader:
        state, flt, after, page, sort = self.state, self.filter, self.cursors[-1], len(self.cursors), self.sort
        return lambda store: store.jobs(state, flt, page=page, sort=sort, after=after)

    def show(self, snapshot: JobsSnapshot) -> None:
        counts = dict(snapshot.states)
        total = Count(sum(c.value for c in counts.values()), all(c.exact for c in counts.values()))
        sidebar = self.query_one("#states", OptionList)
        for i, state in enumerate(SIDEBAR):
            prompt = state_option(state, counts.get(state) if state else total)
            if prompt != sidebar.get_option_at_index(i).prompt:  # each replacement redraws the list
                sidebar.replace_option_prompt_at_index(i, prompt)
        self._render_rows()

    def _render_rows(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        table = self.query_one("#jobs-table", KeyedTable)
        # Another state, filter or page is another list: the cursor starts at its top, where the
        # user looks (a job kept from the last list could sit out of sight, and C/R/D act on it).
        listing = (snap.state, snap.filter_text, snap.page, snap.sort)
        top = self._listing is not None and listing != self._listing
        self._listing = listing
        table.sync([job_row(job, snap.now, job.id in self.marked) for job in snap.rows], top=top)
        self.query_one("#jobs-status", FitLines).set_lines(
            page_status(snap.page, len(snap.rows), snap.has_more, len(self.marked), self.filter.text, self.state,
                        snap.sort, snap.sort_window)
        )

    def reload(self, reset_pages: bool = True) -> None:
        """Read again now (after a change of state, filter or page)."""
        if reset_pages:
            self.cursors = [None]
        self.dash.request_refresh()

    # -- state list ---------------------------------------------------------------------------
    @on(OptionList.OptionHighlighted, "#states")
    def _state_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if not event.option_list.has_focus:
            return
        self.set_state(SIDEBAR[event.option_index])

    @on(OptionList.OptionSelected, "#states")
    def _state_selected(self, event: OptionList.OptionSelected) -> None:
        self.set_state(SIDEBAR[event.option_index])
        self.query_one("#jobs-table", KeyedTable).focus()

    def set_state(self, state: str | None) -> None:
        """Show jobs in ``state`` (None: every state)."""
        if state == self.state:
            return
        self.state = state
        self.query_one("#states", OptionList).highlighted = SIDEBAR.index(state)
        self.reload()

    def action_toggle_sidebar(self) -> None:
        """Move focus between the state list and the table."""
        sidebar = self.query_one("#states", OptionList)
        if sidebar.has_focus:
            self.query_one("#jobs-table", KeyedTable).focus()
        else:
            sidebar.focus()

    # -- filter -------------------------------------------------------------------------------
    def action_filter(self) -> None:
        """Open the filter bar; in the bar, the key is a character of the filter.

        The binding has priority: the app runs this as the key arrives, before the keys behind
        it, so focus is on the bar when they come (a key handed to the table first reached the
        screen's bindings only after the table had taken the keys behind it).
        """
        bar = self.query_one("#filter", Input)
        if self.focused is bar:  # typed in the bar: a character, queued behind the keys before it
            bar.post_message(events.Key("slash", "/"))
            return
        bar.remove_class("-hidden")
        self.set_focus(bar)  # now, not after the queued messages as Widget.focus() would

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply_filter(event.value)

    def apply_filter(self, text: str) -> bool:
        """Parse and apply ``text``; on a mistake show what to fix and keep the old filter."""
        error_line = self.query_one("#filter-error", Static)
        try:
            flt = parse_filter(text)
        except FilterError as exc:
            error_line.update(Text(f"⚠ {exc.message}", style="bold #dc322f"))
            error_line.add_class("-show")
            return False
        error_line.update("")
        error_line.remove_class("-show")
        self.filter = flt
        bar = self.query_one("#filter", Input)
        bar.value = flt.text
        if not flt:
            bar.add_class("-hidden")
        self.query_one("#jobs-table", KeyedTable).focus()
        self.reload()
        return True

    def on_key(self, event: events.Key) -> None:
        bar = self.query_one("#filter", Input)
        if event.key == "escape" and bar.has_focus:
            event.stop()
            bar.value = self.filter.text
            self.query_one("#filter-error", Static).update("")
            self.query_one("#filter-error", Static).remove_class("-show")
            if not self.filter:
                bar.add_class("-hidden")
            self.query_one("#jobs-table", KeyedTable).focus()

    def action_back(self) -> None:
        """Esc: first clear marks, then the filter."""
        if self.marked:
            self.marked.clear()
            self.selection_filter = None
            self._render_rows()
        elif self.filter:
            self.apply_filter("")
        elif self.state is not None:
            self.set_state(None)

    # -- sorting ------------------------------------------------------------------------------
    def set_sort(self, sort: Sort) -> None:
        """List the jobs in ``sort``'s order, from its first page."""
        if sort != self.sort:
            self.sort = sort
            self.reload()

    def action_sort_next(self) -> None:
        """Sort by the next key (id, attempt, priority, age, duration), largest first."""
        self.set_sort(self.sort.next_key())

    def action_sort_flip(self) -> None:
        """Sort the other way."""
        self.set_sort(self.sort.flipped())

    # -- paging and opening -------------------------------------------------------------------
    def action_next_page(self) -> None:
        """The next page (keyset: after the last row shown, in the sort's order)."""
        snap = self.snapshot
        if snap is None or not snap.has_more or snap.next_cursor is None:
            return
        self.cursors.append(snap.next_cursor)
        self.reload(reset_pages=False)

    def action_prev_page(self) -> None:
        """The previous page."""
        if len(self.cursors) > 1:
            self.cursors.pop()
            self.reload(reset_pages=False)

    def current(self) -> JobRow | None:
        """The job under the cursor, as last shown."""
        if self.snapshot is None:
            return None
        key = self.query_one("#jobs-table", KeyedTable).current_key()
        return next((j for j in self.snapshot.rows if str(j.id) == key), None)

    def action_open(self) -> None:
        """Open the job under the cursor."""
        from .job import JobScreen

        job = self.current()
        if job is not None:
            self.app.push_screen(JobScreen(job.id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    # -- marks --------------------------------------------------------------------------------
    def action_mark(self) -> None:
        """Mark or unmark the job under the cursor and move down."""
        job = self.current()
        if job is None:
            return
        if job.id in self.marked:
            del self.marked[job.id]
        else:
            self.marked[job.id] = (job.state, job.worker)
        self._render_rows()
        self.query_one("#jobs-table", KeyedTable).action_cursor_down()

    def action_mark_visible(self) -> None:
        """Mark every job on this page (or unmark them when all are marked)."""
        if self.snapshot is None:
            return
        rows = self.snapshot.rows
        if rows and all(j.id in self.marked for j in rows):
            for j in rows:
                self.marked.pop(j.id, None)
        else:
            for j in rows:
                self.marked[j.id] = (j.state, j.worker)
        self._render_rows()

    def action_select_all(self) -> None:
        """Count every job matching the state and filter, then ask before marking them."""
        self.dash.select_matching(self, self.state, self.filter)

    def selection_ready(self, selection: Selection) -> None:
        """Ask whether to mark the jobs the count found."""
        from .modals import ConfirmScreen

        n = len(selection.ids)
        if not n:
            self.notify("No jobs match.", severity="warning")
            return
        count = f"{fmt_int(n)}+" if selection.capped else fmt_int(n)
        what = self.filter.text or "no filter"
        title = f"Mark all {count} jobs matching {what}" + (f" in {self.state}" if self.state else "") + "?"
        note = f"Capped at {fmt_int(n)}: refine the filter to act on the rest." if selection.capped else ""
        lines = [f"job {i}  {s}  {w}" for i, s, w in selection.ids]

        def done(ok: bool | None) -> None:
            if ok:
                self.marked = {i: (s, w) for i, s, w in selection.ids}
                self.selection_filter = self.filter.text or None
                self._render_rows()
                self.notify(f"Marked {plural(n, 'job')}")

        self.app.push_screen(ConfirmScreen(title, lines, note, danger=False), done)

    # -- changes ------------------------------------------------------------------------------
    def _targets(self) -> list[tuple[int, str, str]]:
        if self.marked:
            return [(i, s, w) for i, (s, w) in sorted(self.marked.items(), reverse=True)]
        job = self.current()
        return [(job.id, job.state, job.worker)] if job else []

    def _act(self, action: str) -> None:
        targets = self._targets()
        if not targets:
            self.notify("No job under the cursor.", severity="warning")
            return
        flt = self.selection_filter or (self.filter.text if self.marked else None)
        self.dash.attempt(jobs_request(action, targets, flt), on_done=self._changed)

    def _changed(self) -> None:
        self.marked.clear()
        self.selection_filter = None
        self._render_rows()

    def action_cancel(self) -> None:
        """Cancel the marked jobs, or the one under the cursor."""
        self._act("cancel")

    def action_retry(self) -> None:
        """Retry the marked jobs, or the one under the cursor."""
        self._act("retry")

    def action_delete(self) -> None:
        """Delete the marked jobs, or the one under the cursor."""
        self._act("delete")

    def palette_commands(self) -> list[Command]:
        def key(action_id: str) -> str:
            return self.dash.key_of(action_id, self.scope)

        commands: list[Command] = [
            ("jobs: cancel selected", f"marked jobs, or the one under the cursor ({key('cancel')})", self.action_cancel),
            ("jobs: retry selected", f"marked jobs, or the one under the cursor ({key('retry')})", self.action_retry),
            ("jobs: delete selected", f"marked jobs, or the one under the cursor ({key('delete')})", self.action_delete),
            ("jobs: select all matching", f"count, then mark every match ({key('select_all')})",
             self.action_select_all),
            ("jobs: filter", f"open the filter bar ({key('filter')})", self.action_filter),
            ("jobs: clear filter", "show every job", partial(self.apply_filter, "")),
        ]
        for state in SIDEBAR:
            commands.append((f"jobs: show {state or 'all'}", "filter by state", partial(self.set_state, state)))
        for sort_key in SORT_KEYS:
            commands.append((f"jobs: sort by {sort_key}", f"largest first ({key('sort_next')} cycles the keys)",
                             partial(self.set_sort, Sort(sort_key))))
        commands.append(("jobs: invert the sort", f"the other way ({key('sort_flip')})", self.action_sort_flip))
        return commands
