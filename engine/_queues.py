"""Queue configuration as given to an Engine: ``{"default": 10, "media": {"global_limit": 10}}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._errors import InvalidConfig, InvalidJob
from ._job import check_queue_name

MAX_LOCAL_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Limits one queue runs with on this node."""

    name: str
    local_limit: int
    global_limit: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None


def check_limit(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_LOCAL_LIMIT:
        raise InvalidConfig(f"{name} must be an integer from {minimum} to {MAX_LOCAL_LIMIT}, got {value!r}")
    return value


def parse_queue(name: str, spec: object) -> QueueConfig:
    try:
        check_queue_name(name)
    except InvalidJob as exc:
        raise InvalidConfig(str(exc)) from None
    if isinstance(spec, int) and not isinstance(spec, bool):
        return QueueConfig(name, check_limit(f"queue {name!r} limit", spec, 1))
    if not isinstance(spec, dict):
        raise InvalidConfig(f"queue {name!r} must be an int limit or a dict of limits, got {spec!r}")
    unknown = set(spec) - {"local_limit", "limit", "global_limit", "rate_limit"}
    if unknown:
        raise InvalidConfig(f"queue {name!r} has unknown options {sorted(unknown)}")
    global_limit: Any = spec.get("global_limit")
    if isinstance(global_limit, int) and not isinstance(global_limit, bool):
        global_limit = {"allowed": global_limit}
    if global_limit is not None and not isinstance(global_limit, dict):
        raise InvalidConfig(f"queue {name!r} global_limit must be an int or a dict, got {global_limit!r}")
    local = spec.get("local_limit", spec.get("limit"))
    if local is None:
        local = global_limit["allowed"] if isinstance(global_limit, dict) and "allowed" in global_limit else 10
    return QueueConfig(
        name,
        check_limit(f"queue {name!r} local_limit", local, 1),
        global_limit=global_limit,
        rate_limit=spec.get("rate_limit"),
    )


def parse_queues(queues: object) -> dict[str, QueueConfig]:
    """Validate an Engine's ``queues`` option; raise ``InvalidConfig`` naming what is wrong."""
    if queues is None:
        return {}
    if not isinstance(queues, dict):
        raise InvalidConfig(f"queues must be a dict of queue name -> limit, got {type(queues).__name__}")
    return {name: parse_queue(name, spec) for name, spec in queues.items()}
