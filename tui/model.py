"""Frozen snapshots of what the dashboard reads, handed from the data layer to presenters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine import (
    FINAL_STATES,
    Attempt,
    CronStatus,
    GlobalLimit,
    JobState,
    RateLimit,
    SentNotification,
)

# The engine's states, in the order it declares them (the order the dashboard lists them in).
STATES: tuple[str, ...] = tuple(s.value for s in JobState)
# States a job waits in before it runs: neither finished nor executing.
WAITING_STATES: frozenset[str] = frozenset(
    s.value for s in JobState if s not in FINAL_STATES and s is not JobState.EXECUTING
)


@dataclass(frozen=True, slots=True)
class Count:
    """A row count that is exact when small and a planner estimate (shown with ``~``) when large."""

    value: int
    exact: bool = True


@dataclass(frozen=True, slots=True)
class Cluster:
    """What the header shows about the instance: live nodes and the current leader."""

    nodes: int = 0
    leader: str | None = None


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue across the cluster, as the Queues screen shows it."""

    name: str
    executing: int
    local_limit: int
    nodes: int
    nodes_paused: int
    paused_everywhere: bool
    available: Count
    scheduled: Count
    retryable: Count
    oldest_available_at: datetime | None
    completed_per_minute: tuple[int, ...]
    failed_per_minute: tuple[int, ...]
    global_limit: GlobalLimit | None = None
    rate_limit: RateLimit | None = None
    orphaned: int = 0  # executing on nodes whose lease lapsed, until the lifeline rescues them

    @property
    def paused(self) -> bool:
        """Paused on every node that runs it (or by the '*' setting when no node runs it)."""
        if self.nodes:
            return self.nodes_paused >= self.nodes
        return self.paused_everywhere


@dataclass(frozen=True, slots=True)
class QueuesSnapshot:
    """The Queues screen: counts by state over the cluster and one row per queue."""

    now: datetime
    cluster: Cluster
    states: tuple[tuple[str, Count], ...]
    queues: tuple[QueueRow, ...]


@dataclass(frozen=True, slots=True)
class QueueNode:
    """One node's producer of one queue, with the settings that apply to it."""

    node_id: str
    name: str
    host: str
    local_limit: int
    executing: int
    paused: bool
    heartbeat_at: datetime
    live: bool  # the engine's liveness rule: a heartbeat younger than node_ttl


@dataclass(frozen=True, slots=True)
class QueueDetailSnapshot:
    """One queue and the nodes running it."""

    now: datetime
    cluster: Cluster
    queue: QueueRow | None
    nodes: tuple[QueueNode, ...]
    setting_paused: bool | None = None
    setting_limit: int | None = None
    jobs: tuple[JobRow, ...] = ()  # the queue's newest jobs


@dataclass(frozen=True, slots=True)
class JobRow:
    """A job as one line of the jobs table (args already cut short by the query)."""

    id: int
    state: str
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    priority: int
    args_preview: str
    tags: tuple[str, ...]
    inserted_at: datetime
    scheduled_at: datetime
    attempted_at: datetime | None
    finished_at: datetime | None
    node: str | None
    last_error: str | None = None


SORT_KEYS: tuple[str, ...] = ("id", "attempt", "priority", "age", "duration")


@dataclass(frozen=True, slots=True)
class Sort:
    """The jobs table's order: a key and a direction (``descending``: largest first, so the newest
    id, the highest attempt or priority number, the oldest job, the longest run)."""

    key: str = "id"
    descending: bool = True

    def __post_init__(self) -> None:
        if self.key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {self.key!r}: use one of {', '.join(SORT_KEYS)}")

    @property
    def newest_first(self) -> bool:
        """The default order, which the id-ordered paging (and its filter spans) serves."""
        return self.key == "id" and self.descending

    @property
    def ascending_sql(self) -> bool:
        """Whether the SQL sort column ascends (age is insert time, which is the other way round)."""
        return self.descending if self.key == "age" else not self.descending

    def next_key(self) -> Sort:
        """The next key in ``SORT_KEYS`` order, largest first."""
        return Sort(SORT_KEYS[(SORT_KEYS.index(self.key) + 1) % len(SORT_KEYS)])

    def flipped(self) -> Sort:
        """The same key the other way."""
        return Sort(self.key, not self.descending)


