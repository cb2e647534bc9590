"""Lysmore's job engine: PostgreSQL-backed background jobs for Python.

The public surface is what this module exports; everything else is private.
"""

from __future__ import annotations

from ._cron import CronEntry
from ._engine import ControlResult, Engine
from ._errors import (
    DatabaseUnavailable,
    InvalidConfig,
    InvalidJob,
    InvalidTransition,
    JobNotFound,
    LysmoreError,
    NotMigrated,
)
from ._events import Event
from ._job import Job, JobSpec
from ._schema import apply_migrations
from ._settings import Settings, load_settings, redact_url, server_label
from ._states import DELETABLE, RETRYABLE_BY_HAND, TRANSITIONS, JobState
from ._worker import Cancel, Discard, Snooze, Worker, default_backoff
from ._workflow import Workflow

__all__ = [
    "DELETABLE",
    "RETRYABLE_BY_HAND",
    "TRANSITIONS",
    "Cancel",
    "DatabaseUnavailable",
    "ControlResult",
    "CronEntry",
    "Discard",
    "Engine",
    "Event",
    "InvalidConfig",
    "InvalidJob",
    "InvalidTransition",
    "Job",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "LysmoreError",
    "NotMigrated",
    "Settings",
    "Snooze",
    "Worker",
    "Workflow",
    "apply_migrations",
    "default_backoff",
    "load_settings",
    "redact_url",
    "server_label",
]
