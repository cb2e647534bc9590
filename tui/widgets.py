"""Reusable widgets: a keyed table that updates rows in place, and the one-line status bar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual._two_way_dict import TwoWayDict  # pinned: textual>=8.2,<8.3
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowKey

Row = tuple[str, tuple[Any, ...]]


class KeyedTable(DataTable[Any], inherit_bindings=False):
    """A row-cursor table fed whole snapshots: rows are matched by key and updated in place.

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

    def __init__(self, columns: Sequence[tuple[str, str, int]], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._all_columns = tuple(columns)
        self._columns = self._fitting(None)
        self._rows: list[Row] = []
        for key, label, _ in self._columns:
            self.add_column(label, key=key)

    def _fitting(self, width: int | None) -> tuple[tuple[str, str, int], ...]:
        """The columns to show at ``width`` (all of them before the first layout)."""
        if width is None:
            return tuple(c for c in self._all_columns if not c[2])
        return tuple(c for c in self._all_columns if c[2] <= width)

    def on_resize(self, event: events.Resize) -> None:
        fitting = self._fitting(event.size.width)
        if fitting != self._columns:
            cursor = self.current_key()
            self._columns = fitting
            self.clear(columns=True)
            for key, label, _ in self._columns:
                self.add_column(label, key=key)
            rows, self._rows = self._rows, []
            self.sync(rows)
            if cursor is not None and cursor in self.keys():
                self.move_cursor(row=self.keys().index(cursor), scroll=False)

    def _visible(self, cells: tuple[Any, ...]) -> tuple[Any, ...]:
        shown = {key for key, _, _ in self._columns}
        return tuple(cell for (key, _, _), cell in zip(self._all_columns, cells, strict=False) if key in shown)

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

    def sync(self, rows: Sequence[Row]) -> None:
        """Make the table show ``rows``: drop, update changed cells, add, reorder; keep the cursor's row."""
        self._rows = list(rows)
        rows = [(key, self._visible(cells)) for key, cells in rows]
        cursor_key = self.current_key()
        cursor_index = self.cursor_row
        wanted = [key for key, _ in rows]
        existing = set(self.keys())
        for key in existing - set(wanted):
            self.remove_row(key)
        column_keys = [key for key, _, _ in self._columns]
        for key, cells in rows:
            if key in existing:
                old = self.get_row(key)
                for column, before, after in zip(column_keys, old, cells, strict=False):
                    if before != after:
                        self.update_cell(key, column, after, update_width=True)
            else:
                self.add_row(*cells, key=key)
        if self.keys() != wanted:
            self._reorder(wanted)
        if cursor_key is not None and cursor_key in wanted:
            self.move_cursor(row=wanted.index(cursor_key), scroll=False)
        elif wanted:
            self.move_cursor(row=min(cursor_index, len(wanted) - 1), scroll=False)

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


class StatusBar(Static):
    """The header line: product, view, database, nodes, badges and the refresh state."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        width: 1fr;
        background: $panel;
        color: $text;
    }
    """

    def show_status(self, text: Text) -> None:
        """Replace the line."""
        self.update(text)
