"""Modals: the confirmation every change passes, the scale prompt, and the generated help."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from ..actions import help_sections
from ..control import ScaleChange, parse_scale
from ..filters import FILTER_HELP
from ..keymap import KEYMAP_ENV, Keymap
from ..model import STATES
from ..presenters import STATE_GLYPH, state_text

MAX_LISTED = 8
# A confirmation answers only to keys typed after it appeared: until it has been drawn and this
# long has passed, `y` does nothing (as browsers arm their permission prompts). A burst of keys
# typed for somewhere else (`Dy` meant for a filter) cannot confirm a change.
CONFIRM_ARM_SECONDS = 0.5
HINT = "y confirms · n or esc cancels"
HINT_WAIT = "wait: keys typed before this appeared do not confirm it · n or esc cancels"


class ConfirmScreen(ModalScreen[bool]):
    """Lists the exact targets; focus starts on Cancel, ``y`` confirms once armed (drawn, and the
    app's ``confirm_delay`` seconds passed), Enter never does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Confirm", id="confirm.yes"),
        Binding("n,escape", "cancel", "Cancel", id="confirm.no"),
    ]

    def __init__(self, title: str, lines: Sequence[str], note: str = "", danger: bool = True) -> None:
        super().__init__()
        self.title_line = title
        self.lines = list(lines)
        self.note = note
        self.danger = danger
        self.armed = asyncio.Event()

    def compose(self) -> ComposeResult:
        listed = self.lines[:MAX_LISTED]
        more = len(self.lines) - len(listed)
        body = "\n".join(f"• {line}" for line in listed)
        if more > 0:
            body += f"\n… and {more} more"
        with Vertical(id="dialog", classes="dialog"):
            yield Static(Text(self.title_line, style="bold"), id="confirm-title")
            yield Static(body, id="confirm-targets")
            if self.note:
                yield Static(Text(self.note, style="italic"), id="confirm-note")
            yield Static(Text(HINT, style="dim"), id="confirm-hint")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="no", variant="primary")
                yes = Button("Confirm (y)", id="yes", variant="error" if self.danger else "warning", disabled=True)
                yes.can_focus = False
                yield yes

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()
        # After the keys already queued (they were typed before this was seen) and a redraw.
        self.call_after_refresh(self._arm_later)

    def _arm_later(self) -> None:
        delay = getattr(self.app, "confirm_delay", CONFIRM_ARM_SECONDS)
        if delay > 0:
            self.set_timer(delay, self._arm)
        else:
            self._arm()

    def _arm(self) -> None:
        self.query_one("#yes", Button).disabled = False
        self.query_one("#confirm-hint", Static).update(Text(HINT, style="dim"))
        self.armed.set()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        """The only keyboard way to say yes, once armed."""
        if not self.armed.is_set():
            self.query_one("#confirm-hint", Static).update(Text(HINT_WAIT, style="bold"))
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        """Back out; nothing changes."""
        self.dismiss(False)


