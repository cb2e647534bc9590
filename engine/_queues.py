"""Queue configuration as given to an Engine: ``{"default": 10, "media": {"global_limit": 10}}``."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ._errors import InvalidConfig, InvalidJob
from ._job import check_queue_name

log = logging.getLogger("lysmore.engine")

MAX_LOCAL_LIMIT = 10_000
EVERY_NODE = "*"  # the node name of a setting that applies to every node
PARTITION_FIELDS = ("worker", "args")


@dataclass(frozen=True, slots=True)
class Partition:
    """What splits a limit into independent ones: the worker, the args, or chosen args keys."""

    worker: bool = False
    args: bool = False
    keys: tuple[str, ...] | None = None  # with args: only these keys (None: all of args)

    def params(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}_worker": self.worker,
            f"{prefix}_args": self.args,
            f"{prefix}_keys": list(self.keys) if self.keys is not None else None,
        }

    @property
    def label(self) -> str:
        """What splits the limit, for people: ``worker``, ``args``, ``worker,args.account_id``."""
        args = [f"args.{k}" for k in self.keys] if self.args and self.keys else ["args"] if self.args else []
        return ",".join((["worker"] if self.worker else []) + args)

    def as_dict(self) -> dict[str, Any]:
        fields = [f for f in PARTITION_FIELDS if getattr(self, f)]
        out: dict[str, Any] = {"fields": fields}
        if self.keys is not None:
            out["keys"] = list(self.keys)
        return out


@dataclass(frozen=True, slots=True)
class GlobalLimit:
    """At most ``allowed`` executing across all nodes (per partition, when partitioned)."""

    allowed: int
    partition: Partition | None = None

    @property
    def partitioned(self) -> bool:
        """Whether the limit holds per partition rather than for the whole queue."""
        return self.partition is not None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"allowed": self.allowed}
        if self.partition:
            out["partition"] = self.partition.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``allowed`` jobs started in any sliding window of ``period`` seconds."""

    allowed: int
    period: float
    partition: Partition | None = None

    @property
    def partitioned(self) -> bool:
        """Whether the limit holds per partition rather than for the whole queue."""
        return self.partition is not None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"allowed": self.allowed, "period": self.period}
        if self.partition:
            out["partition"] = self.partition.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Limits one queue runs with on this node."""

    name: str
    local_limit: int
    global_limit: GlobalLimit | None = None
    rate_limit: RateLimit | None = None

    def limits_dict(self) -> dict[str, Any]:
        """The limits in force, as stored in the producer row for dashboards."""
        return {
            "local_limit": self.local_limit,
            "global_limit": self.global_limit.as_dict() if self.global_limit else None,
            "rate_limit": self.rate_limit.as_dict() if self.rate_limit else None,
        }

    def with_overrides(
        self, local_limit: int | None, global_limit: GlobalLimit | None, rate_limit: RateLimit | None
    ) -> QueueConfig:
        return replace(
            self,
            local_limit=self.local_limit if local_limit is None else local_limit,
            global_limit=global_limit or self.global_limit,
            rate_limit=rate_limit or self.rate_limit,
        )


def check_limit(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_LOCAL_LIMIT:
        raise InvalidConfig(f"{name} must be an integer from {minimum} to {MAX_LOCAL_LIMIT}, got {value!r}")
    return value


def parse_partition(where: str, spec: object) -> Partition | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"fields", "keys"}:
        raise InvalidConfig(f"{where} partition must be a dict with 'fields' and optional 'keys', got {spec!r}")
    fields = spec.get("fields")
    if not isinstance(fields, (list, tuple)) or not fields or set(fields) - set(PARTITION_FIELDS):
        raise InvalidConfig(f"{where} partition fields must be a non-empty list of {PARTITION_FIELDS}, got {fields!r}")
    keys = spec.get("keys")
    if keys is not None:
        if "args" not in fields:
            raise InvalidConfig(f"{where} partition keys need 'args' among the fields")
        if not isinstance(keys, (list, tuple)) or not keys or not all(isinstance(k, str) and k for k in keys):
            raise InvalidConfig(f"{where} partition keys must be a non-empty list of names, got {keys!r}")
        keys = tuple(keys)
    return Partition(worker="worker" in fields, args="args" in fields, keys=keys)


def parse_global_limit(where: str, spec: object) -> GlobalLimit | None:
    if spec is None:
        return None
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = {"allowed": spec}
    if not isinstance(spec, dict) or set(spec) - {"allowed", "partition"} or "allowed" not in spec:
        raise InvalidConfig(f"{where} global_limit must be an int or {{'allowed': N, 'partition': ...}}, got {spec!r}")
    return GlobalLimit(
        check_limit(f"{where} global_limit allowed", spec["allowed"], 0),
        parse_partition(f"{where} global_limit", spec.get("partition")),
    )


def parse_rate_limit(where: str, spec: object) -> RateLimit | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"allowed", "period", "partition"} or not {"allowed", "period"} <= set(spec):
        raise InvalidConfig(
            f"{where} rate_limit must be {{'allowed': N, 'period': SECONDS, 'partition': ...}}, got {spec!r}"
        )
    period = spec["period"]
    if isinstance(period, bool) or not isinstance(period, (int, float)) or not 0 < period <= 86_400 * 7:
        raise InvalidConfig(f"{where} rate_limit period must be seconds between 0 and a week, got {period!r}")
    return RateLimit(
        check_limit(f"{where} rate_limit allowed", spec["allowed"], 0),
        float(period),
        parse_partition(f"{where} rate_limit", spec.get("partition")),
    )


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
    where = f"queue {name!r}"
    global_limit = parse_global_limit(where, spec.get("global_limit"))
    local = spec.get("local_limit", spec.get("limit"))
    if local is None:
        # Like Oban: a queue with only a global limit may run up to that many on one node.
        local = max(global_limit.allowed, 1) if global_limit and not global_limit.partition else 10
    return QueueConfig(
        name,
        check_limit(f"{where} local_limit", local, 1),
        global_limit=global_limit,
        rate_limit=parse_rate_limit(where, spec.get("rate_limit")),
    )


def parse_queues(queues: object) -> dict[str, QueueConfig]:
    """Validate an Engine's ``queues`` option; raise ``InvalidConfig`` naming what is wrong."""
    if queues is None:
        return {}
    if not isinstance(queues, dict):
        raise InvalidConfig(f"queues must be a dict of queue name -> limit, got {type(queues).__name__}")
    return {name: parse_queue(name, spec) for name, spec in queues.items()}


