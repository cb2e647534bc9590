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
from ._inspect import (
    Attempt,
    Counts,
    CronRun,
    CronStatus,
    Inspector,
    NodeStatus,
    ProducerStatus,
    Rollup,
    RollupSeries,
    SentNotification,
    Summary,
    attempts,
)
from ._job import Job, JobSpec
from ._logs import RedactingFormatter, logging_to, state_log_file
from ._queues import GlobalLimit, Partition, QueueConfig, QueueSetting, RateLimit
from ._reporter import (
    Channel,
    LogChannel,
    Notice,
    Notification,
    Reporter,
    SentryChannel,
    SmtpChannel,
    WebhookChannel,
    send_mail,
)
from ._schema import apply_migrations, check_migrated, find_instances
from ._settings import Settings, load_settings, redact_url, server_label
from ._sql import state_list
from ._states import (
    DELETABLE,
    FINAL_STATES,
    RETRYABLE_BY_HAND,
    TRANSITIONS,
    UNSETTLED,
    WORKFLOW_RETRYABLE,
    JobState,
)
from ._worker import Cancel, Discard, Snooze, Worker, default_backoff
from ._workflow import Workflow

__all__ = [
    "DELETABLE",
    "FINAL_STATES",
    "RETRYABLE_BY_HAND",
    "TRANSITIONS",
    "UNSETTLED",
    "WORKFLOW_RETRYABLE",
    "apply_migrations",
    "check_migrated",
    "Attempt",
    "attempts",
    "Cancel",
    "Channel",
    "ControlResult",
    "Counts",
    "CronEntry",
    "CronRun",
    "CronStatus",
    "DatabaseUnavailable",
    "default_backoff",
    "Discard",
    "Engine",
    "Event",
    "find_instances",
    "GlobalLimit",
    "Inspector",
    "InvalidConfig",
    "InvalidJob",
    "InvalidTransition",
    "Job",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "load_settings",
    "logging_to",
    "LogChannel",
    "LysmoreError",
    "NodeStatus",
    "Notice",
    "Notification",
    "NotMigrated",
    "Partition",
    "ProducerStatus",
    "QueueConfig",
    "QueueSetting",
    "RateLimit",
    "redact_url",
    "RedactingFormatter",
    "Reporter",
    "Rollup",
    "RollupSeries",
    "SentNotification",
    "SentryChannel",
    "server_label",
    "state_list",
    "state_log_file",
    "Settings",
    "SmtpChannel",
    "Snooze",
    "Summary",
    "WebhookChannel",
    "send_mail",
    "Worker",
    "Workflow",
]
