"""Workers: the classes whose ``perform`` runs a job, their defaults, outcomes and registry."""

from __future__ import annotations

import importlib
import random
import re
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from ._errors import InvalidConfig, InvalidJob
from ._job import (
    Job,
    JobSpec,
    check_max_attempts,
    check_priority,
    check_queue_name,
    check_tags,
    check_worker_name,
)


class Snooze(Exception):
    """Return or raise from ``perform`` to run the job again in ``seconds``, using no attempt."""

    def __init__(self, seconds: float) -> None:
        if (
            isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not 0 <= seconds <= 10 * 365 * 86_400  # also refuses nan and inf
        ):
            raise InvalidJob(f"Snooze takes a number of seconds from 0 to ten years, got {seconds!r}")
        super().__init__(f"snoozed for {seconds}s")
        self.seconds = float(seconds)


class Cancel(Exception):
    """Return or raise from ``perform`` to stop the job for good as cancelled."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class Discard(Exception):
    """Return or raise from ``perform`` to stop the job for good as discarded."""

    def __init__(self, reason: str = "discarded") -> None:
        super().__init__(reason)
        self.reason = reason


_registry: dict[str, type[Worker]] = {}
_registry_lock = threading.Lock()


def worker_name(cls: type) -> str:
    """The name a worker class is stored under: ``module.QualifiedName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def default_backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed ``attempt``: 15 + 2**attempt, with up to 10% jitter either way."""
    base = 15.0 + 2.0 ** min(attempt, 24)
    jitter = (rng or random).uniform(-0.1, 0.1) * base
    return max(0.0, base + jitter)


class Worker:
    """Subclass with keyword options and define ``perform(self, job)``.

    ``class Welcome(Worker, queue="mailers", max_attempts=5, priority=1, tags=["email"])``.
    The value ``perform`` returns is stored on the job; raising retries it with backoff.
    """

    queue: ClassVar[str] = "default"
    max_attempts: ClassVar[int] = 20
    priority: ClassVar[int] = 0
    tags: ClassVar[list[str]] = []
    timeout: ClassVar[float | None] = None
    unique: ClassVar[dict[str, Any] | None] = None
    name: ClassVar[str] = ""
    _checked: ClassVar[tuple[str, str, list[str], int, int, tuple[str, ...]] | None] = None

    def __init_subclass__(
        cls,
        *,
        queue: str | None = None,
        max_attempts: int | None = None,
        priority: int | None = None,
        tags: list[str] | None = None,
        timeout: float | None = None,
        unique: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if queue is not None:
            cls.queue = check_queue_name(queue)
        if max_attempts is not None:
            cls.max_attempts = check_max_attempts(max_attempts)
        if priority is not None:
            cls.priority = check_priority(priority)
        if tags is not None:
            cls.tags = check_tags(tags)
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise InvalidJob(f"timeout must be a positive number of seconds, got {timeout!r}")
            cls.timeout = float(timeout)
        if unique is not None:
            cls.unique = dict(unique)
        cls.name = name or worker_name(cls)
        with _registry_lock:
            _registry[cls.name] = cls

    @classmethod
    def new(
        cls,
        args: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        meta: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        scheduled_at: datetime | None = None,
        schedule_in: float | None = None,
        unique: dict[str, Any] | bool | None = None,
    ) -> JobSpec:
        """Build a validated job for this worker; options override the class defaults.

        ``unique=False`` drops the class's uniqueness for this one job.
        """
        if (
            queue is None and tags is None and priority is None and max_attempts is None and scheduled_at is None
            and schedule_in is None and unique is None and cls.unique is None
        ):  # the common case: only args (and meta) to check, the class's options were checked once
            name, queue, tags, priority, max_attempts, checked = cls._checked_options()
            return JobSpec.of_checked(name, queue, args, meta, checked, priority, max_attempts)
        return JobSpec.build(
            worker=cls.name,
            queue=cls.queue if queue is None else queue,
            args=args,
            meta=meta,
            tags=cls.tags if tags is None else tags,
            priority=cls.priority if priority is None else priority,
            max_attempts=cls.max_attempts if max_attempts is None else max_attempts,
            scheduled_at=scheduled_at,
            schedule_in=schedule_in,
            unique=cls.unique if unique is None else unique,
        )

    @classmethod
    def _checked_options(cls) -> tuple[str, str, list[str], int, int, tuple[str, ...]]:
        """The class's name, queue, tags, priority and max_attempts, checked as ``JobSpec.build``
        checks them, and the tags as checked; checked again whenever one of them was reassigned."""
        kept = cls.__dict__.get("_checked")
        if (
            kept is not None and kept[0] is cls.name and kept[1] is cls.queue and kept[2] is cls.tags
            and kept[3] is cls.priority and kept[4] is cls.max_attempts
        ):
            return kept
        kept = (
            check_worker_name(cls.name), check_queue_name(cls.queue), cls.tags, check_priority(cls.priority),
            check_max_attempts(cls.max_attempts), tuple(check_tags(cls.tags)),
        )
        cls._checked = kept
        return kept

    def backoff(self, job: Job) -> float:
        """Seconds before the next attempt after ``job`` failed; override for another curve."""
        return default_backoff(job.attempt)

    def perform(self, job: Job) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.perform is not defined")


def resolve_worker(name: str, modules: Sequence[str] = ()) -> type[Worker] | None:
    """The worker class stored under ``name``: a class this process has imported, or one from a
    module under ``modules`` (dotted prefixes the node was configured with), imported on demand.

    A job row never decides what a node imports: any other name is unknown, and imports nothing.
    """
    cls = _registry.get(name)
    if cls is not None:
        return cls
    module, _, qualname = name.rpartition(".")
    while module:
        if not any(module == m or module.startswith(m + ".") for m in modules):
            return None
        try:
            importlib.import_module(module)
        except ImportError:
            module, _, head = module.rpartition(".")
            qualname = f"{head}.{qualname}"
            continue
        except (Exception, SystemExit):  # a module that fails to import (even by sys.exit) is as good as missing
            return None
        return _registry.get(name)
    return None


def check_worker_modules(modules: object) -> tuple[str, ...]:
    """``modules`` as a tuple of dotted module prefixes, else ``InvalidConfig``."""
    if isinstance(modules, str) or not isinstance(modules, (list, tuple, set, frozenset)):
        raise InvalidConfig(f"worker_modules must be a list of module names, got {modules!r}")
    for m in modules:
        if not isinstance(m, str) or not _MODULE.match(m):
            raise InvalidConfig(f"worker_modules: {m!r} is not a dotted module name")
    return tuple(modules)


_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
