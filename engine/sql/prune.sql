-- Delete one bounded batch of finished jobs older than max_age; call again until it returns less.
WITH doomed AS (
    SELECT id
    FROM {prefix}.lysmore_jobs
    WHERE state IN ('completed', 'cancelled', 'discarded')
      AND coalesce(completed_at, cancelled_at, discarded_at, inserted_at)
          < now() - make_interval(secs => %(max_age)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {prefix}.lysmore_jobs AS j USING doomed WHERE j.id = doomed.id
