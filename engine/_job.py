"""The job as stored (``Job``) and the job about to be inserted (``JobSpec``), with validation."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from ._errors import InvalidJob
from ._states import JobState
from ._unique import normalize_unique, unique_key

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,127}$")
MAX_ARGS_BYTES = 1_048_576  # 1 MiB of JSON for args and for meta, each
MAX_TAGS = 64
MAX_ATTEMPTS_CAP = 1_000_000_000  # the column is a 32-bit integer; snoozes add one each
_EVENT_LOCK = threading.Lock()


def check_queue_name(queue: object) -> str:
    """Return ``queue`` if it is a usable queue name, else raise ``InvalidJob``."""
    if not isinstance(queue, str) or not queue:
        raise InvalidJob(f"queue name must be a non-empty string, got {queue!r}")
    if not QUEUE_NAME.match(queue):
        raise InvalidJob(
            f"queue name {queue!r} is malformed: use letters, digits, '_', '.', ':' or '-' "
            "(at most 128, not starting with punctuation)"
        )
    return queue


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _bad_text(text: str) -> bool:
    """True when PostgreSQL cannot store ``text``: a NUL character or a lone surrogate."""
    if "\x00" in text:
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash before "u0000"


class Unstorable(ValueError):
    """A value jsonb cannot hold; the message completes "<what> ..." (e.g. "is nested too deeply")."""


# One encoder for every value: json.dumps with options builds a new one per call, and even a kept
# JSONEncoder builds its C encoder anew on every call; so the C encoder is made once here. It keeps
# no record of the objects it is inside (a value that contains itself is refused before, by its
# size bound; past that it would end as RecursionError, reported as nested too deeply), and holds
# nothing between calls, so every thread may use it.
_kept = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
_make_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode: Any = (
    None if _make_c_encoder is None
    else _make_c_encoder(None, _kept.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
)


def _encode(value: Any) -> str:
    if _c_encode is None:  # an interpreter without the C accelerator
        return _kept.encode(value)
    return "".join(_c_encode(value, 0))


def json_text(value: Any, max_bytes: int = MAX_ARGS_BYTES, least: int | None = None) -> str:
    """``value`` as the JSON text a jsonb column takes, at most ``max_bytes``; else ``Unstorable``.

    Checked here, before any SQL, so one bad value never fails a statement that carries others.
    ``least`` is a lower bound of its size the caller already has (else it is counted here).
    """
    if least is None:
        least = _at_least(value, max_bytes)
    if least > max_bytes:  # known without writing it out: a huge value never holds the GIL for long
        raise Unstorable(f"is at least {least:,} bytes of JSON, over the cap of {max_bytes} bytes")
    try:
        text = _encode(value)
    except RecursionError:
        raise Unstorable("is nested too deeply to store") from None
    except (TypeError, ValueError) as exc:
        raise Unstorable(f"is not JSON-serialisable: {exc}") from None
    if len(text) > max_bytes:  # every character is at least one byte: refused before scanning it
        raise Unstorable(f"is at least {len(text):,} bytes of JSON, over the cap of {max_bytes} bytes")
    if "\\u0000" in text and _NUL_ESCAPE.search(text):  # the substring first: most texts have none
        raise Unstorable("contains a NUL character (\\x00), which PostgreSQL cannot store")
    if text.isascii():  # a byte a character, and no surrogate: nothing more to count
        return text
    try:
        size = len(text.encode())
    except UnicodeEncodeError as exc:  # a lone surrogate such as "\ud800": jsonb rejects it
        raise Unstorable(f"contains text that is not valid Unicode ({exc.reason})") from None
    if size > max_bytes:
        raise Unstorable(f"is {size} bytes of JSON, over the cap of {max_bytes} bytes")
    return text


def _at_least(value: Any, limit: int) -> int:
    """A lower bound of the size of ``value`` as JSON text, counted only until it passes ``limit``
    (text and keys by their length, everything else as one character)."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 1
    return total


_SCALARS = (str, int, float, bool, type(None))


