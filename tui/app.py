"""The dashboard application: modes for the five views, the refresh loop, and the change gate's UI.

Reads happen in a thread worker against ``Store``; the next refresh is scheduled only after the
previous one finished, backs off when the database is slow or failing (the header then says
``stale Ns``), and is skipped while a modal is open or the view is frozen. The user's keymap
(``keymap.load_keymap``) is checked before anything starts and applied to every binding by id.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, cast

import psycopg
from textual import constants as textual_constants
from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.timer import Timer
from textual.widgets import Input
from textual.worker import get_current_worker

from engine import DatabaseUnavailable, Engine, redact_url

from . import POOL_TIMEOUT
from .access import Access, application_name, resolve_access
from .actions import PERMISSIONS, actions_for, gated_for_key
from .actions import action as find_action
from .charts import Subject
from .control import Gate, Request, ScaleChange, Verdict, plural, scale_request
from .data import Store
from .filters import Filter
from .keymap import Keymap, key_label, load_keymap
from .model import Cluster
from .palette import DashboardCommands
from .presenters import header_text, refresh_label
from .screens.audit import AuditScreen
from .screens.base import DataScreen
from .screens.charts import ChartsScreen
from .screens.crons import CronsScreen
from .screens.jobs import JobsScreen
from .screens.modals import CONFIRM_ARM_SECONDS, ConfirmScreen, HelpScreen, ScaleScreen
from .screens.nodes import NodesScreen
from .screens.queues import QueuesScreen
from .screens.workflows import WorkflowsScreen
from .terminal import plain_driver, plain_terminal
from .widgets import StatusBar

log = logging.getLogger("lysmore.tui")

RATES: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)
MAX_BACKOFF = 60.0
OUTAGE_RETRY = 1.0  # seconds between reads while PostgreSQL is unreachable: fresh soon after it returns
LOW_BANDWIDTH_MIN_RATE = 5.0
INSTANCE_POOL = 3  # connections of each instance the run switches to: a read, a change, a count
MIN_SIZE = (60, 15)
VIEW_MODES = {
    "view_queues": "queues", "view_jobs": "jobs", "view_nodes": "nodes",
    "view_workflows": "workflows", "view_audit": "audit", "view_crons": "crons",
    "view_charts": "charts",
}


def database_label(url: str | None) -> str:
    """``host/dbname`` from a URL (never the password); ``embedded`` when there is none."""
    if not url:
        return "embedded"
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except Exception:
        return "database"
    host = str(info.get("host") or "local")
    if host.startswith("/"):
        host = "local"
    return f"{host}/{info.get('dbname') or info.get('user') or '?'}"


def _app_bindings() -> list[BindingType]:
    return [
        Binding(a.key, a.id, a.label, show=a.footer, key_display=a.key_display, id=f"app.{a.id}",
                priority=a.priority)
        for a in actions_for("app")
    ]


class DashboardApp(App[int]):
    """Lysmore's terminal dashboard over one instance (database + prefix)."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "Lysmore"
    MODES: ClassVar[dict[str, Any]] = {
        "queues": QueuesScreen, "jobs": JobsScreen, "nodes": NodesScreen,
        "workflows": WorkflowsScreen, "audit": AuditScreen, "crons": CronsScreen,
        "charts": ChartsScreen,
    }
    DEFAULT_MODE = "queues"
    COMMANDS = App.COMMANDS | {DashboardCommands}

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver, or on a plain terminal (``tui.terminal``) one writing ASCII without the mouse."""
        driver = super().get_driver_class()
        if textual_constants.DRIVER is None and plain_terminal():  # not when textual-serve or a test chose
            return cast("type[Driver]", plain_driver(driver))
        return driver
    BINDINGS: ClassVar[list[BindingType]] = _app_bindings()

    def __init__(
        self,
        database_url: str | None = None,
        prefix: str | None = None,
        read_only: bool = False,
        refresh: float | None = 2.0,
        resolver: Any = None,
        low_bandwidth: bool = False,
        mouse: bool = True,
        *,
        clock: Callable[[], datetime] | None = None,
        engine: Engine | None = None,
        database_name: str | None = None,
        handle_hangup: bool = False,
        cursor_blink: bool = True,
        badges: tuple[str, ...] = (),
        keymap: Keymap | str | os.PathLike[str] | None = None,
        confirm_delay: float = CONFIRM_ARM_SECONDS,
        log_file: str | None = None,
        prefixes: Sequence[str] = (),
    ) -> None:
        # The keymap first: a bad one stops the start with its message before anything connects.
        self.keymap = keymap if isinstance(keymap, Keymap) else load_keymap(keymap)
        self.access: Access = resolve_access(resolver, read_only)
        self._own_engine = engine is None
        self.engine = engine if engine is not None else Engine(
            database_url=database_url, prefix=prefix, application_name=application_name(self.access.user),
            pool_timeout=POOL_TIMEOUT,
        )
        super().__init__()
        self._remapped = self.keymap.binding_keymap()
        if self._remapped:
            self.set_keymap(self._remapped)
        self.store = Store(self.engine, clock=clock)
        self.gate = Gate(self.engine, self.access)
        # The instances (prefixes) this run watches, in order; each gets its engine, store and gate
        # when first shown (the first is the engine above), so an instance never shown holds no connection.
        self.prefixes: tuple[str, ...] = tuple(dict.fromkeys(
            prefixes if self.engine.prefix in prefixes else (self.engine.prefix, *prefixes)))
        self._instances: dict[str, tuple[Engine, Store, Gate]] = {self.engine.prefix: (self.engine, self.store, self.gate)}
        self._given_engine = engine  # the caller's: it stops it
        self._clock = clock
        self.low_bandwidth = low_bandwidth
        self.confirm_delay = confirm_delay  # a confirmation's y works this long after it is drawn (ConfirmScreen)
        self.mouse = mouse
        self.database_name = database_name or database_label(
            database_url if database_url is not None else os.environ.get("LYSMORE_DATABASE_URL")
        )
        rate = self.access.refresh if self.access.refresh is not None else refresh
        if not rate or rate <= 0:
            self.rate: float | None = None
        else:
            self.rate = max(float(rate), LOW_BANDWIDTH_MIN_RATE) if low_bandwidth else float(rate)
        self.frozen = False
        self.cluster: Cluster | None = None
        self._timer: Timer | None = None
        self._started = time.monotonic()
        self._last_ok: float | None = None
        self._error: str | None = None
        self._slow = False
        self._backoff: float | None = None
        self._load_started: float | None = None
        self._loading: DataScreen | None = None  # the screen the read under way is for
        self._handle_hangup = handle_hangup
        self.cursor_blink = cursor_blink
        self.badges = tuple(badges)
        self.refreshes = 0
        self.log_file = log_file  # where logs go while the app runs (run_dashboard's), named in help
        self._outage: str | None = None  # why PostgreSQL is unreachable, as the last read found
        if low_bandwidth:
            self.animation_level = "none"

    # -- lifecycle ----------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick_header, name="header")
        if self._handle_hangup:
            try:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.exit)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def on_unmount(self) -> None:
        self._cancel_timer()
        for _, store, _ in self._instances.values():
            store.close()
        for eng, _, _ in self._instances.values():
            if eng is self._given_engine:
                continue
            try:
                eng.stop()  # closes the pool: the dashboard leaves no connection behind
            except Exception as exc:
                log.warning("closing the dashboard's connections: %s", exc)

    def on_resize(self, event: events.Resize) -> None:
        small = event.size.width < MIN_SIZE[0] or event.size.height < MIN_SIZE[1]
        self.set_class(small, "-too-small")
        self.update_header()  # the header is fitted to the width

    # -- refresh ------------------------------------------------------------------------------
    def data_screen(self) -> DataScreen | None:
        """The data screen on top of the stack (under any modal)."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, DataScreen):
                return screen
        return None

    def screen_resumed(self, screen: DataScreen) -> None:
        """A data screen became visible again: show the header and load it now (unless its read
        already started when the key that switched to it was pressed)."""
        self.update_header()
        if self._loading is not screen:
            self.request_refresh()

    def request_refresh(self) -> None:
        """Load the visible screen now (the timer restarts when it finishes)."""
        self._cancel_timer()
        screen = self.screen
        if not isinstance(screen, DataScreen):
            self._schedule(self.rate or 1.0)
            return
        loader = screen.loader()
        if loader is None:
            return
        self._load_started = time.monotonic()
        self._loading = screen
        self._load(screen, loader)

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def _load(self, screen: DataScreen, loader: Callable[[Store], Any]) -> None:
        worker = get_current_worker()
        started = time.monotonic()
        snapshot: Any = None
        error: BaseException | None = None
        try:
            snapshot = loader(self.store)
        except Exception as exc:
            error = exc
        elapsed = time.monotonic() - started
        if worker.is_cancelled:
            return
        try:
            self.call_from_thread(self._loaded, screen, snapshot, error, elapsed)
        except RuntimeError:
            pass  # the app is closing

    def _loaded(self, screen: DataScreen, snapshot: Any, error: BaseException | None, elapsed: float) -> None:
        self.refreshes += 1
        self._load_started = None
        self._loading = None
        if error is None:
            self._last_ok = time.monotonic()
            self._error = None
            self._outage = None
            if self.gate.unaudited:
                self._write_unaudited()
            self.cluster = getattr(snapshot, "cluster", self.cluster)
            if screen.is_attached:
                screen.deliver(snapshot)
        else:
            self._error = _short_error(error, self.engine.prefix)
            self._outage = self._error if is_outage(error) else None
            log.info("dashboard refresh failed: %s", error)
            if screen.is_attached and screen.is_mounted:
                screen.show_error(f"refresh failed: {self._error}")
        self._slow = self.rate is not None and elapsed > max(0.5, self.rate / 2)
        if self._outage is not None:
            self._backoff = OUTAGE_RETRY  # a failed try costs one connection attempt, not a query
        elif error is not None or self._slow:
            base = self.rate or RATES[1]
            self._backoff = min(MAX_BACKOFF, max(base, (self._backoff or base) * 2))
        else:
            self._backoff = None
        if self.rate is not None:
            self._schedule(self._backoff or self.rate)
        self.update_header()

    @property
    def outage(self) -> str | None:
        """Why PostgreSQL is unreachable when the last read failed for that reason, else None."""
        return self._outage

    def _schedule(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self.set_timer(delay, self._tick, name="refresh")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if self.rate is None or not self.screen_stack:  # no screen: the app is closing
            return
        if self.frozen or not isinstance(self.screen, DataScreen):
            self._schedule(self.rate)
            return
        self.request_refresh()

    @property
    def last_error(self) -> str | None:
        """Why the last refresh failed (None when it succeeded)."""
        return self._error

    def stale_for(self) -> float | None:
        """Seconds since the last good refresh while refreshes fail, are slow or hang; else None."""
        now = time.monotonic()
        hanging = self._load_started is not None and now - self._load_started > max(5.0, 2 * (self.rate or 0))
        if self._error is None and not self._slow and not hanging:
            return None
        return now - (self._last_ok or self._started)

    def shown_stale_for(self, screen: DataScreen) -> float | None:
        """How old the data ``screen`` shows is, when it is not fresh: the refresh's own staleness, or
        for a screen shown again with the snapshot it had, that snapshot's age until the new one comes."""
        stale = self.stale_for()
        if stale is None and not screen.fresh and screen.shown_at is not None:
            return time.monotonic() - screen.shown_at
        return stale

    def _tick_header(self) -> None:
        screen = self.data_screen()
        if self.stale_for() is not None or (screen is not None and not screen.fresh):
            self.update_header()

    def update_header(self) -> None:
        """Redraw the header of the visible data screen."""
        screen = self.data_screen()
        if screen is None:
            return
        badges = list(self.badges)
        if self.access.read_only:
            badges.append("READ-ONLY")
        if self.frozen:
            badges.append("FROZEN")
        if self.low_bandwidth:
            badges.append("LOW-BW")
        # A dialog holds refreshes on purpose: that is no sign of a slow database (a failed one still is).
        paused = not isinstance(self.screen, DataScreen) and self._error is None
        right = refresh_label(self.rate, None if paused else self.shown_stale_for(screen), self.frozen, paused)
        cluster = self.cluster
        text = header_text(
            screen.title_text(), self.database_name, self.engine.prefix,
            cluster.nodes if cluster else None, cluster.leader if cluster else None,
            badges, right, max(20, self.size.width), several=len(self.prefixes) > 1,
        )
        try:
            screen.query_one("#status", StatusBar).show_status(text)
        except Exception:
            pass

    # -- app-wide actions ---------------------------------------------------------------------
    def run_registry_action(self, action_id: str) -> None:
        """Run an app-wide registry action (from the palette)."""
        self.call_later(self.run_action, action_id)

    async def action_view_queues(self) -> None:
        """Show Queues."""
        await self._switch("view_queues")

    async def action_view_jobs(self) -> None:
        """Show Jobs."""
        await self._switch("view_jobs")

    async def action_view_nodes(self) -> None:
        """Show Nodes."""
        await self._switch("view_nodes")

    async def action_view_workflows(self) -> None:
        """Show Workflows."""
        await self._switch("view_workflows")

    async def action_view_audit(self) -> None:
        """Show Audit."""
        await self._switch("view_audit")

    async def action_view_crons(self) -> None:
        """Show Crons."""
        await self._switch("view_crons")

    async def action_view_charts(self) -> None:
        """Show Charts: of the queue whose detail is open, if one is (typed in a text box, the key
        is text: ``_switch`` shows nothing, and this screen is not Charts)."""
        queue = getattr(self.screen, "queue", None) if getattr(self.screen, "scope", "") == "queue" else None
        await self._switch("view_charts")
        screen = self.screen
        if isinstance(queue, str) and isinstance(screen, ChartsScreen):
            screen.choose(Subject("queue", queue))

    async def _switch(self, action_id: str) -> None:
        """Show a view, painted whole in its first frame, and start reading it at once: the read
        runs while the screen is drawn.

        A view shown for the first time is made and mounted now, before the next key is handled:
        in a burst such as ``2/queue:mailers`` the keys after ``2`` are for Jobs, and a screen still
        composing would drop them (its filter box did not exist yet)."""
        if self._typed_as_text(action_id):
            return
        mode = VIEW_MODES[action_id]
        if self.current_mode != mode:
            await self.switch_mode(mode)
        elif len(self.screen_stack) == 1:
            return
        # The view itself, not a screen drilled into from it (and, in another view, left behind).
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.paint_whole()
        self.request_refresh()

    def _typed_as_text(self, action_id: str) -> bool:
        """The views' keys are taken as they arrive (priority bindings), ahead of the text box that
        has focus: typed in one (a filter such as `id:123`, a scale, the palette), the key is a
        character of it, queued behind the keys before it, and no view is shown."""
        focused = self.focused
        entry = find_action("app", action_id, self.keymap)
        if not isinstance(focused, Input) or entry is None or len(entry.key) != 1:
            return False
        focused.post_message(events.Key(entry.key, entry.key))
        return True

    def paint_whole(self) -> None:
        """Make the next frame repaint the whole screen now on top.

        After a switch, Textual's first frame repaints only the widgets that changed while the
        screen was hidden, and the rest of the terminal shows the previous screen until a later
        frame (as long as a busy event loop takes): mark all of it dirty (pinned textual 8.2).
        """
        compositor = self.screen._compositor
        compositor._dirty_regions.add(compositor.size.region)

    def action_refresh_now(self) -> None:
        """Refresh now, even when frozen."""
        self.request_refresh()

    def action_freeze(self) -> None:
        """Stop (or restart) live updates."""
        self.frozen = not self.frozen
        self.notify(f"Live updates frozen ({self.key_of('freeze')} to resume)" if self.frozen
                    else "Live updates resumed")
        self.update_header()
        if not self.frozen:
            self.request_refresh()

    def set_rate(self, rate: float | None) -> None:
        """Refresh every ``rate`` seconds (None: off)."""
        self.rate = rate
        self._backoff = None
        self._cancel_timer()
        if rate is not None:
            self._schedule(rate)
        self.notify(f"Refresh off ({self.key_of('refresh_now')} refreshes now)" if rate is None
                    else f"Refresh every {rate:g}s")
        self.update_header()

    def action_faster(self) -> None:
        """One step faster: off -> 60 -> 30 -> 15 -> 5 -> 2 -> 1 s."""
        if self.rate is None:
            self.set_rate(RATES[-1])
            return
        faster = [r for r in RATES if r < self.rate]
        self.set_rate(faster[-1] if faster else RATES[0])

    def action_slower(self) -> None:
        """One step slower, ending at off."""
        if self.rate is None:
            return
        slower = [r for r in RATES if r > self.rate]
        self.set_rate(slower[0] if slower else None)

    def action_help(self) -> None:
        """Show help for the visible screen."""
        if isinstance(self.screen, HelpScreen):
            return
        screen = self.data_screen()
        may = {p: self.access.may(p) for p in PERMISSIONS}
        self.push_screen(HelpScreen(screen.scope if screen else "queues", may, self.keymap, log_file=self.log_file))

    def action_palette(self) -> None:
        """Open the command palette."""
        self.action_command_palette()

    # -- instances (prefixes) -----------------------------------------------------------------
    def action_next_instance(self) -> None:
        """Show the next instance (prefix) of this run."""
        if len(self.prefixes) < 2:
            self.notify(f"This run watches one instance ({self.engine.prefix}): start it with "
                        "--prefix a,b or --all-prefixes to watch several", severity="warning")
            return
        at = self.prefixes.index(self.engine.prefix)
        self.switch_instance(self.prefixes[(at + 1) % len(self.prefixes)])

    def switch_instance(self, prefix: str) -> None:
        """Show ``prefix`` in every view: its engine, store and gate, on fresh screens, so no mark,
        filter or drilled-in screen of the other instance is left for a change to act on."""
        if prefix == self.engine.prefix or prefix not in self.prefixes:
            return
        if not isinstance(self.screen, DataScreen):
            self.notify("Close the dialog first, then switch the instance.", severity="warning")
            return
        try:
            self.engine, self.store, self.gate = self._instance(prefix)
        except Exception as exc:
            self.notify(f"Cannot show the instance {prefix}: {_short_error(exc)}", severity="error")
            return
        self.cluster = None
        self._error = self._outage = None
        self._slow = False
        self._backoff = None
        self._fresh_screens()
        self.notify(f"Showing the instance {prefix}")
        self.request_refresh()

    def _instance(self, prefix: str) -> tuple[Engine, Store, Gate]:
        """The engine, store and gate of ``prefix``, made on first use: a small pool on the same
        database, under the same connection name."""
        found = self._instances.get(prefix)
        if found is None:
            eng = Engine(database_url=self.engine.database_url, prefix=prefix, pool_size=INSTANCE_POOL,
                         application_name=self.engine.application_name, pool_timeout=POOL_TIMEOUT,
                         connect_timeout=self.engine.connect_timeout)
            found = self._instances[prefix] = (eng, Store(eng, clock=self._clock), Gate(eng, self.access))
        return found

    def _fresh_screens(self) -> None:
        """Every view on a new screen: the others are replaced, then the one shown (by way of another)."""
        shown = self.current_mode
        for mode, screen in self.MODES.items():
            if mode != shown:
                self.remove_mode(mode)
                self.add_mode(mode, screen)
        self.switch_mode(next(mode for mode in self.MODES if mode != shown))
        self.remove_mode(shown)
        self.add_mode(shown, self.MODES[shown])
        self.switch_mode(shown)
        self.paint_whole()

    async def on_event(self, event: events.Event) -> None:
        """Once quitting, keys do nothing: in a burst the keys after `q` would open screens as
        the app closes (Textual's command palette then fails looking for its list, exit 1)."""
        if self._exit and isinstance(event, events.Key):
            return
        await super().on_event(event)

    async def on_key(self, event: events.Key) -> None:
        """A greyed-out change key still reaches the gate, so the refusal is explained and audited."""
        screen = self.screen
        if not isinstance(screen, DataScreen):
            return
        entry = gated_for_key(screen.scope, event.key, self.keymap)
        if entry is not None and not self.access.may(entry.permission):
            event.stop()
            method = getattr(screen, f"action_{entry.id}", None)
            if method is not None and inspect.isawaitable(result := method()):
                await result

    # -- keys -------------------------------------------------------------------------------------
    def key_of(self, action_id: str, scope: str = "app") -> str:
        """The key of a registry action as shown (after the user's remaps), for hints in messages."""
        entry = find_action(scope, action_id, self.keymap)
        return entry.display_key if entry else "?"

    def get_key_display(self, binding: Binding) -> str:
        """Remapped registry keys are shown the way the help screen shows them."""
        if not binding.key_display and binding.id in self._remapped:
            return key_label(binding.key)
        return super().get_key_display(binding)

    # -- the change gate (UI side) ------------------------------------------------------------
    def attempt(self, request: Request, on_done: Callable[[], None] | None = None) -> None:
        """Run ``request`` through the gate: refuse (audited), or confirm, then perform (audited)."""
        if self._refused_in_outage(request):
            return
        verdict = self.gate.check(request)
        if not verdict.allowed:
            self._refuse(request, verdict)
            return
        lines = [t.label for t in verdict.eligible]
        note = ""
        title = request.title
        if verdict.skipped:
            skipped = ", ".join(f"{n} {state}" for state, n in verdict.skipped)
            note = f"Left alone (their state does not allow it): {skipped}."
            title = f"{request.action.capitalize()} {plural(len(verdict.eligible), 'job')}?"
        danger = request.action in ("cancel", "delete", "cancel_workflow") or request.bulk

        gate = self.gate  # the instance shown now, whatever happens before the answer
        if len(self.prefixes) > 1:  # several instances: the question names the one it changes
            title = f"On {gate.engine.prefix}: {title}"

        def answered(ok: bool | None) -> None:
            if ok:
                self._perform(request, on_done, gate)
            else:
                self._decline(request)
                self.notify("Nothing changed.")

        self.push_screen(ConfirmScreen(title, lines, note, danger=danger), answered)

    def _refused_in_outage(self, request: Request) -> bool:
        """While PostgreSQL is unreachable a change is refused at once, never left waiting for a
        connection to run later; the refusal is audited if the database takes the row."""
        if self._outage is None:
            return False
        what = request.title.rstrip("?") or request.audit_action.replace("_", " ").capitalize()
        self.notify(f"{what}: refused, nothing changed. {self._outage}", title="Database unreachable",
                    severity="error")
        self._audit_outage(request, self._outage)
        return True

    @work(thread=True, group="actions", exit_on_error=False)
    def _audit_outage(self, request: Request, cause: str) -> None:
        self.gate.fail(request, cause)  # kept and written later when the database cannot take it now

    @work(thread=True, exclusive=True, group="late-audit", exit_on_error=False)
    def _write_unaudited(self) -> None:
        self.gate.write_unaudited()

    def _refuse(self, request: Request, verdict: Verdict) -> None:
        what = request.title.rstrip("?")
        self.notify(f"{what}: {verdict.reason}", title="Not allowed" if verdict.outcome == "denied" else "Nothing to do",
                    severity="error" if verdict.outcome == "denied" else "warning")
        self._audit_refusal(request, verdict)

    @work(thread=True, group="actions", exit_on_error=False)
    def _audit_refusal(self, request: Request, verdict: Verdict) -> None:
        try:
            self.gate.refuse(request, verdict)
        except Exception as exc:
            log.warning("could not audit a refused action: %s", exc)

    @work(thread=True, group="actions", exit_on_error=False)
    def _decline(self, request: Request) -> None:
        try:
            self.gate.decline(request)
        except Exception as exc:
            log.warning("could not audit a declined action: %s", exc)

    @work(thread=True, group="actions", exit_on_error=False)
    def _perform(self, request: Request, on_done: Callable[[], None] | None, gate: Gate | None = None) -> None:
        gate = gate or self.gate
        result = gate.perform(request)
        message = f"{gate.engine.prefix}: {result.message}" if len(self.prefixes) > 1 else result.message
        try:
            self.call_from_thread(self._performed, result.ok, message, on_done)
        except RuntimeError:
            pass

    def _performed(self, ok: bool, message: str, on_done: Callable[[], None] | None) -> None:
        self.notify(message, severity="information" if ok else "error")
        if ok and on_done is not None:
            on_done()
        self.request_refresh()

    async def ask_scale(self, queue: str, node: str | None, current: int | None, nodes: int) -> None:
        """Check the user may scale, ask for the limit, then confirm like any change. The prompt is
        mounted before the next key is handled: typed right behind `S`, the keys are the limit."""
        probe = scale_request(queue, None, node, nodes)
        if self._refused_in_outage(probe):
            return
        verdict = self.gate.check(probe)
        if not verdict.allowed:
            self._refuse(probe, verdict)
            return
        where = f"on {node}" if node else (f"on {plural(nodes, 'node')}" if nodes else "on every node")

        def chosen(change: ScaleChange | None) -> None:
            if change is not None:
                self.attempt(scale_request(queue, change.local, node, nodes,
                                           global_limit=change.global_allowed, rate_limit=change.rate))

        await self.push_screen(ScaleScreen(f"Scale queue {queue} {where}", current, node=node), chosen)

    def select_matching(self, screen: JobsScreen, state: str | None, flt: Filter) -> None:
        """Count the jobs matching (capped) in a worker, then let the Jobs screen ask."""
        self._select(screen, state, flt)

    @work(thread=True, exclusive=True, group="select", exit_on_error=False)
    def _select(self, screen: JobsScreen, state: str | None, flt: Filter) -> None:
        try:
            selection = self.store.select_matching(state, flt)
        except Exception as exc:
            self.call_from_thread(self.notify, f"Could not count matching jobs: {_short_error(exc)}", severity="error")
            return
        self.call_from_thread(screen.selection_ready, selection)


def _short_error(exc: BaseException, prefix: str | None = None) -> str:
    """The first line of ``exc``, passwords masked, for the error line and toasts; a read that
    finds no table of the instance ``prefix`` says so."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if prefix is not None and isinstance(exc, _SCHEMA_GONE):
        text = f"prefix {prefix} has no Lysmore tables in this database ({text}): was its schema dropped?"
    return redact_url(text)[:200]


_SCHEMA_GONE = (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedFunction)


# SQLSTATE classes and codes of a lost or refused connection (a statement timeout, 57014, is not one).
_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says PostgreSQL cannot be reached (or dropped the connection), not that a
    statement failed."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(_OUTAGE_STATES)
