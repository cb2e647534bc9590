-- Put jobs back to available now, giving an exhausted job one more attempt; wake their queues.
-- A workflow step whose dependencies have not all completed is held instead: it never runs
-- before them (the workflow's resolution promotes it, or cancels it again if one failed).
WITH picked AS (
    SELECT j.id,
           j.workflow_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM {prefix}.lysmore_jobs AS u
               WHERE u.workflow_id = j.workflow_id AND u.workflow_step = ANY(j.workflow_deps)
                 AND NOT (u.state = 'completed'
                          OR (u.state = 'cancelled' AND coalesce((j.meta #>> '{{workflow,ignore_cancelled}}')::boolean, false))
                          OR (u.state = 'discarded' AND coalesce((j.meta #>> '{{workflow,ignore_discarded}}')::boolean, false)))
           ) AS ready
    FROM {prefix}.lysmore_jobs AS j
    WHERE j.id = ANY(%(id)s::bigint[]) AND j.state = ANY(%(from)s::{prefix}.lysmore_job_state[])
),
retried AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = CASE WHEN p.ready THEN 'available' ELSE 'held' END::{prefix}.lysmore_job_state,
        scheduled_at = now(),
        max_attempts = greatest(j.max_attempts, j.attempt + 1),
        completed_at = NULL,
        cancelled_at = NULL,
        discarded_at = NULL
    FROM picked AS p
    WHERE j.id = p.id
    RETURNING j.id, j.queue, j.state
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM retried WHERE state = 'available') AS q
)
SELECT retried.id FROM retried, notified