def _flat_size(value: dict[str, Any]) -> int | None:
    """When ``value`` has text keys and values that JSON gives back as they are (str, int, float,
    bool, None, not subclasses), so that a copy of it is what a JSON round trip would return: a
    lower bound of its size as JSON, as ``_at_least`` counts it. Else None."""
    size = 2
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str or kind not in _SCALARS:
            return None
        size += len(key) + 3 + (len(item) + 2 if kind is str else 1)
    return size


def check_json(name: str, value: Any, max_bytes: int = MAX_ARGS_BYTES) -> tuple[dict[str, Any], str]:
    """``value`` as stored and its JSON text, if it is a JSON object PostgreSQL's jsonb will take;
    else ``InvalidJob`` naming the problem."""
    if not isinstance(value, dict):
        raise InvalidJob(f"{name} must be a dict (a JSON object), got {type(value).__name__}")
    if not value:
        return {}, "{}"
    flat = _flat_size(value)
    try:
        text = json_text(value, max_bytes, flat)
    except Unstorable as exc:
        raise InvalidJob(f"{name} {exc}") from None
    # What is stored is what comes back: tuples become lists, keys become strings; a flat object
    # of plain values comes back as it is, so a copy does (the caller's dict is not kept).
    result: dict[str, Any] = dict(value) if flat is not None else json.loads(text)
    return result, text


def args_texts(items: Iterable[Any]) -> list[str]:
    """The JSON text of every args of ``items`` (None is ``{}``), checked as ``check_json`` checks
    them; ``InvalidJob`` names the first that is not storable, by its position. No dict is kept or
    copied: what is stored comes back from the table, not from here (``Engine.insert_many``)."""
    texts: list[str] = []
    append = texts.append
    for n, value in enumerate(items):
        if value is None or (type(value) is dict and not value):
            append("{}")
            continue
        if not isinstance(value, dict):
            raise InvalidJob(f"args #{n} must be a dict (a JSON object), got {type(value).__name__}")
        try:
            append(json_text(value, MAX_ARGS_BYTES, _flat_size(value)))
        except Unstorable as exc:
            raise InvalidJob(f"args #{n} {exc}") from None
    return texts


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_field(text: str) -> str:
    """``text`` as one field of COPY's text format (backslash, tab and line ends escaped)."""
    return text.translate(_COPY_ESCAPES)


def copy_json(text: str) -> str:
    """JSON text from ``json_text`` as a field of COPY's text format. Such text holds no tab or
    line end (JSON escapes them in strings), so only its backslashes need doubling."""
    return text.replace("\\", "\\\\") if "\\" in text else text


