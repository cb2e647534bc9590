-- Rescue jobs left executing by a node whose heartbeat expired, and (after a longer wait) jobs
-- whose node or producer is gone altogether. Attempts left: available again; else discarded.
-- Live nodes' long-running jobs are never touched.
WITH lost AS (
    SELECT j.id, n.name AS node_name,
           (n.id IS NOT NULL AND n.heartbeat_at < now() - make_interval(secs => %(node_ttl)s)) AS expired
    FROM {prefix}.lysmore_jobs AS j
    LEFT JOIN {prefix}.lysmore_nodes AS n ON n.id = j.node_id
    WHERE j.state = 'executing'
      AND (
            (n.id IS NOT NULL AND n.heartbeat_at < now() - make_interval(secs => %(node_ttl)s))
         OR (j.attempted_at < now() - make_interval(secs => %(orphan_after)s)
             AND (n.id IS NULL
                  OR NOT EXISTS (SELECT 1 FROM {prefix}.lysmore_producers AS p
                                 WHERE p.node_id = j.node_id AND p.queue = j.queue)))
      )
    ORDER BY j.id
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
),
rescued AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded'
                     ELSE 'available' END::{prefix}.lysmore_job_state,
        discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN now() ELSE j.discarded_at END,
        node_id = NULL,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'traceback', NULL,
            'error', CASE WHEN lost.expired
                          THEN format('rescued: node %%s was lost (heartbeat expired)', coalesce(lost.node_name, '?'))
                          ELSE 'rescued: no live node or producer ran this job' END))
    FROM lost
    WHERE j.id = lost.id
    RETURNING j.id, j.queue, j.state
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM rescued WHERE state = 'available') AS q
)
SELECT rescued.id, rescued.state::text FROM rescued, notified
