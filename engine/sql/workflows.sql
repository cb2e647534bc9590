-- Statements on workflows: their steps, locks, results and the promotion of held steps.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.

-- name: lock
-- Serialise resolution of these workflows until the transaction ends; always in id order, and
-- always before touching any of their rows, so two resolvers never deadlock.
SELECT count(pg_advisory_xact_lock(hashtext('lysmore.workflow'), hashtext(w.id::text)))
FROM (SELECT DISTINCT id FROM unnest(%(ids)s::uuid[]) AS u(id) ORDER BY id) AS w

-- name: of_jobs
SELECT DISTINCT workflow_id FROM {prefix}.lysmore_jobs
WHERE id = ANY(%(id)s::bigint[]) AND workflow_id IS NOT NULL

-- name: resolve
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

-- name: results
SELECT workflow_step, result FROM {prefix}.lysmore_jobs
WHERE workflow_id = %(workflow_id)s AND workflow_step = ANY(%(steps)s::text[]) AND state = 'completed'

-- name: step_ids
-- The steps of one workflow that are in one of the given states.
SELECT id FROM {prefix}.lysmore_jobs
WHERE workflow_id = %(workflow_id)s AND state = ANY(%(states)s::{prefix}.lysmore_job_state[])
ORDER BY id

-- name: steps
SELECT * FROM {prefix}.lysmore_jobs WHERE workflow_id = %(workflow_id)s ORDER BY id

-- name: stuck
-- Workflows with a held step whose dependencies have all finished: resolution was missed
-- (a crash between ack and resolve, a rescue, a deletion). The sweeper resolves them.
SELECT DISTINCT d.workflow_id
FROM {prefix}.lysmore_jobs AS d
WHERE d.state = 'held'
  AND NOT EXISTS (
      SELECT 1 FROM {prefix}.lysmore_jobs AS u
      WHERE u.workflow_id = d.workflow_id AND u.workflow_step = ANY(d.workflow_deps)
        AND u.state NOT IN ({final_states}))
LIMIT %(limit)s