def copy_array(items: Sequence[str]) -> str:
    """A text[] literal of ``items`` as a field of COPY's text format."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return copy_field("{" + ",".join(quoted) + "}")


MAX_ID = 2**63 - 1  # ids are bigint


def job_ids_of(job_ids: object) -> list[int]:
    """Job ids as a list of ints, before any SQL: ``InvalidJob`` for what is not an id at all; ids
    no bigint can hold are left out, since no job has them (as for any other missing id)."""
    if isinstance(job_ids, (str, bytes)) or not hasattr(job_ids, "__iter__"):
        raise InvalidJob(f"job ids must be an iterable of integers, got {job_ids!r}")
    ids = list(job_ids)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise InvalidJob(f"a job id must be an integer, got {i!r}")
    return [i for i in ids if 0 < i <= MAX_ID]


def workflow_id_of(workflow_id: object) -> str:
    """A workflow id as the text of a UUID, else ``InvalidJob`` (before any SQL)."""
    try:
        return str(workflow_id if isinstance(workflow_id, UUID) else UUID(str(workflow_id)))
    except (ValueError, TypeError, AttributeError):
        raise InvalidJob(f"a workflow id must be a UUID, got {workflow_id!r}") from None


def check_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise InvalidJob(f"priority must be an integer from 0 to 9, got {priority!r}")
    return priority


def check_max_attempts(max_attempts: object) -> int:
    if (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int)
        or not 1 <= max_attempts <= MAX_ATTEMPTS_CAP
    ):
        raise InvalidJob(f"max_attempts must be an integer from 1 to {MAX_ATTEMPTS_CAP}, got {max_attempts!r}")
    return max_attempts


def check_tags(tags: object) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, (list, tuple, set, frozenset)):
        raise InvalidJob(f"tags must be a list of strings, got {tags!r}")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag or _bad_text(tag) or len(tag) > 128:
            raise InvalidJob(f"each tag must be a non-empty string of at most 128 characters (no NUL, valid Unicode), got {tag!r}")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidJob(f"a job takes at most {MAX_TAGS} tags, got {len(out)}")
    return out


def check_worker_name(worker: object) -> str:
    if not isinstance(worker, str) or not worker or len(worker) > 255 or _bad_text(worker):
        raise InvalidJob(f"worker must be a non-empty name of at most 255 characters (no NUL, valid Unicode), got {worker!r}")
    return worker


def check_when(scheduled_at: object, schedule_in: object) -> None:
    if scheduled_at is not None and schedule_in is not None:
        raise InvalidJob("give scheduled_at or schedule_in, not both")
    if scheduled_at is not None:
        if not isinstance(scheduled_at, datetime):
            raise InvalidJob(f"scheduled_at must be a datetime, got {type(scheduled_at).__name__}")
        if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
            raise InvalidJob(
                "scheduled_at is a naive datetime; give it a timezone (e.g. datetime.now(UTC))"
            )
    if schedule_in is not None:
        if isinstance(schedule_in, bool) or not isinstance(schedule_in, (int, float)):
            raise InvalidJob(f"schedule_in must be a number of seconds, got {schedule_in!r}")
        if schedule_in != schedule_in or schedule_in < 0 or schedule_in > 10 * 365 * 86400:
            raise InvalidJob(f"schedule_in must be between 0 and ten years in seconds, got {schedule_in!r}")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job, not yet saved; build one with ``Worker.new`` and pass it to ``insert``."""

    worker: str
    queue: str
    args: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    priority: int = 0
    max_attempts: int = 20
    scheduled_at: datetime | None = None
    schedule_in: float | None = None
    unique: dict[str, Any] | None = None
    # Filled in by a Workflow when the job is one of its steps.
    workflow_id: UUID | None = None
    workflow_name: str | None = None
    workflow_step: str | None = None
    workflow_deps: tuple[str, ...] = ()
    # ``args`` and ``meta`` as JSON text, written once when built and sent as they are, each with the
    # dict it was written from: a spec copied with other args or meta (dataclasses.replace) writes
    # those anew. (Fields, not a tuple each: a bulk insert makes no more objects than it must, see
    # ``saved``.)
    args_text: str | None = field(default=None, repr=False, compare=False)
    meta_text: str | None = field(default=None, repr=False, compare=False)
    args_from: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    meta_from: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        *,
        worker: str,
        queue: str,
        args: Any,
        meta: Any = None,
        tags: Any = None,
        priority: Any = 0,
        max_attempts: Any = 20,
        scheduled_at: Any = None,
        schedule_in: Any = None,
        unique: Any = None,
    ) -> JobSpec:
        """Validate every field and return the spec, or raise ``InvalidJob`` naming the problem."""
        check_worker_name(worker)
        check_when(scheduled_at, schedule_in)
        queue = check_queue_name(queue)
        args, args_text = check_json("args", {} if args is None else args)
        meta, meta_text = check_json("meta", {} if meta is None else meta)
        opts = normalize_unique(unique)
        if opts is not None:
            opts["key"] = unique_key(opts, worker, queue, args, meta)
        return cls(
            worker=worker,
            queue=queue,
            args=args,
            meta=meta,
            tags=check_tags(tags),
            priority=check_priority(priority),
            max_attempts=check_max_attempts(max_attempts),
            scheduled_at=scheduled_at,
            schedule_in=None if schedule_in is None else float(schedule_in),
            unique=opts,
            args_text=args_text,
            meta_text=meta_text,
            args_from=args,
            meta_from=meta,
        )

    @classmethod
    def of_checked(
        cls, worker: str, queue: str, args: Any, meta: Any, tags: tuple[str, ...], priority: int,
        max_attempts: int,
    ) -> JobSpec:
        """A spec due now, not unique, from options already checked (a worker class's own, see
        ``Worker.new``): only ``args`` and ``meta`` are checked here, as ``build`` checks them."""
        args, args_text = check_json("args", {} if args is None else args)
        if meta is None:  # most jobs: no call to check what is known
            meta, meta_text = {}, "{}"
        else:
            meta, meta_text = check_json("meta", meta)
        return cls(
            worker, queue, args, meta, list(tags), priority, max_attempts, None, None, None, None, None,
            None, (), args_text, meta_text, args, meta,
        )

    def json_args(self) -> str:
        """``args`` as the JSON text sent to PostgreSQL."""
        return _text_of(self.args, self.args_text, self.args_from)

    def json_meta(self) -> str:
        """``meta`` as the JSON text sent to PostgreSQL."""
        return _text_of(self.meta, self.meta_text, self.meta_from)

    def plain(self) -> bool:
        """Due now, not unique and not in a workflow: insertable by COPY with column defaults."""
        return (
            self.scheduled_at is None and not self.schedule_in and self.unique is None
            and self.workflow_id is None
        )

    def saved(self, id: int, state: str | JobState, inserted_at: datetime, scheduled_at: datetime) -> Job:
        """The Job this spec became, given what the database decided on insert. It shares the spec's
        args, meta and tags (the spec's own copies, made when it was built): a bulk insert makes one
        Job and two empty lists a job, and fewer objects mean fewer runs of the garbage collector,
        which took more time than building the Jobs."""
        return Job(
            id, state if type(state) is JobState else JobState(state), self.queue, self.worker, self.args,
            self.meta, self.tags, self.priority, 0, self.max_attempts, [], None, inserted_at,
            scheduled_at, None, None, None, None, None, None, None, self.workflow_id, self.workflow_name,
            self.workflow_step, list(self.workflow_deps),
        )


