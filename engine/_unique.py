"""Unique job options, and the key a unique index arbitrates on."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._errors import InvalidJob
from ._states import JobState

UNIQUE_FIELDS = ("worker", "queue", "args", "meta")
DEFAULT_FIELDS = ("worker", "queue", "args")
DEFAULT_STATES = tuple(s.value for s in JobState if s not in (JobState.CANCELLED, JobState.DISCARDED))
REPLACEABLE = ("args", "meta", "priority", "scheduled_at", "max_attempts", "tags")
OPTIONS = {"period", "fields", "keys", "states", "replace"}
MAX_PERIOD = 100 * 365.25 * 86_400.0  # seconds; longer than this is "for ever" (None)


def normalize_unique(opts: object) -> dict[str, Any] | None:
    """Validate ``unique=`` options and fill in the defaults; ``InvalidJob`` names what is wrong."""
    if opts is None or opts is False:
        return None
    if opts is True:
        opts = {}
    if not isinstance(opts, dict):
        raise InvalidJob(f"unique must be a dict of options, got {opts!r}")
    unknown = set(opts) - OPTIONS
    if unknown:
        raise InvalidJob(f"unique has unknown options {sorted(unknown)}; known: {sorted(OPTIONS)}")
    period = opts.get("period", None)
    if period is not None and (
        isinstance(period, bool) or not isinstance(period, (int, float)) or not 0 < period <= MAX_PERIOD
    ):  # also refuses nan and inf, which PostgreSQL's interval cannot hold
        raise InvalidJob(f"unique period must be seconds > 0 and at most 100 years, or None for ever; got {period!r}")
    fields = opts.get("fields", DEFAULT_FIELDS)
    if not isinstance(fields, (list, tuple)) or not fields or set(fields) - set(UNIQUE_FIELDS):
        raise InvalidJob(f"unique fields must be a non-empty list of {UNIQUE_FIELDS}, got {fields!r}")
    keys = opts.get("keys")
    if keys is not None:
        if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) and k for k in keys):
            raise InvalidJob(f"unique keys must be a list of names, got {keys!r}")
        if not {"args", "meta"} & set(fields):
            raise InvalidJob("unique keys need 'args' or 'meta' among the fields")
    states = opts.get("states", DEFAULT_STATES)
    valid = {s.value for s in JobState}
    if not isinstance(states, (list, tuple)) or not states or set(states) - valid:
        raise InvalidJob(f"unique states must be a non-empty list of {sorted(valid)}, got {states!r}")
    replace = opts.get("replace", {})
    if not isinstance(replace, dict):
        raise InvalidJob(f"unique replace must map states to lists of fields, got {replace!r}")
    for state, what in replace.items():
        if state not in valid:
            raise InvalidJob(f"unique replace names unknown state {state!r}")
        if not isinstance(what, (list, tuple)) or set(what) - set(REPLACEABLE):
            raise InvalidJob(f"unique replace[{state!r}] must be a list of {REPLACEABLE}, got {what!r}")
    return {
        "period": None if period is None else float(period),
        "fields": [f for f in UNIQUE_FIELDS if f in fields],
        "keys": sorted(keys) if keys is not None else None,
        "states": sorted(states),
        "replace": {state: sorted(what) for state, what in replace.items()},
    }


def unique_key(opts: dict[str, Any], worker: str, queue: str, args: dict[str, Any], meta: dict[str, Any]) -> str:
    """A digest of the fields that make two jobs 'the same' under ``opts``."""
    values: dict[str, Any] = {"worker": worker, "queue": queue, "args": args, "meta": meta}
    keys = opts["keys"]
    picked: dict[str, Any] = {}
    for name in opts["fields"]:
        value = values[name]
        if keys is not None and name in ("args", "meta"):
            value = {k: value.get(k) for k in keys}
        picked[name] = value
    text = json.dumps(picked, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
