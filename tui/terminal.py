"""Plain terminals: ASCII only and no mouse where the terminal type says the terminal is old.

A vt100 or the Linux console draws UTF-8 box lines as garbage and answers mouse tracking with
stray characters, so for those terminal types (and wherever ``LYSMORE_ASCII=1``) the dashboard
runs on a driver that never asks for the mouse and turns every character it writes into ASCII,
one cell for one cell so nothing on the screen moves: lines become ``-``, ``|`` and ``+``, the
sparklines' blocks a ramp from ``_`` to ``#``, arrows ``^ v < >``, anything else ``?``.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from typing import Any

ASCII_ENV = "LYSMORE_ASCII"
PLAIN_TERMS = frozenset({"vt52", "vt100", "vt102", "vt220", "vt320", "linux", "ansi", "dumb", "cons25"})

_NAMED = {
    "·": ".", "•": "*", "…": ".", "⟳": "*", "●": "*", "○": "o", "◆": "*", "◇": "o", "✓": "v", "✔": "v",
    "✗": "x", "✕": "x", "✘": "x", "×": "x", "▶": ">", "▸": ">", "►": ">", "◀": "<", "◂": "<", "▲": "^",
    "▴": "^", "▼": "v", "▾": "v", "↑": "^", "↓": "v", "←": "<", "→": ">", "⇅": "|", "↕": "|", "—": "-",
    "–": "-", "‐": "-", "−": "-", "“": '"', "”": '"', "‘": "'", "’": "'", "≥": ">", "≤": "<", "≈": "~",
    "°": "o", "µ": "u", "¦": "|", "\u00a0": " ", "⏸": "=", "⏵": ">", "★": "*", "☆": "*", "⚠": "!",
}
_RAMP = "__--==##"  # ▁▂▃▄▅▆▇█: a sparkline's eight heights


def plain_terminal(environ: Mapping[str, str] | None = None) -> bool:
    """True when the dashboard should write ASCII only and leave the mouse alone."""
    env = os.environ if environ is None else environ
    forced = env.get(ASCII_ENV, "").strip().lower()
    if forced in ("1", "yes", "true", "on"):
        return True
    if forced in ("0", "no", "false", "off"):
        return False
    return env.get("TERM", "").strip().lower() in PLAIN_TERMS


def ascii_for(char: str) -> str:
    """One non-ASCII character as ASCII taking the same cells on screen."""
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0x2581 <= code <= 0x2588:  # lower blocks, one eighth to full
        return _RAMP[code - 0x2581]
    if 0x2500 <= code <= 0x257F:  # box drawing
        name = unicodedata.name(char, "")
        if "HORIZONTAL" in name and "VERTICAL" not in name:
            return "-"
        if "VERTICAL" in name and "HORIZONTAL" not in name:
            return "|"
        if "DIAGONAL" in name:
            return "/" if "UPPER RIGHT TO LOWER LEFT" in name else "\\"
        return "+"
    if 0x2580 <= code <= 0x259F:  # the other block elements
        return "#" if code in (0x2580, 0x2588, 0x2589, 0x258A, 0x258B, 0x258C, 0x2590, 0x2593) else ":"
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return ""  # takes no cell of its own
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return "??"
    decomposed = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return decomposed if len(decomposed) == 1 else "?"


class _AsciiTable(dict[int, str]):
    """``str.translate``'s table, filled in as characters are first met."""

    def __missing__(self, code: int) -> str:
        value = chr(code) if code < 128 else ascii_for(chr(code))
        self[code] = value
        return value


_TABLE = _AsciiTable()


def to_ascii(text: str) -> str:
    """``text`` with every character ASCII (escape sequences are ASCII already and pass as they are)."""
    return text if text.isascii() else text.translate(_TABLE)


def plain_driver(base: type[Any]) -> type[Any]:
    """A subclass of Textual's terminal driver ``base`` that writes ASCII and never enables the mouse."""

    class PlainDriver(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["mouse"] = False
            super().__init__(*args, **kwargs)

        def write(self, data: str) -> None:
            super().write(to_ascii(data))

    PlainDriver.__name__ = PlainDriver.__qualname__ = f"Plain{base.__name__}"
    return PlainDriver
