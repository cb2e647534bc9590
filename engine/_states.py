"""Job states and the transitions allowed between them, written down once."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life."""

    AVAILABLE = "available"
    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    DISCARDED = "discarded"
    CANCELLED = "cancelled"
    HELD = "held"


S = JobState

# target state -> states a job may be in to move there.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # staged when due, released on stop, rescued from a lost node, retried by hand,
    # or freed when its workflow dependencies completed.
    S.AVAILABLE: frozenset(
        {S.SCHEDULED, S.RETRYABLE, S.EXECUTING, S.COMPLETED, S.DISCARDED, S.CANCELLED, S.HELD}
    ),
    S.SCHEDULED: frozenset({S.EXECUTING}),  # snoozed
    S.EXECUTING: frozenset({S.AVAILABLE}),  # fetched
    S.RETRYABLE: frozenset({S.EXECUTING}),  # failed with attempts left (or rescued)
    S.COMPLETED: frozenset({S.EXECUTING}),
    S.DISCARDED: frozenset({S.EXECUTING, S.AVAILABLE, S.SCHEDULED, S.RETRYABLE, S.HELD}),
    S.CANCELLED: frozenset(
        {S.AVAILABLE, S.SCHEDULED, S.EXECUTING, S.RETRYABLE, S.HELD}
    ),
    # inserted held; or a workflow step retried (by hand or retry_workflow) while a dependency
    # has not completed: it waits for it again
    S.HELD: frozenset({S.SCHEDULED, S.RETRYABLE, S.COMPLETED, S.DISCARDED, S.CANCELLED}),
}

FINAL_STATES: frozenset[JobState] = frozenset({S.COMPLETED, S.DISCARDED, S.CANCELLED})
# States that wait for their scheduled_at: the stager makes them available when it has come.
DUE_STATES: frozenset[JobState] = frozenset({S.SCHEDULED, S.RETRYABLE})
# States whose scheduled_at a unique insert with replace may move (the job has not started).
RESCHEDULABLE: frozenset[JobState] = frozenset({S.SCHEDULED, S.AVAILABLE})
UNFINISHED: frozenset[JobState] = frozenset(set(JobState) - FINAL_STATES)
# States from which a job may be deleted: anything not running right now.
DELETABLE: frozenset[JobState] = frozenset(set(JobState) - {S.EXECUTING})
# retry_job moves these back to available; executing and available ones are left alone.
RETRYABLE_BY_HAND: frozenset[JobState] = frozenset(
    {S.SCHEDULED, S.RETRYABLE, S.COMPLETED, S.DISCARDED, S.CANCELLED}
)

# retry_workflow runs a workflow's steps in these states again (completed and unfinished stay).
WORKFLOW_RETRYABLE: frozenset[JobState] = frozenset({S.DISCARDED, S.CANCELLED})
# States a job leaves within moments (waiting to be fetched, or running). The dashboard's filter
# indexes (migration 5) leave them out: their predicate is ``state NOT IN (these)``.
UNSETTLED: frozenset[JobState] = frozenset({S.AVAILABLE, S.EXECUTING})


def allowed_from(target: JobState) -> list[str]:
    """The states a job may leave to enter ``target``, as strings for a bound SQL parameter."""
    return sorted(s.value for s in TRANSITIONS[target])


def can_move(source: JobState | str, target: JobState | str) -> bool:
    """Whether the table above allows ``source`` -> ``target``."""
    return JobState(source) in TRANSITIONS[JobState(target)]
