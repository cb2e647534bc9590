"""Typed errors raised by the engine; each names the problem it reports."""

from __future__ import annotations

import psycopg


class LysmoreError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidJob(LysmoreError, ValueError):
    """A job could not be built because one of its fields is wrong; nothing was written."""


class InvalidConfig(LysmoreError, ValueError):
    """An engine, queue or setting was configured with a value it cannot use."""


class JobNotFound(LysmoreError, LookupError):
    """No job with the given id exists in this instance."""


class InvalidTransition(LysmoreError):
    """A job cannot move from its current state to the one asked for."""


class DatabaseUnavailable(LysmoreError, psycopg.OperationalError):
    """PostgreSQL could not be reached; the message names the server (never its password)."""


class NotMigrated(LysmoreError):
    """The database schema for this prefix is missing or older than the code needs."""
