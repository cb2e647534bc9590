"""Reusable widgets: a keyed table that updates rows in place, lines that fit their width, the status bar
and a footer that is rebuilt only when its keys change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual._two_way_dict import TwoWayDict  # pinned: textual>=8.2,<8.3
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer
from textual.widgets.data_table import ColumnKey, RowKey

from .layout import Col, Item, clip, fit_columns, fit_lines, natural_widths

Row = tuple[str, tuple[Any, ...]]


class KeyedTable(DataTable[Any], inherit_bindings=False):
    """A row-cursor table fed whole snapshots: rows are matched by key and updated in place.

    Columns that do not fit go in their chosen order and names are ellipsised (``layout``), so a
    cell is never clipped by the table's edge.
    Enter is left to the screen (so ``enter`` is one registry action everywhere), and vi keys move.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "scroll_top", "Top", show=False),
        Binding("end,G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, columns: Sequence[Col], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._all_columns = tuple(columns)
        self._widths: dict[str, int] = {c.key: 0 for c in columns}  # before the first layout: all, uncut
        self._rows: list[Row] = []
        self._seen: dict[str, int] = {}  # the widest each column's cells have been in this list
        for col in self._all_columns:
            self.add_column(col.label, key=col.key)

    def _layout(self, rows: Sequence[Row]) -> dict[str, int] | None:
        """Which columns fit now and how wide (``layout.fit_columns``); None before the first layout.

        A column is as wide as its cells have been since the list was shown (a refresh with
        narrower cells does not narrow it), so widths do not jump from one refresh to the next.
        """
        natural = natural_widths(self._all_columns, (c for _, c in rows))
        self._seen = {key: max(width, self._seen.get(key, 0)) for key, width in natural.items()}
        room = self.size.width - self.styles.scrollbar_size_vertical
        if room <= 0:
            return None
        return fit_columns(self._all_columns, self._seen, room)

    def on_resize(self, event: events.Resize) -> None:
        self.sync(self._rows)

    def _show_columns(self, widths: dict[str, int]) -> None:
        """Show another set of columns (the rows are added again by ``sync``)."""
        self.clear(columns=True)
        for col in self._all_columns:
            if col.key in widths:
                self.add_column(col.label, key=col.key, width=widths[col.key])

    def _set_widths(self, widths: dict[str, int]) -> None:
        """Give the shown columns the widths the layout chose (so the table never measures cells)."""
        for key, width in widths.items():
            column = self.columns[ColumnKey(key)]
            column.width, column.auto_width = width, False
        self._clear_caches()
        self._require_update_dimensions = True
        self.refresh()

    def _visible(self, cells: tuple[Any, ...]) -> tuple[Any, ...]:
        """The cells of the shown columns, each cut to its column's width."""
        return tuple(clip(cell, self._widths[col.key]) if self._widths[col.key] else cell
                     for col, cell in zip(self._all_columns, cells, strict=False) if col.key in self._widths)

    def current_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return None if key.value is None else str(key.value)

    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def sync(self, rows: Sequence[Row], top: bool = False) -> None:
        """Make the table show ``rows``: drop, update changed cells, add, reorder; keep the cursor's
        row, or with ``top`` (the rows are another list, not a refresh of this one) put the cursor
        on the first row and scroll to it."""
        self._rows = list(rows)
        if top:
            self._seen = {}  # another list: its own widths
        cursor_key = self.current_key()
        cursor_index = self.cursor_row
        widths = self._layout(self._rows)
        if widths is not None and widths != self._widths:
            if widths.keys() != self._widths.keys():
                self._show_columns(widths)
            else:
                self._set_widths(widths)
            self._widths = widths
        rows = [(key, self._visible(cells)) for key, cells in self._rows]
        wanted = [key for key, _ in rows]
        existing = set(self.keys())
        for key in existing - set(wanted):
            self.remove_row(key)
        column_keys = [col.key for col in self._all_columns if col.key in self._widths]
        for key, cells in rows:
            if key in existing:
                old = self.get_row(key)
                for column, before, after in zip(column_keys, old, cells, strict=False):
                    if before != after:
                        self._put_cell(key, column, after)
            else:
                self.add_row(*cells, key=key)
        if self.keys() != wanted:
            self._reorder(wanted)
        if top:
            self.move_cursor(row=0, scroll=False)
            self.scroll_home(animate=False)
        elif cursor_key is not None and cursor_key in wanted:
            self.move_cursor(row=wanted.index(cursor_key), scroll=False)
        elif wanted:
            self.move_cursor(row=min(cursor_index, len(wanted) - 1), scroll=False)

    def _put_cell(self, key: str, column: str, value: Any) -> None:
        """``update_cell`` repainting only the cell's row: DataTable's repaints the whole table, so a
        refresh that changed one number sent every row down the wire again. Columns have the widths
        the layout chose, so a new value never changes them."""
        row_key = RowKey(key)
        self._data[row_key][ColumnKey(column)] = value
        self._update_count += 1  # the rendered lines cached before this are stale
        index = self._row_locations.get(row_key)
        if index is not None:
            self.refresh_row(index)

    async def _on_idle(self, event: events.Idle) -> None:
        """After cells changed width, drop the renders cached at the old widths (textual 8.2 keeps them)."""
        widths_changed = bool(self._updated_cells)
        await super()._on_idle(event)
        if widths_changed:
            self._update_count += 1
            self.refresh()

    def _reorder(self, keys: Sequence[str]) -> None:
        """Put rows in ``keys`` order without clearing them (what ``sort`` does, by an explicit order)."""
        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(keys)})
        self._update_count += 1
        self.refresh()


class StatusBar(Widget):
    """The header line: product, view, database, nodes, badges and the refresh state (one line, so
    a new text repaints it without laying the screen out again)."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        width: 1fr;
        background: $panel;
        color: $text;
    }
    """

    _text = Text()

    def show_status(self, text: Text) -> None:
        """Replace the line."""
        if text != self._text:
            self._text = text
            self.refresh()

    def render(self) -> Text:
        return self._text


class FitLines(Widget):
    """Lines of items fitted to the widget's width whenever it renders (``layout.fit_line``): a
    narrow terminal shortens or drops whole items, and never wraps one. With ``loading`` it says
    so until the first lines come, so a screen's skeleton never looks like an empty result."""

    DEFAULT_CSS = """
    FitLines {
        height: auto;
    }
    """

    LOADING = "loading…"

    def __init__(self, sep: str = "  ", loading: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sep = sep
        self._lines: list[list[Item]] = [[Item.of(Text(self.LOADING, style="dim italic"))]] if loading else []

    def set_lines(self, *lines: Sequence[Item]) -> None:
        """Show ``lines`` (one sequence of items each); the screen is laid out again only when the
        number of lines changes."""
        new = [list(line) for line in lines]
        if new == self._lines:
            return
        layout = len(new) != len(self._lines)
        self._lines = new
        self.refresh(layout=layout)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines)

    def render(self) -> Text:
        return fit_lines(self._lines, self.content_size.width, self.sep)


class KeyFooter(Footer):
    """The footer, rebuilt only when the keys it shows (or whether they are enabled) change.

    Textual rebuilds a footer on every focus change and every time its screen comes back, which
    cost a screen switch tens of milliseconds of the event loop while the new screen's read waited.
    """

    _shown: tuple[tuple[str, str, bool, str], ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if screen is self.screen and self.is_attached:
            shown = tuple(
                (binding.key, binding.description, enabled, tooltip)
                for _, binding, enabled, tooltip in screen.active_bindings.values() if binding.show
            )
            if shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)
