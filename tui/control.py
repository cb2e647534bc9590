"""The one gate every change passes: read-only, then rights, then job (or workflow) states, then
(in the UI) a confirmation; the change and its audit row are written in one transaction.

A ``Request`` is built from what the user saw when pressing the key (targets with the states
they had on screen), so a refresh cannot change what an action applies to.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine import (
    DELETABLE,
    RETRYABLE_BY_HAND,
    TRANSITIONS,
    WORKFLOW_RETRYABLE,
    Engine,
    JobState,
    redact_url,
)

from .access import Access

log = logging.getLogger("lysmore.tui")

# States each job action may start from, as the engine defines them.
JOB_ACTION_FROM: dict[str, frozenset[str]] = {
    "cancel": frozenset(s.value for s in TRANSITIONS[JobState.CANCELLED]),
    "retry": frozenset(s.value for s in RETRYABLE_BY_HAND),
    "delete": frozenset(s.value for s in DELETABLE),
}
JOB_VERBS = {"cancel": ("Cancelled", "cancel"), "retry": ("Retried", "retry"), "delete": ("Deleted", "delete")}
# Engine.cancel_workflow cancels the steps a job cancel may start from; any other state is finished.
WORKFLOW_CANCELS_FROM = JOB_ACTION_FROM["cancel"]
# Engine.retry_workflow runs these steps again; the confirmation tells them in the engine's order.
WORKFLOW_RETRIES_FROM: tuple[str, ...] = tuple(s.value for s in JobState if s in WORKFLOW_RETRYABLE)
# Why a workflow action has nothing to do when the user saw no step it applies to.
WORKFLOW_NOTHING = {
    "cancel_workflow": "nothing to cancel: every step has finished",
    "retry_workflow": "nothing to retry: no step was cancelled or discarded",
}
TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class Target:
    """One thing an action applies to, as the user saw it."""

    kind: str  # "job", "queue", "node", "workflow" or "cron"
    key: Any
    label: str
    state: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """An attempted change: which action, on which targets, with which parameters."""

    action: str  # registry id (pause, scale, cancel, retry, delete), cancel_workflow, retry_workflow or pause_cron
    permission: str
    audit_action: str  # what the audit row says: pause_queue, resume_node, retry_jobs, ...
    title: str  # the question the confirmation asks
    targets: tuple[Target, ...]
    queue: str | None = None
    node: str | None = None
    queues: tuple[str, ...] = ()
    limit: int | None = None
    global_limit: int | None = None
    rate_limit: tuple[int, float] | None = None  # (allowed, period seconds)
    nodes_affected: int = 0
    filter: str | None = None
    bulk: bool = False
    workflow: str | None = None  # the workflow as the user knows it: its name, or the start of its id
    steps_seen: int = 0  # how many steps the user saw the action would change
    cron: str | None = None  # a cron entry's name (its key)

    @property
    def target_keys(self) -> list[Any]:
        """The targets as the audit row lists them."""
        return [t.key for t in self.targets]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's answer before confirmation: go ahead with ``eligible``, or why not."""

    allowed: bool
    outcome: str  # "allowed", "denied" (access) or "rejected" (no target in a state that allows it)
    reason: str
    eligible: tuple[Target, ...] = ()
    skipped: tuple[tuple[str, int], ...] = ()  # (state, how many) the action cannot apply to


