"""User keymaps: a TOML file's ``[keys]`` table moves actions (by id) to other keys.

``load_keymap`` finds the file and checks it against the registry's rules before the dashboard
starts: changes keep uppercase letters, nothing takes the keys for moving, no two actions share a
key on one screen. Every problem is reported in one message naming the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import string
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import InvalidConfig

from .actions import ACTIONS, SCREEN_TITLES, SCREENS, Action, actions_for

KEYMAP_ENV = "LYSMORE_KEYMAP"
KEYMAP_EXAMPLE = '[keys]\nquit = "ctrl+q"\nfilter = "f"'

MODIFIERS = ("alt", "ctrl", "shift")  # in the order Textual names them: alt+ctrl+shift+KEY
NAMED_KEYS = frozenset(
    {"enter", "escape", "tab", "space", "backspace", "delete", "insert", "home", "end", "pageup", "pagedown",
     "up", "down", "left", "right", *(f"f{i}" for i in range(1, 25))}
)
KEY_ALIASES = {"esc": "escape", "return": "enter", "pgup": "pageup", "pgdn": "pagedown", "del": "delete",
               "ins": "insert"}
_NAME_REPLACEMENTS = {"solidus": "slash", "reverse_solidus": "backslash", "commercial_at": "at",
                      "hyphen_minus": "minus", "plus_sign": "plus", "low_line": "underscore"}
# Punctuation as Textual names it (``?`` is ``question_mark``), and back.
PUNCTUATION: dict[str, str] = {
    _NAME_REPLACEMENTS.get(n, n): c
    for c in string.punctuation
    for n in [unicodedata.name(c).lower().replace("-", "_").replace(" ", "_")]
}
_DISPLAY = {"escape": "esc", "pageup": "pgup", "pagedown": "pgdn", "up": "↑", "down": "↓", "left": "←",
            "right": "→", "delete": "del"}
# Keys no action may take: moving in lists and the job page, focus, and Textual's own copy/quit/palette.
RESERVED_KEYS: dict[str, str] = {
    **{k: "moving in lists" for k in ("j", "k", "g", "G", "up", "down", "left", "right", "home", "end",
                                        "pageup", "pagedown")},
    "tab": "moving the focus", "shift+tab": "moving the focus",
    "ctrl+c": "copying text", "ctrl+q": "quitting", "ctrl+p": "the command palette",
}
RESERVED_FOR = {"ctrl+q": "quit", "ctrl+p": "palette"}  # the one action that may take such a key


class KeymapError(InvalidConfig):
    """A keymap file cannot be used; the message names the file and every problem in it."""


@dataclass(frozen=True, slots=True)
class Keymap:
    """The user's remaps, already checked: action id -> key (Textual's name for it)."""

    keys: tuple[tuple[str, str], ...] = ()
    source: str | None = None

    def __bool__(self) -> bool:
        return bool(self.keys)

    def key_for(self, action_id: str) -> str | None:
        """The key ``action_id`` was moved to, if it was."""
        return dict(self.keys).get(action_id)

    def apply(self, a: Action) -> Action:
        """``a`` with its remapped key (and that key's label), or ``a`` itself."""
        key = self.key_for(a.id)
        if key is None or key == a.key:
            return a
        return dataclasses.replace(a, key=key, key_display=key_label(key))

    def apply_all(self, actions: tuple[Action, ...]) -> tuple[Action, ...]:
        """Every action of ``actions`` remapped."""
        return tuple(self.apply(a) for a in actions)

    def binding_keymap(self) -> dict[str, str]:
        """The same remaps as Textual's keymap: binding id (``scope.action``) -> key."""
        moved = dict(self.keys)
        return {f"{scope}.{a.id}": moved[a.id] for a in ACTIONS if a.id in moved for scope in a.scopes}


def key_label(key: str) -> str:
    """How a key is shown: ``^q``, ``?``, ``esc``, ``pgdn``, ``alt+x``."""
    *mods, base = key.split("+")
    shown = "+".join([*(m for m in mods if m != "ctrl"), _DISPLAY.get(base) or PUNCTUATION.get(base) or base])
    return f"^{shown}" if "ctrl" in mods else shown


def normalize_key(text: str) -> str:
    """Textual's name for a key written as ``?``, ``f``, ``F``, ``ctrl+q``, ``esc``, ``shift+tab``...

    Raises ValueError saying what is wrong.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("the key is empty")
    if len(raw) == 1:
        return _single(raw)
    if "," in raw:
        raise ValueError("one key per action (no commas)")
    if raw.endswith("++"):  # ctrl++
        raw = raw[:-1] + "plus"
    if "+" not in raw:
        return _named(raw, text.strip())
    *mods, base = raw.split("+")
    mods = [m.strip().lower() for m in mods]
    unknown = [m for m in mods if m not in MODIFIERS]
    if unknown or len(set(mods)) != len(mods):
        raise ValueError(f"{raw!r} is not a key: modifiers are ctrl, alt and shift")
    base = base.strip()
    if len(base) == 1 and base.isalpha():
        if base.isupper() or mods == ["shift"]:
            raise ValueError(f"{raw!r}: write an uppercase letter ({base.upper()!r}) for shift+letter, "
                             "and ctrl+ or alt+ with a lowercase one")
        name = base
    elif len(base) == 1:
        name = _single(base)
    else:
        name = _named(base, raw)
    return "+".join([*sorted(mods), name])


def _single(char: str) -> str:
    if char.isascii() and char.isalnum():
        return char
    if char.isascii() and char in string.punctuation:
        return next(name for name, c in PUNCTUATION.items() if c == char)
    raise ValueError(f"{char!r} is not a key: use a letter, digit, punctuation or a key name such as f5")


def _named(name: str, raw: str) -> str:
    low = name.strip().lower()
    low = KEY_ALIASES.get(low, low)
    if low in NAMED_KEYS or low in PUNCTUATION:
        return low
    raise ValueError(f"{raw!r} is not a key: use a letter, digit or punctuation, or a name such as enter, esc, "
                     "space, tab, f1-f24, up, pgdn, slash, ctrl+q")


def is_upper_letter(key: str) -> bool:
    """``A``-``Z``: the keys reserved for changes."""
    return len(key) == 1 and key.isascii() and key.isupper()


def check_keymap(entries: Mapping[str, Any], source: str | None = None) -> Keymap:
    """A checked ``Keymap`` from ``{action id: key}``; KeymapError lists every problem found."""
    known = {a.id: a for a in ACTIONS}
    problems: list[str] = []
    moved: dict[str, str] = {}
    for action_id, value in entries.items():
        if action_id not in known:
            close = difflib.get_close_matches(action_id, list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"actions are: {', '.join(known)}"
            problems.append(f"unknown action {action_id!r} ({hint})")
            continue
        if not isinstance(value, str):
            problems.append(f"{action_id} = {value!r}: the key must be a string, e.g. {action_id} = \"x\"")
            continue
        try:
            key = normalize_key(value)
        except ValueError as exc:
            problems.append(f"{action_id}: {exc}")
            continue
        entry = known[action_id]
        if entry.changes and not is_upper_letter(key):
            problems.append(f"{action_id} = {value!r}: {action_id} changes things, so it needs an uppercase "
                            "letter (A-Z); lowercase keys never change anything")
            continue
        if not entry.changes and is_upper_letter(key) and action_id != "select_all":
            problems.append(f"{action_id} = {value!r}: uppercase letters are kept for actions that change "
                            "things; pick a lowercase or named key")
            continue
        reserved = RESERVED_KEYS.get(key)
        if reserved and RESERVED_FOR.get(key) != action_id:
            problems.append(f"{action_id} = {value!r}: {key_label(key)} is kept for {reserved}")
            continue
        moved[action_id] = key
    keymap = Keymap(tuple(sorted(moved.items())), source)
    if not problems:
        problems.extend(_clashes(keymap))
    if problems:
        where = f"keymap {source}" if source else "keymap"
        raise KeymapError(f"{where}: " + "; ".join(problems))
    return keymap


def _clashes(keymap: Keymap) -> list[str]:
    """Two different actions on one key on the same screen (its own actions plus the app-wide ones)."""
    found: list[str] = []
    seen_pairs: set[tuple[str, str]] = set()
    for scope in SCREENS:
        by_key: dict[str, Action] = {}
        for a in (*actions_for(scope, keymap), *actions_for("app", keymap)):
            other = by_key.setdefault(a.key, a)
            if other.id != a.id:
                pair = (min(a.id, other.id), max(a.id, other.id))
                if pair not in seen_pairs:
                    seen_pairs.add(pair)
                    found.append(f"{a.display_key} is both {other.id} and {a.id} on {SCREEN_TITLES[scope]}")
    return found


def default_keymap_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_CONFIG_HOME/lysmore/keys.toml``, else ``~/.config/lysmore/keys.toml`` (None: no home)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / "lysmore" / "keys.toml"
    home = env.get("HOME") or os.path.expanduser("~")
    if not os.path.isabs(home):
        return None
    return Path(home) / ".config" / "lysmore" / "keys.toml"


def keymap_path(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> tuple[Path | None, bool]:
    """Which file to read, and whether it was asked for (then it must exist): the argument, then
    ``$LYSMORE_KEYMAP``, then the default location."""
    env = os.environ if environ is None else environ
    if path is not None and str(path):
        return Path(path).expanduser(), True
    if env.get(KEYMAP_ENV):
        return Path(env[KEYMAP_ENV]).expanduser(), True
    return default_keymap_path(env), False


def load_keymap(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Keymap:
    """The user's keymap (see ``keymap_path``); an absent default file means no remaps."""
    file, asked = keymap_path(path, environ)
    if file is None or (not asked and not file.exists()):
        return Keymap()
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeymapError(f"keymap {source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeymapError(f"keymap {source}: cannot read it: {exc}") from None
    return parse_keymap(text, source)


def parse_keymap(text: str, source: str | None = None) -> Keymap:
    """A checked keymap from TOML text with one ``[keys]`` table of ``action_id = "key"``."""
    where = f"keymap {source}" if source else "keymap"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KeymapError(f"{where}: not valid TOML ({exc}); expected e.g. {KEYMAP_EXAMPLE!r}") from None
    other = [k for k in data if k != "keys"]
    if other:
        raise KeymapError(f"{where}: unknown section or setting {', '.join(map(repr, other))}; "
                          f"remaps go in a [keys] table, e.g. {KEYMAP_EXAMPLE!r}")
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise KeymapError(f"{where}: 'keys' must be a table of action = \"key\", e.g. {KEYMAP_EXAMPLE!r}")
    return check_keymap(keys, source)
