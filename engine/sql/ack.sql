-- Record the outcomes of many executions at once. Compare-and-set: a row changes only while it
-- is still executing this attempt on this node, so a stale executor changes nothing.
-- The same statement adds the outcomes to the per-minute rollups.
WITH acked AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = v.state::{prefix}.lysmore_job_state,
        completed_at = CASE WHEN v.state = 'completed' THEN now() ELSE j.completed_at END,
        discarded_at = CASE WHEN v.state = 'discarded' THEN now() ELSE j.discarded_at END,
        cancelled_at = CASE WHEN v.state = 'cancelled' THEN now() ELSE j.cancelled_at END,
        scheduled_at = CASE WHEN v.state IN ('scheduled', 'retryable')
                            THEN now() + make_interval(secs => v.delay)
                            ELSE j.scheduled_at END,
        max_attempts = j.max_attempts + v.extra_attempts,
        errors = CASE WHEN v.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(v.error || jsonb_build_object('at', now())) END,
        result = CASE WHEN v.state = 'completed' THEN v.result ELSE j.result END,
        meta = CASE WHEN v.meta IS NULL THEN j.meta ELSE j.meta || v.meta END
    FROM unnest(
        %(id)s::bigint[], %(attempt)s::int[], %(state)s::text[], %(delay)s::float8[],
        %(extra_attempts)s::int[], %(error)s::text[]::jsonb[], %(result)s::text[]::jsonb[],
        %(meta)s::text[]::jsonb[]
    ) AS v(id, attempt, state, delay, extra_attempts, error, result, meta)
    WHERE j.id = v.id
      AND j.attempt = v.attempt
      AND j.node_id = %(node_id)s
      AND j.state = 'executing'
    RETURNING j.id, j.queue, v.state
),
rolled AS (
    INSERT INTO {prefix}.lysmore_stats_minutely AS s
        (queue, minute, completed, failed, discarded, cancelled, snoozed)
    SELECT queue, date_trunc('minute', now()),
           count(*) FILTER (WHERE state = 'completed'),
           count(*) FILTER (WHERE state = 'retryable'),
           count(*) FILTER (WHERE state = 'discarded'),
           count(*) FILTER (WHERE state = 'cancelled'),
           count(*) FILTER (WHERE state = 'scheduled')
    FROM acked
    GROUP BY queue
    ORDER BY queue
    ON CONFLICT (queue, minute) DO UPDATE
    SET completed = s.completed + excluded.completed,
        failed = s.failed + excluded.failed,
        discarded = s.discarded + excluded.discarded,
        cancelled = s.cancelled + excluded.cancelled,
        snoozed = s.snoozed + excluded.snoozed
),
woken AS (
    -- Slots of a globally limited queue just freed up: wake every node's producer of it.
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM acked WHERE queue = ANY(%(wake)s::text[])) AS q
)
SELECT acked.id FROM acked, woken
