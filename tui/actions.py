"""The one action registry: keys, footer, help, palette, permission and confirmation in one place.

Screens turn these entries into key bindings; the help screen and the command palette read
them; the gate reads ``permission``. Lowercase keys never change anything: every entry with a
permission has an uppercase key and goes through the gate.

A user keymap (``tui.keymap``) moves an action to another key everywhere it appears.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .keymap import Keymap

PERMISSIONS: tuple[str, ...] = (
    "pause_queues", "scale_queues", "cancel_jobs", "retry_jobs", "delete_jobs", "pause_crons",
)

SCREEN_TITLES: dict[str, str] = {
    "queues": "Queues",
    "queue": "Queue",
    "jobs": "Jobs",
    "job": "Job",
    "nodes": "Nodes",
    "workflows": "Workflows",
    "workflow": "Workflow",
    "audit": "Audit",
    "crons": "Crons",
    "charts": "Charts",
}
SCREENS: tuple[str, ...] = tuple(SCREEN_TITLES)


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a user can do: its key, where it applies, and what it needs."""

    id: str
    key: str
    label: str
    help: str
    scopes: tuple[str, ...]
    permission: str | None = None
    footer: bool = True
    key_display: str | None = None
    palette: str | None = None
    bulk: bool = False
    # Taken by the app as the key arrives, before any key behind it: for a key that moves focus or
    # shows another screen (the keys typed after it belong where it sends them, however fast they
    # come; `2/queue:x` typed at once must not leave `/` to the old screen and `q` to quit).
    priority: bool = False

    @property
    def changes(self) -> bool:
        """Whether this action changes anything (and so goes through the gate)."""
        return self.permission is not None

    @property
    def display_key(self) -> str:
        """The key as the help screen shows it."""
        return self.key_display or self.key


ACTIONS: tuple[Action, ...] = (
    # everywhere
    Action("view_queues", "1", "Queues", "show the Queues screen", ("app",), footer=False, priority=True,
           palette="view: queues"),
    Action("view_jobs", "2", "Jobs", "show the Jobs screen", ("app",), footer=False, priority=True, palette="view: jobs"),
    Action("view_nodes", "3", "Nodes", "show the Nodes screen", ("app",), footer=False, priority=True, palette="view: nodes"),
    Action("view_workflows", "4", "Workflows", "show the Workflows screen", ("app",), footer=False, priority=True,
           palette="view: workflows"),
    Action("view_audit", "5", "Audit", "show the Audit screen", ("app",), footer=False, priority=True, palette="view: audit"),
    Action("view_crons", "6", "Crons", "show the Crons screen", ("app",), footer=False, priority=True, palette="view: crons"),
    Action("view_charts", "7", "Charts", "show the Charts screen (of the queue whose detail is open)", ("app",),
           footer=False, priority=True, palette="view: charts"),
    Action("refresh_now", "ctrl+r", "Refresh", "refresh now", ("app",), footer=False, key_display="^r",
           palette="refresh: now"),
    Action("freeze", "z", "Freeze", "freeze or unfreeze live updates", ("app",), footer=False,
           palette="refresh: freeze / unfreeze"),
    Action("faster", "plus", "Faster", "refresh faster (1, 2, 5, 15, 30, 60 s, off)", ("app",), footer=False,
           key_display="+"),
    Action("slower", "minus", "Slower", "refresh slower", ("app",), footer=False, key_display="-"),
    Action("help", "question_mark", "Help", "show this help", ("app",), key_display="?"),
    Action("palette", "colon", "Palette", "open the command palette (also ctrl+p)", ("app",), footer=False,
           key_display=":"),
    Action("quit", "q", "Quit", "quit the dashboard", ("app",), footer=False),
    Action("next_instance", "w", "Instance", "show the next instance (prefix) in every view, when the run "
           "watches several; the palette lists each", ("app",), footer=False),
    # lists
    Action("open", "enter", "Open", "open the row under the cursor", ("queues", "jobs", "workflows"),
           key_display="enter"),
    Action("open", "enter", "Open job", "open the job of the row under the cursor (a step, a job of the queue)",
           ("workflow", "queue"), key_display="enter"),
    Action("back", "escape", "Back", "go back (a modal closes first)", ("queue", "job", "workflow"),
           key_display="esc"),
    Action("back", "escape", "Clear", "clear the marks, then the filter, then the state", ("jobs",),
           footer=False, key_display="esc"),
    Action("filter", "slash", "Filter", "filter jobs (see the syntax below)", ("jobs",), key_display="/",
           priority=True),
    Action("mark", "space", "Mark", "mark or unmark the job under the cursor", ("jobs",)),
    Action("mark_visible", "a", "Mark all", "mark every job on this page (again: unmark)", ("jobs",),
           footer=False),
    Action("select_all", "A", "Select matching", "select every job that matches (shows the count first)",
           ("jobs",), footer=False, palette="jobs: select all matching"),
    Action("next_page", "right_square_bracket", "Next page", "next page (older jobs)", ("jobs",),
           footer=False, key_display="]"),
    Action("prev_page", "left_square_bracket", "Prev page", "previous page (newer jobs)", ("jobs",),
           footer=False, key_display="["),
    Action("chart_prev", "left_square_bracket", "Prev", "chart the previous subject", ("charts",),
           key_display="["),
    Action("chart_next", "right_square_bracket", "Next", "chart the next subject: all queues, each queue, each worker",
           ("charts",), key_display="]"),
    Action("chart_span", "t", "Hour/day", "show the last hour (by the minute) or the last day (by 20 minutes)",
           ("charts",)),
    Action("toggle_sidebar", "s", "States", "move between the state list and the jobs table", ("jobs",),
           footer=False),
    Action("sort_next", "o", "Sort", "sort by the next key: id, attempt, priority, age, duration", ("jobs",),
           palette="jobs: sort by the next key"),
    Action("sort_flip", "i", "Invert", "sort the other way (largest or smallest first)", ("jobs",), footer=False,
           palette="jobs: invert the sort"),
    # changes: uppercase keys, one gate
    Action("pause", "P", "Pause", "pause or resume the queue on every node", ("queues",),
           permission="pause_queues", palette="queue: pause / resume"),
    Action("pause", "P", "Pause", "pause or resume the queue on the node under the cursor", ("queue",),
           permission="pause_queues", palette="queue: pause / resume on node"),
    Action("pause", "P", "Pause", "pause or resume all queues of the node (drain before a deploy)",
           ("nodes",), permission="pause_queues", palette="node: pause / resume all queues"),
    # Priority, like `/`: the prompt opens as `S` arrives, so the keys typed right behind it are the limit.
    Action("scale", "S", "Scale", "set the queue's local limit on every node", ("queues",),
           permission="scale_queues", palette="queue: scale", priority=True),
    Action("scale", "S", "Scale", "set the queue's local limit on the node under the cursor", ("queue",),
           permission="scale_queues", palette="queue: scale on node", priority=True),
    Action("cancel", "C", "Cancel", "cancel the marked jobs (or this one)", ("jobs", "job"),
           permission="cancel_jobs", palette="jobs: cancel selected", bulk=True),
    Action("retry", "R", "Retry", "retry the marked jobs (or this one) now", ("jobs", "job"),
           permission="retry_jobs", palette="jobs: retry selected", bulk=True),
    Action("delete", "D", "Delete", "delete the marked jobs (or this one)", ("jobs", "job"),
           permission="delete_jobs", palette="jobs: delete selected", bulk=True),
    # Cancelling or retrying a workflow does that to its jobs, so it needs the same right as for jobs.
    Action("cancel", "C", "Cancel", "cancel every unfinished step of the workflow", ("workflows", "workflow"),
           permission="cancel_jobs", palette="workflow: cancel"),
    Action("retry", "R", "Retry", "run the workflow's cancelled and discarded steps again (one more attempt)",
           ("workflows", "workflow"), permission="retry_jobs", palette="workflow: retry"),
    Action("pause", "P", "Pause", "pause or resume the cron entry on every node (paused, it inserts nothing)",
           ("crons",), permission="pause_crons", palette="cron: pause / resume"),
)


