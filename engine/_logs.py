"""Logs to a file while a full-screen program owns the terminal, every password in them masked.

A ``StreamHandler`` keeps the stderr it was made with, so a log line (``psycopg.pool`` warns about
each broken connection during an outage) would be drawn across the screen; ``logging_to`` takes
the terminal's handlers off the root logger, and Python's ``warnings`` with them, until it ends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import InvalidConfig
from ._settings import redact_url

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (message, exception, stack) has its passwords masked: every
    DSN form ``redact_url`` knows, and the literal ``secrets`` given (a password with a space in it
    may stand alone in a libpq message)."""

    def __init__(self, fmt: str = LOG_FORMAT, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        text = redact_url(super().format(record))
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def state_log_file(name: str) -> Path:
    """``$XDG_STATE_HOME/lysmore/<name>.log``, else ``~/.local/state/lysmore/<name>.log``."""
    base = os.environ.get("XDG_STATE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "lysmore" / f"{name}.log"


def passwords(urls: Iterable[str | None]) -> tuple[str, ...]:
    """The passwords written in ``urls`` (any form libpq takes; an unparsable one gives none)."""
    from psycopg.conninfo import conninfo_to_dict

    found = []
    for url in urls:
        try:
            password = conninfo_to_dict(url or "").get("password")
        except Exception:
            continue
        if password:
            found.append(str(password))
    return tuple(found)


def _terminal_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


@contextmanager
def logging_to(path: str | os.PathLike[str], urls: Iterable[str | None] = ()) -> Iterator[Path]:
    """Send every log record (and Python warning) to ``path`` instead of the terminal until the
    block ends, with the passwords of ``urls`` masked wherever they appear; yields the path.
    A path that cannot be written raises ``InvalidConfig`` naming it.
    """
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(target, encoding="utf-8")
    except OSError as exc:
        raise InvalidConfig(f"cannot write the log file {str(target)!r}: {exc.strerror or exc}") from None
    handler.setFormatter(RedactingFormatter(secrets=passwords(urls)))
    root = logging.getLogger()
    streams = _terminal_handlers(root)
    for h in streams:
        root.removeHandler(h)
    root.addHandler(handler)
    last_resort = logging.lastResort
    logging.lastResort = handler  # a logger that does not propagate, with no handler of its own
    logging.captureWarnings(True)  # a library's warning printed on stderr would tear the screen too
    try:
        yield target
    finally:
        logging.captureWarnings(False)
        logging.lastResort = last_resort
        root.removeHandler(handler)
        handler.close()
        for h in streams:
            root.addHandler(h)
