-- Statements for counts and the per-minute rollups.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.

-- name: counts_estimate
-- Planner's view of the jobs table: its row estimate and the joint (queue, state) frequencies
-- from the extended statistics (values come in column order: state, then queue); no scan.
SELECT c.reltuples::bigint AS total, m.values[2] AS queue, m.values[1] AS state, m.frequency
FROM pg_class AS c
JOIN pg_namespace AS ns ON ns.oid = c.relnamespace
LEFT JOIN pg_statistic_ext AS s ON s.stxnamespace = ns.oid AND s.stxname = 'lysmore_jobs_queue_state'
LEFT JOIN pg_statistic_ext_data AS d ON d.stxoid = s.oid
LEFT JOIN LATERAL pg_mcv_list_items(d.stxdmcv) AS m ON true
WHERE ns.nspname = %(prefix)s AND c.relname = 'lysmore_jobs'

-- name: counts_exact
SELECT queue, state::text, count(*) AS n FROM {prefix}.lysmore_jobs GROUP BY queue, state

-- name: counts_of_states
-- Exact counts of some states only (those too small to estimate well); the state index finds them.
SELECT queue, state::text, count(*) AS n
FROM {prefix}.lysmore_jobs
WHERE state = ANY(%(states)s::{prefix}.lysmore_job_state[])
GROUP BY queue, state

-- name: executing_by_node
-- Jobs executing right now per queue and node (a partial index holds them: cheap at any size).
SELECT queue, node_id, count(*) AS n
FROM {prefix}.lysmore_jobs
WHERE state = 'executing' AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
GROUP BY queue, node_id

-- name: prune
-- Drop rollup minutes and cron run records past their retention.
WITH minutes AS (
    DELETE FROM {prefix}.lysmore_stats_minutely
    WHERE minute < now() - make_interval(secs => %(stats_retention)s)
)
DELETE FROM {prefix}.lysmore_cron_runs
WHERE instant < now() - make_interval(secs => %(cron_retention)s)
