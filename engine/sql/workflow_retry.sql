-- Run a workflow's failed steps again (under its lock): every cancelled or discarded step gets one
-- more attempt. A step whose dependencies have all completed is available now; the others wait
-- held again, to be promoted as their dependencies complete this time round.
WITH deps AS (
    SELECT d.id, coalesce(bool_and(u.state = 'completed'), true) AS ready
    FROM {prefix}.lysmore_jobs AS d
    LEFT JOIN {prefix}.lysmore_jobs AS u
      ON u.workflow_id = d.workflow_id AND u.workflow_step = ANY(d.workflow_deps)
    WHERE d.workflow_id = %(workflow_id)s AND d.state IN ('cancelled', 'discarded')
    GROUP BY d.id
),
retried AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = CASE WHEN deps.ready THEN 'available' ELSE 'held' END::{prefix}.lysmore_job_state,
        scheduled_at = now(),
        max_attempts = greatest(j.max_attempts, j.attempt + 1),
        cancelled_at = NULL,
        discarded_at = NULL
    FROM deps
    WHERE j.id = deps.id
    RETURNING j.id, j.queue, j.state
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM retried WHERE state = 'available') AS q
)
SELECT retried.id FROM retried, notified ORDER BY retried.id