class ScaleScreen(ModalScreen[ScaleChange | None]):
    """Asks for a queue's new limits (local, global, rate); the change is confirmed afterwards."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="scale.cancel")]

    def __init__(self, title: str, current: int | None, node: str | None = None) -> None:
        super().__init__()
        self.title_line = title
        self.current = current
        self.node = node  # one node's limit: a global or rate limit cannot be set here
        self._zero_warned = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static(Text(self.title_line, style="bold"))
            now = f"now {self.current}" if self.current is not None else "no limit recorded"
            yield Static(f"Local limit ({now}), or global N, or rate N/SECONDS; commas for several. "
                         "Enter applies, Esc cancels.")
            field = Input(
                value="" if self.current is None else str(self.current), id="limit",
                placeholder="20  |  global 10  |  rate 20/30",
            )
            field.cursor_blink = getattr(self.app, "cursor_blink", True)
            yield field
            yield Static("", id="scale-error", classes="error-line")

    def on_mount(self) -> None:
        # set_focus, not focus(), which moves focus only after the keys already queued: typed right
        # behind the key that opened this prompt, they are the limit, not keys of the screen below.
        self.set_focus(self.query_one(Input))

    def _say(self, message: str) -> None:
        error = self.query_one("#scale-error", Static)
        error.update(Text(f"⚠ {message}", style="bold #dc322f"))
        error.add_class("-show")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            change = parse_scale(event.value)
        except ValueError as exc:
            self._say(str(exc))
            return
        if self.node is not None and (change.global_allowed is not None or change.rate is not None):
            self._say("a global or rate limit holds across every node: set it on the Queues screen (S there)")
            return
        if change.local == 0 and not self._zero_warned:  # a second Enter sets it
            self._zero_warned = True
            where = self.node or "any node"
            self._say(f"0 runs nothing on {where} and its jobs wait, with no sign of a pause (P pauses and "
                      "says so); Enter again to set 0")
            return
        self.dismiss(change)

    def action_cancel(self) -> None:
        """Back out."""
        self.dismiss(None)


KEY_WIDTH = 10
ID_WIDTH = 16


def hanging(text: Text, what: str, indent: int, width: int | None, style: str = "") -> None:
    """Append ``what`` wrapped to ``width`` with its next lines under its first (not under the key)."""
    lines = textwrap.wrap(what, max(20, width - indent)) if width else [what]
    text.append(("\n" + " " * indent).join(lines) + "\n", style=style)


def help_text(scope: str, may: dict[str, bool], keymap: Keymap | None = None, width: int | None = None,
              log_file: str | None = None) -> Text:
    """The help page for ``scope``: its keys (with the action ids a keymap uses), the global keys,
    the filter syntax, the state legend, how to remap keys and where the logs go; descriptions wrap
    within ``width``."""
    text = Text()
    for title, entries in help_sections(scope, keymap):
        text.append(f"{title}\n", style="bold underline")
        for key, what, permission, action_id in entries:
            allowed = permission is None or may.get(permission, False)
            text.append(f"  {key:<{KEY_WIDTH}}", style="bold" if allowed else "dim")
            pad = max(1, KEY_WIDTH + ID_WIDTH - max(KEY_WIDTH, len(key)) - len(action_id))
            text.append(action_id + " " * pad, style="dim italic")
            indent = 2 + max(KEY_WIDTH, len(key)) + len(action_id) + pad
            hanging(text, what if allowed else f"{what}  (not allowed)", indent, width, "" if allowed else "dim")
        text.append("\n")
    text.append("Filter syntax (/ on Jobs)\n", style="bold underline")
    for example, what in FILTER_HELP:
        text.append(f"  {example:<28}", style="bold")
        hanging(text, what, 2 + max(28, len(example)), width)
    text.append("\nStates\n", style="bold underline")
    for state in STATES:
        text.append("  ")
        text.append_text(state_text(state))
        text.append("\n")
    text.append(
        "\nUppercase keys change things and always ask first; lowercase keys only look.\n"
        f"Counts with ~ are estimates; {STATE_GLYPH['executing']} and the other glyphs mark states without colour.",
        style="italic",
    )
    text.append("\n\nRemapping keys\n", style="bold underline")
    if keymap and keymap.source:
        text.append(f"Keys remapped from {keymap.source}.\n", style="bold")
    text.append("Action ids (the grey names above) to keys, in ~/.config/lysmore/keys.toml\n"
                f"($XDG_CONFIG_HOME honoured), or the file named by ${KEYMAP_ENV} or --keymap:\n")
    text.append('  [keys]\n  quit = "ctrl+q"\n  filter = "f"\n', style="bold")
    text.append("Changing actions keep uppercase letters; a key does one thing per screen.", style="italic")
    if log_file:
        text.append("\n\nLogs\n", style="bold underline")
        text.append("Written to ", style="italic")
        text.append(log_file, style="bold")
        text.append(" while the dashboard runs, never to the screen\n(--log-file or $LYSMORE_LOG_FILE).",
                    style="italic")
    return text


class HelpPage(Widget):
    """The help text, its descriptions wrapped to the width the dialog has."""

    DEFAULT_CSS = """
    HelpPage {
        height: auto;
    }
    """

    def __init__(self, scope: str, may: dict[str, bool], keymap: Keymap | None = None,
                 log_file: str | None = None) -> None:
        super().__init__()
        self.scope, self.may, self.keymap, self.log_file = scope, may, keymap, log_file

    def _text(self, width: int) -> Text:
        return help_text(self.scope, self.may, self.keymap, width, self.log_file)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._text(width).wrap(self.app.console, width))

    def render(self) -> Text:
        return self._text(self.content_size.width)


class HelpScreen(ModalScreen[None]):
    """Help generated from the action registry for the screen it was opened on."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close"),
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
        Binding("pagedown,space,ctrl+f", "page_down", "Page down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("G,end", "scroll_end", "End", show=False),
        Binding("g,home", "scroll_home", "Top", show=False),
    ]

    def __init__(self, scope: str, may: dict[str, bool], keymap: Keymap | None = None,
                 log_file: str | None = None) -> None:
        super().__init__()
        self.scope = scope
        self.may = may
        self.keymap = keymap
        self.log_file = log_file

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield HelpPage(self.scope, self.may, self.keymap, self.log_file)

    def action_close(self) -> None:
        """Back to the screen."""
        self.dismiss(None)

    def action_scroll_down(self) -> None:
        """Scroll the help."""
        self.query_one("#help", VerticalScroll).scroll_down()

    def action_scroll_up(self) -> None:
        """Scroll the help."""
        self.query_one("#help", VerticalScroll).scroll_up()

    def action_page_down(self) -> None:
        """A page further (pgdn, space, ctrl+f, as in less)."""
        self.query_one("#help", VerticalScroll).scroll_page_down()

    def action_page_up(self) -> None:
        """A page back."""
        self.query_one("#help", VerticalScroll).scroll_page_up()

    def action_scroll_end(self) -> None:
        """The end of the help (G)."""
        self.query_one("#help", VerticalScroll).scroll_end(animate=False)

    def action_scroll_home(self) -> None:
        """The top of the help (g)."""
        self.query_one("#help", VerticalScroll).scroll_home(animate=False)