def _text_of(value: dict[str, Any], text: str | None, written_from: dict[str, Any] | None) -> str:
    if text is not None and written_from is value:
        return text
    return json.dumps(value, separators=(",", ":"))


def specs_json(specs: Sequence[JobSpec]) -> str:
    """The rows ``insert.sql`` takes: one JSON array, one object per job; ``args`` and ``meta`` go
    in as the text they were encoded to when built."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    rows = (
        '{"args":' + s.json_args() + ',"meta":' + s.json_meta() + "," + dumps({
            "worker": s.worker, "queue": s.queue, "tags": s.tags,
            "priority": s.priority, "max_attempts": s.max_attempts,
            "scheduled_at": s.scheduled_at.isoformat() if s.scheduled_at else None,
            "schedule_in": s.schedule_in, "held": bool(s.workflow_deps),
            "workflow_id": str(s.workflow_id) if s.workflow_id else None,
            "workflow_name": s.workflow_name, "workflow_step": s.workflow_step,
            "workflow_deps": list(s.workflow_deps),
        })[1:]
        for s in specs
    )
    return "[" + ",".join(rows) + "]"


def _text_array(value: Any) -> list[str] | None:
    """An array of an enum type psycopg does not know arrives as '{a,b}' text."""
    if value is None:
        return None
    if isinstance(value, str):
        return [v for v in value.strip("{}").split(",") if v]
    return [str(v) for v in value]


@dataclass(eq=False, slots=True)
class Job:
    """A job as stored in PostgreSQL, handed to ``Worker.perform``."""

    id: int
    state: JobState
    queue: str
    worker: str
    args: dict[str, Any]
    meta: dict[str, Any]
    tags: list[str]
    priority: int
    attempt: int
    max_attempts: int
    errors: list[dict[str, Any]]
    result: Any
    inserted_at: datetime
    scheduled_at: datetime
    attempted_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    discarded_at: datetime | None
    attempted_by: list[str] | None
    node_id: UUID | None = None
    unique_key: str | None = None
    workflow_id: UUID | None = None
    workflow_name: str | None = None
    workflow_step: str | None = None
    workflow_deps: list[str] = field(default_factory=list)
    conflict: bool = False
    unique_states: list[str] | None = None
    _engine: Any = field(default=None, repr=False)
    _cancel: threading.Event | None = field(default=None, repr=False)
    _on_interrupt: Callable[[], None] | None = field(default=None, repr=False)  # an async execution's cancel

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        """Build a Job from a ``dict_row`` of the jobs table."""
        return cls(
            id=row["id"],
            state=JobState(row["state"]),
            queue=row["queue"],
            worker=row["worker"],
            args=row["args"],
            meta=row["meta"],
            tags=list(row["tags"] or []),
            priority=row["priority"],
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            errors=list(row["errors"] or []),
            result=row["result"],
            inserted_at=row["inserted_at"],
            scheduled_at=row["scheduled_at"],
            attempted_at=row["attempted_at"],
            completed_at=row["completed_at"],
            cancelled_at=row["cancelled_at"],
            discarded_at=row["discarded_at"],
            attempted_by=row["attempted_by"],
            node_id=row["node_id"],
            unique_key=row["unique_key"],
            workflow_id=row["workflow_id"],
            workflow_name=row["workflow_name"],
            workflow_step=row["workflow_step"],
            workflow_deps=list(row["workflow_deps"] or []),
            unique_states=_text_array(row.get("unique_states")),
        )

    @classmethod
    def claimed(cls, row: Sequence[Any], queue: str, node_name: str, node_id: UUID, node_text: str) -> Job:
        """A job a fetch of ``queue`` by the node ``node_name`` (``node_id``) just claimed, from a
        row of the ``claimed_columns`` part of ``jobs.sql`` (a Job's fields in order, but the
        state, which is executing, and what the node knows: the queue, and the attempted_by and
        node_id the fetch wrote; ``node_text`` is ``str(node_id)``, made once a fetch). Positional: a
        fetch builds one per job on the producer's thread."""
        (id_, worker, args, meta, tags, priority, attempt, max_attempts, errors, result, inserted_at,
         scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at, unique_key, workflow_id,
         workflow_name, workflow_step, workflow_deps, unique_states) = row
        return cls(
            id_, JobState.EXECUTING, queue, worker, args, meta, tags or [], priority, attempt, max_attempts,
            errors or [], result, inserted_at, scheduled_at, attempted_at, completed_at, cancelled_at,
            discarded_at, [node_name, node_text], node_id, unique_key, workflow_id, workflow_name,
            workflow_step, workflow_deps or [], False, unique_states,
        )

    def cancelled(self) -> bool:
        """True once this execution was asked to stop: cancelled, timed out, rescued or released."""
        return self._cancel is not None and self._cancel.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds until this execution is asked to stop; True if it was."""
        return self.cancel_event.wait(timeout)

    @property
    def cancel_event(self) -> threading.Event:
        """The event set when this execution is asked to stop, for code that waits on several."""
        with _EVENT_LOCK:
            if self._cancel is None:
                self._cancel = threading.Event()
            return self._cancel

    @property
    def prefix(self) -> str | None:
        """The instance (schema) this job belongs to, when an Engine handed it out."""
        return None if self._engine is None else str(self._engine.prefix)

    def workflow_results(self, steps: list[str] | None = None) -> dict[str, Any]:
        """Recorded results of this step's dependencies (or of ``steps``), by step name."""
        if self.workflow_id is None:
            return {}
        if self._engine is None:
            raise RuntimeError("workflow_results() needs a job handed to perform by an Engine")
        wanted = list(self.workflow_deps) if steps is None else list(steps)
        results: dict[str, Any] = self._engine.workflow_results(self.workflow_id, wanted)
        return results

    def _interrupt(self) -> None:
        self.cancel_event.set()
        if self._on_interrupt is not None:
            self._on_interrupt()
