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

-- name: counts_by_state
-- As counts_exact, for a reader that wants no count per queue (the jobs list): one group per
-- state instead of one per queue and state, about half the time at a million jobs.
SELECT NULL::text AS queue, state::text, count(*) AS n FROM {prefix}.lysmore_jobs GROUP BY state

-- name: counts_of_states_by_state
-- As counts_of_states, one group per state.
SELECT NULL::text AS queue, state::text, count(*) AS n
FROM {prefix}.lysmore_jobs
WHERE state = ANY(%(states)s::{prefix}.lysmore_job_state[])
GROUP BY state

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
-- Drop rollup minutes (per queue and per worker), notifications and cron run records past their
-- retention.
WITH minutes AS (
    DELETE FROM {prefix}.lysmore_stats_minutely
    WHERE minute < now() - make_interval(secs => %(stats_retention)s)
), worker_minutes AS (
    DELETE FROM {prefix}.lysmore_stats_workers
    WHERE minute < now() - make_interval(secs => %(stats_retention)s)
), notifications AS (
    DELETE FROM {prefix}.lysmore_notifications
    WHERE at < now() - make_interval(secs => %(stats_retention)s)
)
DELETE FROM {prefix}.lysmore_cron_runs
WHERE instant < now() - make_interval(secs => %(cron_retention)s)

-- name: rollup
-- Add outcomes and execution times recorded on one node to the current minute's rollups: one row
-- per worker and queue, and their sums per queue. Nodes add theirs about once a second, so acks
-- never wait on one another for these rows. The histograms arrive as one flat array, `width`
-- buckets per (worker, queue) row in the rows' order.
WITH v AS (
    SELECT v.worker, v.queue, v.completed, v.failed, v.discarded, v.cancelled, v.snoozed,
           (%(buckets)s::int[])[((v.i - 1) * %(width)s::int + 1)::int : (v.i * %(width)s::int)::int] AS exec_buckets
    FROM unnest(%(worker)s::text[], %(queue)s::text[], %(completed)s::int[], %(failed)s::int[],
                %(discarded)s::int[], %(cancelled)s::int[], %(snoozed)s::int[]) WITH ORDINALITY
         AS v(worker, queue, completed, failed, discarded, cancelled, snoozed, i)
), by_worker AS (
    INSERT INTO {prefix}.lysmore_stats_workers AS s
        (worker, queue, minute, completed, failed, discarded, cancelled, snoozed, exec_buckets)
    SELECT v.worker, v.queue, date_trunc('minute', now()), v.completed, v.failed, v.discarded, v.cancelled,
           v.snoozed, v.exec_buckets
    FROM v
    ORDER BY v.worker, v.queue
    ON CONFLICT (worker, queue, minute) DO UPDATE
    SET completed = s.completed + excluded.completed,
        failed = s.failed + excluded.failed,
        discarded = s.discarded + excluded.discarded,
        cancelled = s.cancelled + excluded.cancelled,
        snoozed = s.snoozed + excluded.snoozed,
        exec_buckets = {prefix}.lysmore_add_buckets(s.exec_buckets, excluded.exec_buckets)
)
INSERT INTO {prefix}.lysmore_stats_minutely AS s
    (queue, minute, completed, failed, discarded, cancelled, snoozed, exec_buckets)
SELECT v.queue, date_trunc('minute', now()), sum(v.completed), sum(v.failed), sum(v.discarded),
       sum(v.cancelled), sum(v.snoozed), {prefix}.lysmore_sum_buckets(v.exec_buckets)
FROM v
GROUP BY v.queue
ORDER BY v.queue
ON CONFLICT (queue, minute) DO UPDATE
SET completed = s.completed + excluded.completed,
    failed = s.failed + excluded.failed,
    discarded = s.discarded + excluded.discarded,
    cancelled = s.cancelled + excluded.cancelled,
    snoozed = s.snoozed + excluded.snoozed,
    exec_buckets = {prefix}.lysmore_add_buckets(s.exec_buckets, excluded.exec_buckets)

-- name: series_queues
-- Outcomes and summed execution-time histograms of every queue (or one) in slots of `step`
-- seconds from `start` (included) to `stop` (excluded); slot 0 starts at `start`.
SELECT floor(extract(epoch FROM s.minute - %(start)s::timestamptz) / %(step)s)::int AS slot,
       sum(s.completed)::bigint, sum(s.failed)::bigint, sum(s.discarded)::bigint,
       {prefix}.lysmore_sum_buckets(s.exec_buckets)
FROM {prefix}.lysmore_stats_minutely AS s
WHERE s.minute >= %(start)s::timestamptz AND s.minute < %(stop)s::timestamptz
  AND (%(queue)s::text IS NULL OR s.queue = %(queue)s::text)
GROUP BY 1
ORDER BY 1

-- name: series_workers
-- The same for one worker (in every queue, or one).
SELECT floor(extract(epoch FROM s.minute - %(start)s::timestamptz) / %(step)s)::int AS slot,
       sum(s.completed)::bigint, sum(s.failed)::bigint, sum(s.discarded)::bigint,
       {prefix}.lysmore_sum_buckets(s.exec_buckets)
FROM {prefix}.lysmore_stats_workers AS s
WHERE s.minute >= %(start)s::timestamptz AND s.minute < %(stop)s::timestamptz
  AND s.worker = %(worker)s::text AND (%(queue)s::text IS NULL OR s.queue = %(queue)s::text)
GROUP BY 1
ORDER BY 1

-- name: rollup_queues
-- The queues with rollups since `start`, by name.
SELECT DISTINCT queue FROM {prefix}.lysmore_stats_minutely WHERE minute >= %(start)s::timestamptz
ORDER BY queue LIMIT %(limit)s

-- name: rollup_workers
-- The workers with rollups since `start`, by name.
SELECT DISTINCT worker FROM {prefix}.lysmore_stats_workers WHERE minute >= %(start)s::timestamptz
ORDER BY worker LIMIT %(limit)s
