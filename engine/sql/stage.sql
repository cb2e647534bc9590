-- Make due scheduled and retryable jobs available, and wake their queues.
WITH due AS (
    SELECT id
    FROM {prefix}.lysmore_jobs
    WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= now()
    ORDER BY scheduled_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
staged AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'available'
    FROM due
    WHERE j.id = due.id
    RETURNING j.queue
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM staged) AS q
)
SELECT (SELECT count(*) FROM staged) AS staged, notified.n AS queues FROM notified
