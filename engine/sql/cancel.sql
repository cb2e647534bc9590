-- Cancel jobs that may still be cancelled; tell the nodes running any of them to stop.
WITH old AS (
    SELECT id, state
    FROM {prefix}.lysmore_jobs
    WHERE id = ANY(%(id)s::bigint[]) AND state = ANY(%(from)s::{prefix}.lysmore_job_state[])
    FOR UPDATE
),
cancelled AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'cancelled', cancelled_at = now()
    FROM old
    WHERE j.id = old.id
    RETURNING j.id, old.state AS was
),
notified AS (
    SELECT pg_notify(%(channel)s, p.payload) AS n
    FROM (SELECT json_build_object('kind', 'cancel', 'ids', json_agg(id))::text AS payload
          FROM cancelled WHERE was = 'executing' HAVING count(*) > 0) AS p
)
SELECT cancelled.id, cancelled.was::text AS was FROM cancelled LEFT JOIN notified ON true
