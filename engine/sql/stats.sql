-- Statements for counts and the per-minute rollups.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.

-- name: counts_estimate
-- Rows in the jobs table by the planner's statistics, no scan (by its size when never analysed):
-- the sum over its partitions.
SELECT sum(CASE WHEN c.reltuples < 0 THEN pg_relation_size(c.oid) / 200 ELSE c.reltuples END)::bigint
FROM pg_partition_tree(to_regclass(%(table)s)) AS t
JOIN pg_class AS c ON c.oid = t.relid
WHERE t.isleaf

-- name: counts_exact
SELECT queue, state::text, count(*) AS n FROM {prefix}.lysmore_jobs GROUP BY queue, state

-- name: counts_of_states
-- Exact counts of some states only (those too small to estimate well); the state index finds them.
SELECT queue, state::text, count(*) AS n
FROM {prefix}.lysmore_jobs
WHERE state = ANY(%(states)s::{prefix}.lysmore_job_state[])
GROUP BY queue, state

-- name: queues_in_state
-- Distinct queues having jobs in one state, by a loose index scan (cheap on millions).
WITH RECURSIVE q(queue) AS (
    (SELECT queue FROM {prefix}.lysmore_jobs WHERE state = %(state)s::{prefix}.lysmore_job_state
     ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM {prefix}.lysmore_jobs AS j
            WHERE j.state = %(state)s::{prefix}.lysmore_job_state AND j.queue > q.queue
            ORDER BY j.queue LIMIT 1)
    FROM q WHERE q.queue IS NOT NULL
)
SELECT queue FROM q WHERE queue IS NOT NULL LIMIT 1000

-- name: rows_in_state
-- The jobs of one state: only EXPLAINed, for the planner's row estimate.
SELECT 1 FROM {prefix}.lysmore_jobs WHERE state = %(state)s::{prefix}.lysmore_job_state

-- name: rows_in_queue_state
-- The jobs of one queue in one state: only EXPLAINed, for the planner's row estimate.
SELECT 1 FROM {prefix}.lysmore_jobs WHERE state = %(state)s::{prefix}.lysmore_job_state AND queue = %(queue)s

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

-- name: rollup
-- Add outcomes recorded on one node to the current minute's rollups, one row per queue. Nodes
-- add theirs about once a second, so acks never wait on one another for this row.
INSERT INTO {prefix}.lysmore_stats_minutely AS s
    (queue, minute, completed, failed, discarded, cancelled, snoozed)
SELECT v.queue, date_trunc('minute', now()), v.completed, v.failed, v.discarded, v.cancelled, v.snoozed
FROM unnest(%(queue)s::text[], %(completed)s::int[], %(failed)s::int[], %(discarded)s::int[],
            %(cancelled)s::int[], %(snoozed)s::int[])
     AS v(queue, completed, failed, discarded, cancelled, snoozed)
ORDER BY v.queue
ON CONFLICT (queue, minute) DO UPDATE
SET completed = s.completed + excluded.completed,
    failed = s.failed + excluded.failed,
    discarded = s.discarded + excluded.discarded,
    cancelled = s.cancelled + excluded.cancelled,
    snoozed = s.snoozed + excluded.snoozed
