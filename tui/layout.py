"""Layout rules for narrow terminals, as pure functions: lines that never wrap mid-item, and table
columns that are dropped in a chosen order before a name is ellipsised. No Textual, no database.

A line is a sequence of ``Item``: each has forms from longest to shortest, a rank in the order in
which items are shortened and, optionally, a place in the order in which they go. ``fit_line``
takes the items of the first rank (together) through their forms, then those of the next rank,
until the line fits (an empty last form takes an item away at its rank); when even the shortest
forms are too wide, items go in their drop order. Only what is left over after that (one item
wider than the line) is cut, with an ellipsis.

A table is a sequence of ``Col``. ``fit_columns`` takes the width every column's content needs and
decides which columns show and how wide: previews and lists (``shrink_early``) are ellipsised
first, then columns are dropped in their order, and only then are names ellipsised, down to their
``shrink_to`` width. Width left over goes back to names first, then to previews.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text

CELL_PADDING = 2  # a DataTable cell has one blank on each side


@dataclass(frozen=True, slots=True)
class Item:
    """One piece of a line: its forms, longest first; when it is shortened (lower ``shrink`` first)
    and when it goes (lower ``drop`` first; None: it stays)."""

    forms: tuple[Text, ...]
    drop: int | None = None
    shrink: int = 0

    @classmethod
    def of(cls, *forms: Text | str, drop: int | None = None, shrink: int = 0) -> Item:
        """An item from texts or plain strings."""
        return cls(tuple(Text(f) if isinstance(f, str) else f for f in forms), drop, shrink)


def _join(forms: Iterable[Text], sep: str) -> Text:
    text = Text()
    for form in forms:
        if not form.plain:
            continue  # an empty last form: the item has gone at its rank
        if text.plain and sep:
            text.append(sep)
        text.append_text(form)
    return text


def fit_line(items: Sequence[Item], width: int, sep: str = "  ") -> Text:
    """The items on one line of at most ``width`` cells: shorter forms first, then drops, then a cut.

    Once the line fits, the shortenings that are not needed any more are undone, the last first
    (so a name is not left cut because a later step made room).
    """
    items = [i for i in items if i.forms]
    form = [0] * len(items)
    kept = [True] * len(items)

    def line() -> Text:
        return _join((i.forms[f] for i, f, k in zip(items, form, kept, strict=True) if k), sep)

    def fits() -> bool:
        return line().cell_len <= width

    steps: list[list[int]] = []
    for rank in sorted({i.shrink for i in items}):
        for level in range(1, max(len(i.forms) for i in items)):
            if fits():
                break
            step = [n for n, i in enumerate(items) if i.shrink == rank and len(i.forms) > level]
            for n in step:
                form[n] = level
            if step:
                steps.append(step)
    for n in sorted((n for n, i in enumerate(items) if i.drop is not None), key=lambda n: items[n].drop or 0):
        if fits():
            break
        kept[n] = False
    for step in reversed(steps):
        for n in step:
            form[n] -= 1
        if not fits():
            for n in step:
                form[n] += 1
    return line() if fits() else clip(line(), width)


def fit_lines(lines: Sequence[Sequence[Item]], width: int, sep: str = "  ") -> Text:
    """Several lines, each fitted on its own."""
    text = Text()
    for i, items in enumerate(lines):
        if i:
            text.append("\n")
        text.append_text(fit_line(items, width, sep))
    return text


def clip(value: Any, width: int) -> Any:
    """``value`` (text or string) cut to ``width`` cells with an ellipsis; other values as they are."""
    if not isinstance(value, str | Text) or cell_width(value) <= width:
        return value
    cut = Text(value) if isinstance(value, str) else value.copy()
    cut.truncate(max(0, width), overflow="ellipsis")
    return cut.plain if isinstance(value, str) else cut


def cell_width(value: Any) -> int:
    """Cells ``value`` takes in a table."""
    if isinstance(value, Text):
        return value.cell_len
    return cell_len(str(value))


@dataclass(frozen=True, slots=True)
class Col:
    """A table column and what it may give up when the table is narrow.

    ``drop``: the order in which columns go (lower first; None: always shown). ``shrink_to``: the
    narrowest it may be ellipsised to (None: never cut). ``shrink_early``: a preview or list, cut
    before any column goes; otherwise a name, cut only once every droppable column has gone.
    ``width``: a column whose cells have a known widest form is that wide from the first rows on,
    so its width does not follow the rows from one refresh to the next.
    """

    key: str
    label: str
    drop: int | None = None
    shrink_to: int | None = None
    shrink_early: bool = False
    width: int | None = None  # the widest its cells get (states, times): its width whatever the rows


def natural_widths(columns: Sequence[Col], rows: Iterable[Sequence[Any]]) -> dict[str, int]:
    """The width every column needs to show its label and all its cells whole (at least its ``width``)."""
    widths = {c.key: max(Text(c.label).cell_len, c.width or 0) for c in columns}
    for cells in rows:
        for col, cell in zip(columns, cells, strict=False):
            widths[col.key] = max(widths[col.key], cell_width(cell))
    return widths


def fit_columns(
    columns: Sequence[Col], natural: Mapping[str, int], width: int, padding: int = CELL_PADDING
) -> dict[str, int]:
    """The columns to show in ``width`` cells, in order, with the width of each (padding excluded)."""

    def least(col: Col, names_too: bool) -> int:
        need = natural[col.key]
        if col.shrink_to is not None and (col.shrink_early or names_too):
            return min(need, max(col.shrink_to, Text(col.label).cell_len))
        return need

    def total(keys: set[str], names_too: bool) -> int:
        return sum(least(c, names_too) + padding for c in columns if c.key in keys)

    shown = {c.key for c in columns}
    for col in sorted((c for c in columns if c.drop is not None), key=lambda c: c.drop or 0):
        if total(shown, False) <= width:
            break
        shown.discard(col.key)
    names_too = total(shown, False) > width
    widths = {c.key: least(c, names_too) for c in columns if c.key in shown}
    spare = width - total(shown, names_too)
    for col in sorted((c for c in columns if c.key in shown and c.shrink_to is not None),
                      key=lambda c: c.shrink_early):
        if spare <= 0:
            break
        grow = min(spare, natural[col.key] - widths[col.key])
        widths[col.key] += grow
        spare -= grow
    return widths
