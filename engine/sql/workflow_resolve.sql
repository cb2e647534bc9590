-- One round of resolving held steps of these workflows: a step whose dependencies are all
-- satisfied becomes available; a step with a failed dependency is cancelled. Run again until
-- nothing is cancelled, so cancellation reaches every step downstream.
WITH steps AS (
    SELECT d.id,
           bool_and(u.state = 'completed'
                    OR (u.state = 'cancelled' AND coalesce((d.meta #>> '{{workflow,ignore_cancelled}}')::boolean, false))
                    OR (u.state = 'discarded' AND coalesce((d.meta #>> '{{workflow,ignore_discarded}}')::boolean, false))
           ) AS ready,
           bool_or((u.state = 'cancelled' AND NOT coalesce((d.meta #>> '{{workflow,ignore_cancelled}}')::boolean, false))
                   OR (u.state = 'discarded' AND NOT coalesce((d.meta #>> '{{workflow,ignore_discarded}}')::boolean, false))
           ) AS doomed
    FROM {prefix}.lysmore_jobs AS d
    JOIN {prefix}.lysmore_jobs AS u
      ON u.workflow_id = d.workflow_id AND u.workflow_step = ANY(d.workflow_deps)
    WHERE d.state = 'held' AND d.workflow_id = ANY(%(ids)s::uuid[])
    GROUP BY d.id
),
promoted AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'available', scheduled_at = now()
    FROM steps
    WHERE j.id = steps.id AND steps.ready
    RETURNING j.id, j.queue
),
doomed AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'cancelled',
        cancelled_at = now(),
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'traceback', NULL,
            'error', 'cancelled: a workflow step it depends on was cancelled or discarded'))
    FROM steps
    WHERE j.id = steps.id AND steps.doomed AND NOT steps.ready
    RETURNING j.id
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM promoted) AS q
)
SELECT (SELECT count(*) FROM promoted) AS promoted, (SELECT count(*) FROM doomed) AS doomed
FROM notified