@dataclass(frozen=True, slots=True)
class Result:
    """What a performed change did, with the toast to show."""

    ok: bool
    message: str
    changed: tuple[Any, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


def plural(n: int, word: str) -> str:
    """``1 job``, ``3 jobs``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def skipped_text(skipped: dict[str, int]) -> str:
    """`` (2 skipped: executing)`` or empty."""
    total = sum(skipped.values())
    if not total:
        return ""
    parts = ", ".join(f"{n} {state}" if len(skipped) > 1 else state for state, n in sorted(skipped.items()))
    return f" ({total} skipped: {parts})"


class Gate:
    """Checks and performs changes for one user, writing an audit row for every attempt."""

    def __init__(self, engine: Engine, access: Access, on_audit: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.access = access
        self._on_audit = on_audit
        self._lock = threading.Lock()
        self._unaudited: list[tuple[Request, dict[str, Any]]] = []

    # -- checking -----------------------------------------------------------------------------
    def check(self, request: Request) -> Verdict:
        """Read-only, then rights, then job states: may this go to confirmation?"""
        if not self.access.may(request.permission):
            return Verdict(False, "denied", self.access.why_not(request.permission))
        if not request.targets:
            return Verdict(False, "rejected", "nothing selected")
        if request.action in WORKFLOW_NOTHING:
            if not request.steps_seen:
                return Verdict(False, "rejected", WORKFLOW_NOTHING[request.action])
            return Verdict(True, "allowed", "", eligible=request.targets)
        allowed_from = JOB_ACTION_FROM.get(request.action)
        if allowed_from is None:
            return Verdict(True, "allowed", "", eligible=request.targets)
        eligible = tuple(t for t in request.targets if t.state in allowed_from)
        skipped: dict[str, int] = {}
        for t in request.targets:
            if t.state not in allowed_from:
                skipped[t.state or "gone"] = skipped.get(t.state or "gone", 0) + 1
        if not eligible:
            verb = JOB_VERBS[request.action][1]
            states = ", ".join(f"{n} {s}" for s, n in sorted(skipped.items()))
            return Verdict(False, "rejected", f"nothing to {verb}: {states}", skipped=tuple(sorted(skipped.items())))
        return Verdict(True, "allowed", "", eligible=eligible, skipped=tuple(sorted(skipped.items())))

    # -- recording refusals -------------------------------------------------------------------
    def refuse(self, request: Request, verdict: Verdict) -> None:
        """Audit a denied or rejected attempt (nothing else changes)."""
        self._audit(request, verdict.outcome, {"reason": verdict.reason})

    def fail(self, request: Request, cause: str) -> None:
        """Audit an attempt that failed (nothing changed); when the database cannot take the row
        now, keep it for ``write_unaudited`` once it can."""
        detail = {"error": redact_url(cause)[:500]}
        try:
            self._audit(request, "failed", detail)
        except Exception as exc:
            log.warning("could not audit the failed action %s now (%s); kept for when the database is back",
                        request.audit_action, redact_url(str(exc)))
            with self._lock:
                self._unaudited.append((request, {**detail, "audited_late": True}))

    @property
    def unaudited(self) -> int:
        """Failed attempts whose audit row waits for the database."""
        with self._lock:
            return len(self._unaudited)

    def write_unaudited(self) -> int:
        """Write the audit rows kept while the database was unreachable; returns how many (a row
        that fails again stays kept). Only the audit row is late: the change itself never runs."""
        with self._lock:
            kept, self._unaudited = self._unaudited, []
        written = 0
        for i, (request, detail) in enumerate(kept):
            try:
                self._audit(request, "failed", detail)
            except Exception as exc:
                log.warning("could not write a kept audit row yet: %s", redact_url(str(exc)))
                with self._lock:
                    self._unaudited[:0] = kept[i:]
                break
            written += 1
        return written

    def decline(self, request: Request) -> None:
        """Audit an attempt the user backed out of at the confirmation."""
        self._audit(request, "declined", {})

    def _audit(self, request: Request, outcome: str, detail: dict[str, Any]) -> None:
        detail = {**self._params(request), **detail}
        self.engine.record_audit(
            self.access.user, request.audit_action, targets=request.target_keys, outcome=outcome,
            filter=request.filter, detail=detail,
        )
        if self._on_audit:
            self._on_audit()

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if request.queue is not None:
            params["queue"] = request.queue
        if request.node is not None:
            params["node"] = request.node
        if request.limit is not None:
            params["limit"] = request.limit
        if request.queues:
            params["queues"] = list(request.queues)
        if request.workflow is not None:
            params["workflow"] = request.workflow
        if request.cron is not None:
            params["cron"] = request.cron
        if request.action in WORKFLOW_NOTHING:
            params["steps_seen"] = request.steps_seen
        return params

    # -- performing ---------------------------------------------------------------------------
    def perform(self, request: Request) -> Result:
        """Check again, apply the change and write its audit row in the same transaction."""
        verdict = self.check(request)
        if not verdict.allowed:
            self.refuse(request, verdict)
            return Result(False, f"Not allowed: {verdict.reason}")
        try:
            with self.engine.connection() as conn, conn.transaction():
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{TIMEOUT_MS}ms",))
                result = self._apply(conn, request, verdict)
                detail = {**self._params(request), **result.detail}
                self.engine.record_audit(
                    self.access.user, request.audit_action, targets=request.target_keys, outcome="allowed",
                    filter=request.filter, detail=detail, conn=conn,
                )
        except Exception as exc:
            error = redact_url(" ".join(str(exc).split()) or type(exc).__name__)
            log.warning("dashboard action %s failed: %s", request.audit_action, error)
            self.fail(request, error)
            what = request.title.rstrip("?") or request.audit_action.replace("_", " ")
            return Result(False, f"{what}: failed, nothing changed. {error[:200]}")
        if self._on_audit:
            self._on_audit()
        return result

    def _apply(self, conn: Any, request: Request, verdict: Verdict) -> Result:
        eng = self.engine
        action = request.action
        if action in JOB_VERBS:
            ids = [int(t.key) for t in verdict.eligible]
            method = {"cancel": eng.cancel_jobs, "retry": eng.retry_jobs, "delete": eng.delete_jobs}[action]
            changed = method(ids, conn=conn)
            skipped = dict(verdict.skipped)
            missed = len(ids) - len(changed)
            if missed:
                skipped["changed meanwhile"] = missed
            done_word = JOB_VERBS[action][0]
            message = f"{done_word} {plural(len(changed), 'job')}{skipped_text(skipped)}"
            return Result(True, message, tuple(changed), {"changed": list(changed), "skipped": skipped})
        if action == "cancel_workflow":
            target = verdict.eligible[0]
            cancelled = eng.cancel_workflow(str(target.key), conn=conn)
            meanwhile = request.steps_seen - len(cancelled)
            note = f"; {meanwhile} finished meanwhile" if meanwhile > 0 else ""
            message = f"Cancelled workflow {request.workflow or target.key} ({plural(len(cancelled), 'step')}{note})"
            return Result(True, message, tuple(cancelled), {"changed": list(cancelled)})
        if action == "retry_workflow":
            target = verdict.eligible[0]
            retried = eng.retry_workflow(str(target.key), conn=conn)
            # The engine retries what has failed now: say so when that is not what the user saw.
            note = ""
            if len(retried) < request.steps_seen:
                note = f"; {request.steps_seen - len(retried)} no longer failed"
            elif len(retried) > request.steps_seen:
                note = f"; {len(retried) - request.steps_seen} more failed meanwhile"
            message = f"Retried workflow {request.workflow or target.key} ({plural(len(retried), 'step')}{note})"
            return Result(True, message, tuple(retried), {"changed": list(retried)})
        if action == "pause" and request.audit_action in ("pause_node", "resume_node"):
            pause = request.audit_action == "pause_node"
            assert request.node is not None
            for queue in request.queues:
                (eng.pause_queue if pause else eng.resume_queue)(queue, node=request.node, conn=conn)
            word = "Paused" if pause else "Resumed"
            return Result(True, f"{word} {plural(len(request.queues), 'queue')} on {request.node}",
                          tuple(request.queues))
        if action == "pause":
            assert request.queue is not None
            pause = request.audit_action == "pause_queue"
            (eng.pause_queue if pause else eng.resume_queue)(request.queue, node=request.node, conn=conn)
            word = "Paused" if pause else "Resumed"
            return Result(True, f"{word} {request.queue} {self._where(request)}", (request.queue,))
        if action == "scale":
            assert request.queue is not None
            rate = request.rate_limit
            eng.scale_queue(
                request.queue, request.limit, global_limit=request.global_limit,
                rate_limit={"allowed": rate[0], "period": rate[1]} if rate else None,
                node=request.node, conn=conn,
            )
            return Result(True, f"Scaled {request.queue} to {limits_text(request)} {self._where(request)}",
                          (request.queue,))
        if action == "pause_cron":
            assert request.cron is not None
            pause = request.audit_action == "pause_cron"
            toggled = (eng.pause_cron if pause else eng.resume_cron)(request.cron, conn=conn)
            word = "Paused" if pause else "Resumed"
            note = "" if toggled else f" (it was {'paused' if pause else 'running'} already)"
            return Result(True, f"{word} cron {request.cron}{note}", (request.cron,), {"changed": toggled})
        raise ValueError(f"unknown action {action!r}")

    @staticmethod
    def _where(request: Request) -> str:
        if request.node is not None:
            return f"on {request.node}"
        if request.nodes_affected:
            return f"on {plural(request.nodes_affected, 'node')}"
        return "on every node"


# -- requests built from what the user saw ---------------------------------------------------------
def queue_pause_request(queue: str, paused: bool, nodes: int) -> Request:
    """Pause (or, when paused everywhere, resume) a queue on every node."""
    verb = "resume" if paused else "pause"
    where = f"on {plural(nodes, 'node')}" if nodes else "on every node"
    return Request(
        action="pause", permission="pause_queues", audit_action=f"{verb}_queue",
        title=f"{verb.capitalize()} queue {queue} {where}?",
        targets=(Target("queue", queue, f"queue {queue} {where}"),), queue=queue, nodes_affected=nodes,
    )


def queue_node_pause_request(queue: str, node: str, paused: bool) -> Request:
    """Pause (or resume) one queue on one node."""
    verb = "resume" if paused else "pause"
    return Request(
        action="pause", permission="pause_queues", audit_action=f"{verb}_queue",
        title=f"{verb.capitalize()} queue {queue} on {node}?",
        targets=(Target("queue", queue, f"queue {queue} on node {node}"),), queue=queue, node=node,
    )


def node_pause_request(node: str, queues: tuple[str, ...], paused: bool) -> Request:
    """Pause (or, when all are paused, resume) every queue of a node."""
    verb = "resume" if paused else "pause"
    return Request(
        action="pause", permission="pause_queues", audit_action=f"{verb}_node",
        title=f"{verb.capitalize()} all {plural(len(queues), 'queue')} on {node}?",
        targets=tuple(Target("queue", q, f"queue {q} on node {node}") for q in queues) or (
            Target("node", node, f"node {node} (runs no queues)"),),
        node=node, queues=queues,
    )


@dataclass(frozen=True, slots=True)
class ScaleChange:
    """What the scale prompt asked for: any of a local limit, a global limit, a rate limit."""

    local: int | None = None
    global_allowed: int | None = None
    rate: tuple[int, float] | None = None


SCALE_HELP = "a whole number (local limit), global N, or rate N/SECONDS; several with commas"


def parse_scale(text: str) -> ScaleChange:
    """``"20"``, ``"global 10"``, ``"rate 20/30"`` or several joined by commas; ValueError says why."""
    local: int | None = None
    global_allowed: int | None = None
    rate: tuple[int, float] | None = None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"enter {SCALE_HELP}")
    for part in parts:
        words = part.split()
        kind, value = ("local", words[0]) if len(words) == 1 else (words[0].lower(), " ".join(words[1:]))
        if kind in ("local", "l") and value.isdigit() and int(value) <= 10_000:
            local = int(value)
        elif kind in ("global", "g") and value.isdigit() and int(value) <= 10_000:
            global_allowed = int(value)
        elif kind in ("rate", "r") and "/" in value:
            allowed, _, period = value.partition("/")
            try:
                allowed_n, period_s = int(allowed), float(period)
            except ValueError:
                raise ValueError(f"rate takes N/SECONDS, e.g. rate 20/30; got {value!r}") from None
            if not (0 <= allowed_n <= 10_000 and 0 < period_s <= 7 * 86_400):
                raise ValueError("rate needs 0 to 10000 starts per 0 to 604800 seconds")
            rate = (allowed_n, period_s)
        else:
            raise ValueError(f"{part!r} is not {SCALE_HELP} (0 to 10000)")
    return ScaleChange(local, global_allowed, rate)


def limits_text(request: Request) -> str:
    """``3``, ``global 10``, ``rate 20/30s``, joined: what a scale request sets."""
    parts = []
    if request.limit is not None:
        parts.append(str(request.limit))
    if request.global_limit is not None:
        parts.append(f"global {request.global_limit}")
    if request.rate_limit is not None:
        parts.append(f"rate {request.rate_limit[0]}/{request.rate_limit[1]:g}s")
    return ", ".join(parts)


def scale_request(
    queue: str, limit: int | None, node: str | None = None, nodes: int = 0, *,
    global_limit: int | None = None, rate_limit: tuple[int, float] | None = None,
) -> Request:
    """Set a queue's limits on one node or on every node (nothing chosen yet: just a probe)."""
    where = f"on {node}" if node else (f"on {plural(nodes, 'node')}" if nodes else "on every node")
    request = Request(
        action="scale", permission="scale_queues", audit_action="scale_queue",
        title="", targets=(), queue=queue, node=node, limit=limit, global_limit=global_limit,
        rate_limit=rate_limit, nodes_affected=nodes,
    )
    chosen = limits_text(request)
    to = f" to {chosen}" if chosen else ""
    label = f"queue {queue} {where}" + (f": limit {chosen}" if chosen else "")
    return dataclasses.replace(request, title=f"Scale queue {queue}{to} {where}?",
                               targets=(Target("queue", queue, label),))


def jobs_request(action: str, jobs: list[tuple[int, str, str]], filter: str | None = None) -> Request:
    """Cancel, retry or delete jobs given as (id, state as seen, worker)."""
    verb = JOB_VERBS[action][1]
    targets = tuple(
        Target("job", job_id, f"job {job_id}  {state}  {worker}", state) for job_id, state, worker in jobs
    )
    return Request(
        action=action, permission=f"{verb}_jobs", audit_action=f"{verb}_jobs",
        title=f"{verb.capitalize()} {plural(len(targets), 'job')}?", targets=targets, filter=filter or None,
        bulk=len(targets) > 1,
    )


def workflow_label(workflow_id: str, name: str | None) -> str:
    """``ingest`` or, for a workflow without a name, the first part of its id."""
    return name or workflow_id[:8]


def workflow_cancel_request(workflow_id: str, name: str | None, steps: Iterable[tuple[str, int]]) -> Request:
    """Cancel a workflow's unfinished steps, given its steps counted by state as the user saw them."""
    return _workflow_request(
        "cancel_workflow", "cancel_jobs", "Cancel", workflow_id, name, steps, WORKFLOW_CANCELS_FROM,
        "to cancel", "every step has finished",
    )


def workflow_retry_request(workflow_id: str, name: str | None, steps: Iterable[tuple[str, int]]) -> Request:
    """Run a workflow's cancelled and discarded steps again, given its steps counted by state as seen."""
    return _workflow_request(
        "retry_workflow", "retry_jobs", "Retry", workflow_id, name, steps, WORKFLOW_RETRIES_FROM,
        "to run again", "no step was cancelled or discarded",
    )


def _workflow_request(
    action: str, permission: str, verb: str, workflow_id: str, name: str | None,
    steps: Iterable[tuple[str, int]], states: Collection[str], doing: str, nothing: str,
) -> Request:
    """The request for a workflow action on the steps in ``states``, told in the order of ``states``
    when it has one (a tuple), else in the order the steps were seen."""
    seen: dict[str, int] = {}
    for state, n in steps:
        seen[state] = seen.get(state, 0) + n
    order = states if isinstance(states, tuple) else tuple(seen)
    hit = {state: seen[state] for state in order if state in states and seen.get(state)}
    count = sum(hit.values())
    label = workflow_label(workflow_id, name)
    by_state = ", ".join(f"{n} {state}" for state, n in hit.items())
    what = f"{plural(count, 'step')} {doing}: {by_state}" if count else nothing
    return Request(
        action=action, permission=permission, audit_action=action,
        title=f"{verb} workflow {label} ({plural(count, 'step')})?",
        targets=(Target("workflow", workflow_id, f"workflow {label}  {workflow_id}\n  {what}"),),
        workflow=label, steps_seen=count, bulk=count > 1,
    )


def cron_pause_request(name: str, expression: str, timezone: str, paused: bool) -> Request:
    """Pause (or, when paused, resume) a cron entry on every node."""
    verb = "resume" if paused else "pause"
    return Request(
        action="pause_cron", permission="pause_crons", audit_action=f"{verb}_cron",
        title=f"{verb.capitalize()} cron {name} on every node?",
        targets=(Target("cron", name, f"cron {name}  {expression} ({timezone})"),), cron=name,
    )
