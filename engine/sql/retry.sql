-- Put jobs back to available now, giving an exhausted job one more attempt; wake their queues.
WITH retried AS (
    UPDATE {prefix}.lysmore_jobs
    SET state = 'available',
        scheduled_at = now(),
        max_attempts = greatest(max_attempts, attempt + 1),
        completed_at = NULL,
        cancelled_at = NULL,
        discarded_at = NULL
    WHERE id = ANY(%(id)s::bigint[]) AND state = ANY(%(from)s::{prefix}.lysmore_job_state[])
    RETURNING id, queue
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM retried) AS q
)
SELECT retried.id FROM retried, notified
