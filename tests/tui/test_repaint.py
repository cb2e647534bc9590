"""What a refresh repaints: a table repaints only the rows whose cells changed, so a refresh that
changes nothing sends nothing over the wire and one changed number sends one line (DataTable's
own ``update_cell`` repaints the whole table)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region

from tui.layout import Col
from tui.widgets import KeyedTable

pytestmark = pytest.mark.anyio

COLUMNS = (Col("name", "name"), Col("count", "count", width=6))
ROWS = [(f"q{i}", (f"queue{i}", str(i))) for i in range(8)]


class Table(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS)


def _repaints(table: KeyedTable, rows: list[Any], monkeypatch: pytest.MonkeyPatch) -> list[Region | None]:
    """The repaints ``table.sync(rows)`` asks for: a region each, None for the whole table."""
    asked: list[Region | None] = []
    real = table.refresh

    def refresh(*regions: Region, **kwargs: Any) -> Any:
        asked.extend(regions or [None])
        return real(*regions, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(table, "refresh", refresh)
        table.sync(rows)
    return asked


async def test_an_unchanged_refresh_repaints_nothing_and_a_changed_cell_its_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = Table()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(KeyedTable)
        table.sync(ROWS)
        await pilot.pause()

        assert _repaints(table, ROWS, monkeypatch) == []  # the same snapshot again

        changed = [*ROWS[:3], ("q3", ("queue3", "42")), *ROWS[4:]]
        regions = _repaints(table, changed, monkeypatch)
        row = table._get_row_region(3).translate(-table.scroll_offset)
        assert regions == [row] and row.height == 1  # one line: q3's
        await pilot.pause()
        assert table.get_row("q3") == ["queue3", "42"]
        assert "42" in "".join(segment.text for segment in table.render_line(row.y))