def _stored(value: object) -> object:
    """A stored limit as its JSON value (psycopg decodes jsonb; text holding JSON is decoded here)."""
    return json.loads(value) if isinstance(value, str) else value


def stored_global_limit(value: object, where: str = "stored global_limit") -> GlobalLimit | None:
    """A global limit as stored (in settings or a producer's report); an unreadable one is logged
    and read as none, so one bad row never stops a node or a reader."""
    try:
        return parse_global_limit(where, _stored(value))
    except (InvalidConfig, ValueError) as exc:
        log.error("ignoring %s: %s", where, exc)
        return None


def stored_rate_limit(value: object, where: str = "stored rate_limit") -> RateLimit | None:
    """A rate limit as stored; an unreadable one is logged and read as none."""
    try:
        return parse_rate_limit(where, _stored(value))
    except (InvalidConfig, ValueError) as exc:
        log.error("ignoring %s: %s", where, exc)
        return None


@dataclass(frozen=True, slots=True)
class QueueSetting:
    """Persisted control of one queue for one node name, or for every node (``EVERY_NODE``);
    a field left None is not set by this row."""

    queue: str
    node: str
    paused: bool | None = None
    local_limit: int | None = None
    global_limit: GlobalLimit | None = None
    rate_limit: RateLimit | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> QueueSetting:
        """A ``lysmore_queue_settings`` row (as a dict), its limits read as stored limits."""
        where = f"persisted settings of queue {row['queue']!r}"
        return cls(
            queue=row["queue"], node=row["node"], paused=row["paused"], local_limit=row["local_limit"],
            global_limit=stored_global_limit(row["global_limit"], f"{where}: global_limit"),
            rate_limit=stored_rate_limit(row["rate_limit"], f"{where}: rate_limit"),
        )


def effective_settings(
    config: QueueConfig, paused: bool, node: str, settings: Mapping[tuple[str, str], QueueSetting]
) -> tuple[bool, QueueConfig]:
    """(paused, limits) one node applies to ``config.name``: the node's own setting, then the one
    for every node, then ``config`` and ``paused`` (what the node was started with, or reports).

    ``settings`` maps (queue, node name) to persisted settings; other queues' rows are ignored.
    """
    effective = config
    for key in (EVERY_NODE, node):
        row = settings.get((config.name, key))
        if row is None:
            continue
        paused = row.paused if row.paused is not None else paused
        effective = effective.with_overrides(row.local_limit, row.global_limit, row.rate_limit)
    return paused, effective