@dataclass(frozen=True, slots=True)
class JobsSnapshot:
    """One keyset page of jobs plus the state counts for the sidebar."""

    now: datetime
    cluster: Cluster
    state: str | None
    filter_text: str
    rows: tuple[JobRow, ...]
    has_more: bool
    page: int
    states: tuple[tuple[str, Count], ...]
    total: Count
    sort: Sort = Sort()
    next_cursor: tuple[Any, int] | None = None  # (sort value, id) of the last row: the next page's keyset
    sort_window: int | None = None  # the sort read only this many newest ids (no index keeps that order)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the workflow a job belongs to."""

    job_id: int
    step: str
    state: str
    deps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WaitFacts:
    """What the database says about why a waiting job is not running yet."""

    queue_nodes: tuple[str, ...] = ()
    paused_nodes: tuple[str, ...] = ()
    paused_everywhere: bool = False
    executing_in_queue: int = 0
    local_limit_total: int = 0
    global_limit: GlobalLimit | None = None
    holders: tuple[tuple[str, int], ...] = ()
    rate_limit: RateLimit | None = None
    rate_used: int = 0
    rate_next_at: datetime | None = None
    ahead: int = 0
    ahead_higher_priority: int = 0


@dataclass(frozen=True, slots=True)
class JobDetail:
    """Everything the Job detail screen shows about one job."""

    id: int
    state: str
    queue: str
    worker: str
    args: Any
    meta: Any
    tags: tuple[str, ...]
    priority: int
    attempt: int
    max_attempts: int
    errors: tuple[Attempt, ...]
    result: Any
    inserted_at: datetime
    scheduled_at: datetime
    attempted_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    discarded_at: datetime | None
    node: str | None
    unique_key: str | None = None
    workflow_id: str | None = None
    workflow_name: str | None = None
    workflow_step: str | None = None
    workflow_deps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobDetailSnapshot:
    """The job (None when it is gone), its workflow and the facts about its wait."""

    now: datetime
    cluster: Cluster
    job_id: int
    job: JobDetail | None
    steps: tuple[Step, ...] = ()
    facts: WaitFacts = field(default_factory=WaitFacts)


@dataclass(frozen=True, slots=True)
class NodeQueue:
    """One queue as a node runs it."""

    queue: str
    local_limit: int
    paused: bool
    running: int


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One node (a per-boot identity) with its lease and its queues."""

    id: str
    name: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    leader: bool
    queues: tuple[NodeQueue, ...]
    executing: int
    live: bool  # the engine's liveness rule: a heartbeat younger than node_ttl

    @property
    def all_paused(self) -> bool:
        """True when the node runs queues and every one of them is paused."""
        return bool(self.queues) and all(q.paused for q in self.queues)


@dataclass(frozen=True, slots=True)
class NodesSnapshot:
    """The Nodes screen."""

    now: datetime
    cluster: Cluster
    nodes: tuple[NodeRow, ...]


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One recorded dashboard action."""

    id: int
    at: datetime
    actor: str
    action: str
    targets: tuple[Any, ...]
    outcome: str
    filter: str | None
    detail: Any


@dataclass(frozen=True, slots=True)
class AuditSnapshot:
    """The newest audit rows, and the error reporter's newest notifications."""

    now: datetime
    cluster: Cluster
    rows: tuple[AuditRow, ...]
    notifications: tuple[SentNotification, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    """One workflow: its steps counted by state."""

    id: str
    name: str
    total: int
    by_state: tuple[tuple[str, int], ...]
    inserted_at: datetime

    def count(self, state: str) -> int:
        """How many steps are in ``state``."""
        return dict(self.by_state).get(state, 0)


@dataclass(frozen=True, slots=True)
class WorkflowsSnapshot:
    """The Workflows screen."""

    now: datetime
    cluster: Cluster
    rows: tuple[WorkflowRow, ...]


@dataclass(frozen=True, slots=True)
class WorkflowSnapshot:
    """One workflow's steps, for the dependency tree."""

    now: datetime
    cluster: Cluster
    workflow_id: str
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Selection:
    """The ids (with state and worker as seen) of every job matching a filter, up to a cap."""

    ids: tuple[tuple[int, str, str], ...]
    capped: bool


@dataclass(frozen=True, slots=True)
class CronsSnapshot:
    """The Crons screen: every cron entry a leader recorded, as the engine's read model has it."""

    now: datetime
    cluster: Cluster
    entries: tuple[CronStatus, ...]
