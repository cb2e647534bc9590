"""The jobs filter language: parse ``state:retryable queue:mailers !tag:slow age:>1h`` into terms.

Parsing is pure; ``tui.data`` turns terms into SQL with bound parameters, so nothing a user
types ever becomes SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .model import STATES

LIST_FIELDS = ("state", "queue", "worker", "node", "tag")
NUMBER_FIELDS = ("priority", "id", "attempt")
QUALIFIERS = (*LIST_FIELDS, *NUMBER_FIELDS, "age", "error", "args.KEY", "meta.KEY")
OPERATORS = (">=", "<=", ">", "<", "=")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_TERMS = 20
MAX_VALUES = 100

FILTER_HELP: tuple[tuple[str, str], ...] = (
    ("state:retryable,discarded", "jobs in any of these states"),
    ("queue:mailers", "jobs of a queue (commas: any of several)"),
    ("worker:Mailer", "worker name contains the text (so does a bare word)"),
    ("node:web-1", "last attempted on this node"),
    ("tag:billing", "jobs carrying the tag"),
    ("priority:0  priority:>2", "priority equal to, or compared with, a number"),
    ("id:42  id:<1000", "one job, or a range of ids"),
    ("args.user_id:42", "args (or meta.KEY) field equals the value; * = has the key"),
    ("attempt:>3", "attempt compared with a number"),
    ("age:>1h", "inserted more than an hour ago (<1h: less); s m h d w"),
    ('error:"timed out"', "an error message or traceback contains the text"),
    ("!queue:default", "! negates any term"),
)


class FilterError(ValueError):
    """A filter the dashboard cannot understand; ``message`` says what to fix."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Term:
    """One condition: ``field op values`` (values are alternatives), possibly negated."""

    field: str
    values: tuple[Any, ...]
    op: str = "="
    path: tuple[str, ...] = ()
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed filter: all of its terms must hold."""

    text: str = ""
    terms: tuple[Term, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms)


@dataclass(slots=True)
class _Token:
    start: int
    negated: bool
    key: str | None
    parts: list[tuple[str, bool]]  # comma-separated value parts, each (text, was quoted)


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = False
        if text[i] == "!":
            negated = True
            i += 1
            if i >= n or text[i].isspace():
                raise FilterError("'!' must be followed by a term, e.g. !queue:default", start)
        key: str | None = None
        parts: list[tuple[str, bool]] = []
        current: list[str] = []
        quoted = False
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch == '"':
                i += 1
                closed = False
                while i < n:
                    if text[i] == "\\" and i + 1 < n:
                        current.append(text[i + 1])
                        i += 2
                        continue
                    if text[i] == '"':
                        closed = True
                        i += 1
                        break
                    current.append(text[i])
                    i += 1
                if not closed:
                    raise FilterError('unclosed quote: add the closing "', start)
                quoted = True
                continue
            if ch == ":" and key is None and not quoted:
                key = "".join(current)
                current = []
            elif ch == "," and key is not None:
                parts.append(("".join(current), quoted))
                current, quoted = [], False
            else:
                current.append(ch)
            i += 1
        parts.append(("".join(current), quoted))
        tokens.append(_Token(start, negated, key, parts))
    return tokens


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``90s``, ``5m``, ``1h30m`` or ``2d``; raises ``ValueError``."""
    text = text.strip().lower()
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            raise ValueError(text)
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(text)
    return total


def _split_op(value: str) -> tuple[str, str]:
    for op in OPERATORS:
        if value.startswith(op):
            return op, value[len(op):]
    return "=", value


def _json_value(text: str, quoted: bool) -> Any:
    if quoted:
        return text
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


