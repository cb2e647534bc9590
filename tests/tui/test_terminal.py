"""Plain terminals: which terminal types get ASCII and no mouse, and what the ASCII looks like."""

from __future__ import annotations

import pytest

from tui.terminal import PLAIN_TERMS, ascii_for, plain_terminal, to_ascii


@pytest.mark.parametrize("term", ["vt100", "linux", "VT220", "dumb"])
def test_old_terminal_types_are_plain(term: str) -> None:
    assert plain_terminal({"TERM": term})


@pytest.mark.parametrize("env", [{"TERM": "xterm-256color"}, {"TERM": "screen"}, {"TERM": "tmux-256color"}, {}])
def test_other_terminals_are_not(env: dict[str, str]) -> None:
    assert not plain_terminal(env)


def test_the_setting_wins_over_the_terminal_type() -> None:
    assert plain_terminal({"TERM": "xterm", "LYSMORE_ASCII": "1"})
    assert not plain_terminal({"TERM": "vt100", "LYSMORE_ASCII": "0"})
    assert "vt100" in PLAIN_TERMS


def test_ascii_keeps_every_cell() -> None:
    line = "┌─ Queues │ db · public ⟳ 2s ─┐ ▁▂▃▄▅▆▇█ ↑↓ … ✓✗ café"
    out = to_ascii(line)
    assert out.isascii() and len(out) == len(line)
    assert out == "+- Queues | db . public * 2s -+ __--==## ^v . vx cafe"


def test_wide_characters_keep_their_two_cells_and_marks_none() -> None:
    assert ascii_for("漢") == "??"
    assert to_ascii("e\u0301") == "e"  # a combining accent draws on the cell before it
    assert to_ascii("plain \x1b[1mtext\x1b[0m") == "plain \x1b[1mtext\x1b[0m"