def actions_for(scope: str, keymap: Keymap | None = None) -> tuple[Action, ...]:
    """The actions that apply on ``scope`` (a screen name, or ``app`` for everywhere), keys remapped."""
    found = tuple(a for a in ACTIONS if scope in a.scopes)
    return keymap.apply_all(found) if keymap else found


def action(scope: str, action_id: str, keymap: Keymap | None = None) -> Action | None:
    """The entry for ``action_id`` on ``scope`` (falling back to the app-wide one)."""
    for wanted in (scope, "app"):
        for a in ACTIONS:
            if a.id == action_id and wanted in a.scopes:
                return keymap.apply(a) if keymap else a
    return None


def gated_for_key(scope: str, key: str, keymap: Keymap | None = None) -> Action | None:
    """The changing action bound to ``key`` on ``scope``, if any."""
    for a in actions_for(scope, keymap):
        if a.changes and a.key == key:
            return a
    return None


HelpEntry = tuple[str, str, str | None, str]  # (key as shown, what it does, permission, action id)
VIEW_IDS = ("view_queues", "view_jobs", "view_nodes", "view_workflows", "view_audit", "view_crons", "view_charts")


def help_sections(scope: str, keymap: Keymap | None = None) -> list[tuple[str, list[HelpEntry]]]:
    """(title, [(key, help, permission, action id)]) for this screen, then for everywhere."""
    title = SCREEN_TITLES.get(scope, scope)
    here = [(a.display_key, a.help, a.permission, a.id) for a in actions_for(scope, keymap)]
    everywhere = [(a.display_key, a.help, a.permission, a.id) for a in actions_for("app", keymap)]
    views = [e for e in everywhere if e[3] in VIEW_IDS]
    everywhere = [e for e in everywhere if e[3] not in VIEW_IDS]
    if views and [e[0] for e in views] == [str(n) for n in range(1, len(views) + 1)]:
        labels = " / ".join(a.label for a in actions_for("app") if a.id in VIEW_IDS)
        everywhere.insert(0, (f"1-{len(views)}", labels, None, "view_*"))
    else:
        everywhere[:0] = views
    everywhere.append(("j k ↑ ↓ g G pgup pgdn", "move in lists", None, ""))
    sections = [(title, here)] if here else []
    return [*sections, ("Everywhere", everywhere)]