def _term(token: _Token) -> Term:
    key = token.key
    values = [p for p in token.parts]
    if key is None:
        text, _ = values[0]
        return Term("text", (text,), negated=token.negated)
    name = key.lower()
    if not any(text for text, _ in values):
        raise FilterError(f"{key}: needs a value, e.g. {_example(name)}", token.start)
    if any(not text for text, _ in values):
        raise FilterError(f"{key}: has an empty value between commas", token.start)
    if len(values) > MAX_VALUES:
        raise FilterError(f"{key}: takes at most {MAX_VALUES} values", token.start)
    texts = [text for text, _ in values]
    if name == "state":
        bad = [t for t in texts if t.lower() not in STATES]
        if bad:
            raise FilterError(
                f"state: {bad[0]!r} is not a state; use one of {', '.join(STATES)}", token.start
            )
        return Term("state", tuple(t.lower() for t in texts), negated=token.negated)
    if name in ("queue", "worker", "node", "tag"):
        return Term(name, tuple(texts), negated=token.negated)
    if name in NUMBER_FIELDS:
        return _number_term(name, key, values, token)
    if name == "age":
        if len(texts) > 1:
            raise FilterError("age: takes one duration, e.g. age:>1h", token.start)
        op, rest = _split_op(texts[0])
        if op == "=":
            op = ">"
        if op not in (">", ">=", "<", "<="):
            raise FilterError("age: takes > or <, e.g. age:>1h", token.start)
        try:
            seconds = parse_duration(rest)
        except ValueError:
            raise FilterError(
                f"age: {rest!r} is not a duration; use e.g. 30s, 5m, 1h30m, 2d", token.start
            ) from None
        return Term("age", (seconds,), op=op, negated=token.negated)
    if name == "error":
        return Term("error", (",".join(texts),), negated=token.negated)
    if name.startswith(("args.", "meta.")):
        field, _, path_text = key.partition(".")
        path = tuple(path_text.split("."))
        if not path_text or any(not part for part in path):
            raise FilterError(f"{field}.KEY: name the key, e.g. {field}.user_id:42", token.start)
        if len(path) > 8:
            raise FilterError(f"{field}.KEY: at most 8 levels deep", token.start)
        parsed = tuple(
            "*" if text == "*" and not quoted else _json_value(text, quoted) for text, quoted in values
        )
        return Term(field.lower(), parsed, path=path, negated=token.negated)
    known = ", ".join(q + ":" for q in QUALIFIERS)
    raise FilterError(f"unknown qualifier {key + ':'!r}; use one of {known}", token.start)


def _number_term(name: str, key: str, values: list[tuple[str, bool]], token: _Token) -> Term:
    texts = [text for text, _ in values]
    op, first = _split_op(texts[0])
    if op != "=" and len(texts) > 1:
        raise FilterError(f"{key}: a comparison takes one number, e.g. {name}:>3", token.start)
    numbers: list[int] = []
    for text in [first, *texts[1:]]:
        if not re.fullmatch(r"\d{1,18}", text):
            raise FilterError(f"{key}: {text!r} is not a whole number, e.g. {_example(name)}", token.start)
        numbers.append(int(text))
    if name == "priority" and any(n > 9 for n in numbers):
        raise FilterError("priority: is a number from 0 to 9", token.start)
    if name in ("attempt", "priority") and any(n > 2_000_000_000 for n in numbers):
        raise FilterError(f"{key}: number too large", token.start)
    return Term(name, tuple(numbers), op=op, negated=token.negated)


def _example(name: str) -> str:
    return {
        "state": "state:retryable", "queue": "queue:mailers", "worker": "worker:Mailer",
        "node": "node:web-1", "tag": "tag:billing", "priority": "priority:0", "id": "id:42",
        "attempt": "attempt:>3", "age": "age:>1h", "error": 'error:"timed out"',
    }.get(name, f"{name}:value")


def parse_filter(text: str) -> Filter:
    """Parse a filter; raises ``FilterError`` with a message fit to show the user."""
    text = text.strip()
    if not text:
        return Filter()
    if len(text) > 2000:
        raise FilterError("the filter is too long (at most 2000 characters)")
    tokens = _tokens(text)
    if len(tokens) > MAX_TERMS:
        raise FilterError(f"at most {MAX_TERMS} terms in one filter")
    return Filter(text, tuple(_term(token) for token in tokens))
