-- Statements on the jobs table: insert, fetch, record, control and sweep jobs.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.
-- A `-- part:` is a piece several statements share, put in where one says `-- include: NAME k=v`.


-- part: claimed_columns
-- What a fetch returns of each claimed job: the columns of a Job in the order of its fields, but
-- those the fetching node knows already (Job.claimed builds it from them and from the queue, the
-- node's name and id, which the fetch wrote into attempted_by and node_id; the state is executing).
-- Each column left out is one value less to send and to decode per job.
id, worker, args, meta, tags, priority, attempt, max_attempts, errors, result,
inserted_at, scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at,
unique_key, workflow_id, workflow_name, workflow_step, workflow_deps, unique_states::text[]

-- part: keys_freed
-- The unique keys the rows in `deleted` held (a key of a job that is gone is free anyway; this
-- keeps the keys table as small as the unique jobs that hold one).
freed AS (
    DELETE FROM {prefix}.lysmore_unique_keys AS k
    USING deleted
    WHERE deleted.unique_key IS NOT NULL AND k.key = deleted.unique_key AND k.job_id = deleted.id
)

-- name: ack
-- Record the outcomes of many executions at once, compare-and-set (lysmore_ack, migration 7): a
-- row changes only while it is still executing this attempt on this node, so a stale executor
-- changes nothing. The node adds what it recorded to the per-minute rollups itself, about once
-- a second.
SELECT id FROM {prefix}.lysmore_ack(
    %(id)s::bigint[], %(attempt)s::int[], %(state)s::text[], %(delay)s::float8[],
    %(extra_attempts)s::int[], %(error)s::text[], %(result)s::text[], %(meta)s::text[],
    %(node_id)s::uuid, %(wake)s::text[], %(channel)s::text
) AS id

-- name: ack_completed
-- The ack of a batch whose every outcome is `completed` with no result or meta to write: the
-- common case, as one narrow compare-and-set with no JSON to read or rebuild (same rules as ack).
SELECT id FROM {prefix}.lysmore_ack_completed(
    %(id)s::bigint[], %(attempt)s::int[], %(node_id)s::uuid, %(wake)s::text[], %(channel)s::text
) AS id

-- name: cancel
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

-- name: copy
COPY {prefix}.lysmore_jobs_live (id, queue, worker, args, meta, tags, priority, max_attempts) FROM STDIN

-- name: copy_many
-- Jobs of ``Engine.insert_many``: ids and times from the columns' defaults, nothing returned.
COPY {prefix}.lysmore_jobs_live (queue, worker, args, meta, tags, priority, max_attempts) FROM STDIN

-- name: delete
-- Delete jobs that are not executing, and the unique keys they held.
WITH deleted AS (
    DELETE FROM {prefix}.lysmore_jobs
    WHERE id = ANY(%(id)s::bigint[]) AND state = ANY(%(from)s::{prefix}.lysmore_job_state[])
    RETURNING id, unique_key
),
-- include: keys_freed
SELECT id FROM deleted

-- name: executing_here
-- Rows of one queue this node is recorded as executing, started a while ago (for reconciling).
SELECT id, attempt
FROM {prefix}.lysmore_jobs
WHERE state = 'executing' AND node_id = %(node_id)s AND queue = %(queue)s
  AND attempted_at < now() - make_interval(secs => %(older_than)s)

-- name: fetch
-- Claim up to %(demand)s available jobs of one queue for this node, in one statement
-- (lysmore_fetch, migration 7: planned once a session).
SELECT
-- include: claimed_columns
FROM {prefix}.lysmore_fetch(%(queue)s::text, %(demand)s::int, %(node_id)s::uuid, %(node_name)s::text)
ORDER BY priority, scheduled_at, id

-- name: fetch_global
-- Claim jobs of a queue with an unpartitioned global limit (and no rate limit), under
-- fetch_lock: the common case of fetch_limited, without partition keys (lysmore_fetch_global,
-- migration 7: this node's fair share of the free slots, planned once a session).
SELECT
-- include: claimed_columns
FROM {prefix}.lysmore_fetch_global(%(queue)s::text, %(demand)s::int, %(node_id)s::uuid, %(node_name)s::text,
                                   %(g_allowed)s::int, %(node_ttl)s::float8)
ORDER BY priority, scheduled_at, id

-- name: fetch_limited
-- Claim jobs of a queue with a global and/or rate limit, under fetch_lock. Counts and the start
-- time come from clock_timestamp() taken after the lock, so each holder sees every earlier
-- holder's starts: no interleaving of nodes can exceed a limit.
WITH clock AS (
    SELECT clock_timestamp() AS ts
),
running AS (
    SELECT {prefix}.lysmore_partition(j.worker, j.args, %(g_worker)s, %(g_args)s, %(g_keys)s::text[]) AS p,
           count(*) AS n,
           count(*) FILTER (WHERE j.node_id = %(node_id)s) AS mine
    FROM {prefix}.lysmore_jobs AS j
    WHERE j.state = 'executing' AND j.queue = %(queue)s AND %(g_allowed)s::int IS NOT NULL
    GROUP BY 1
),
started AS (
    SELECT r.partition AS p, count(*) AS n
    FROM {prefix}.lysmore_rate_log AS r, clock
    WHERE r.queue = %(queue)s AND %(r_allowed)s::int IS NOT NULL
      AND r.started_at > clock.ts - make_interval(secs => %(r_period)s)
    GROUP BY 1
),
-- The other live, unpaused nodes of the queue, and how much room they have.
peers AS (
    SELECT count(*) + 1 AS nodes,
           coalesce(sum(greatest(p.local_limit - p.running, 0)), 0) AS room
    FROM {prefix}.lysmore_producers AS p
    JOIN {prefix}.lysmore_nodes AS n ON n.id = p.node_id
    WHERE p.queue = %(queue)s AND NOT p.paused AND p.node_id <> %(node_id)s
      AND n.heartbeat_at > now() - make_interval(secs => %(node_ttl)s)
),
budget AS (
    -- An unpartitioned global limit is shared fairly: take at most this node's share, or more
    -- when the other nodes have no room to take the rest.
    SELECT CASE WHEN %(g_allowed)s::int IS NULL OR %(g_partitioned)s THEN %(demand)s::int
                ELSE least(%(demand)s::int,
                           greatest(0, %(g_allowed)s::int - t.n)::int,
                           greatest(ceil(%(g_allowed)s::numeric / peers.nodes)::int - t.mine,
                                    greatest(0, %(g_allowed)s::int - t.n) - peers.room)::int)
           END AS n
    FROM peers,
         (SELECT coalesce(sum(n), 0) AS n, coalesce(sum(mine), 0) AS mine FROM running) AS t
),
candidates AS (
    SELECT j.id, j.priority, j.scheduled_at, k.gp, k.rp
    FROM {prefix}.lysmore_jobs AS j,
         LATERAL (SELECT {prefix}.lysmore_partition(j.worker, j.args, %(g_worker)s, %(g_args)s, %(g_keys)s::text[]) AS gp,
                         {prefix}.lysmore_partition(j.worker, j.args, %(r_worker)s, %(r_args)s, %(r_keys)s::text[]) AS rp) AS k
    WHERE j.state = 'available' AND j.queue = %(queue)s
      AND k.gp NOT IN (SELECT p FROM running WHERE n >= %(g_allowed)s::int)
      AND k.rp NOT IN (SELECT p FROM started WHERE n >= %(r_allowed)s::int)
    ORDER BY j.priority, j.scheduled_at, j.id
    LIMIT (SELECT n FROM budget) * 4 + 8
    FOR UPDATE OF j SKIP LOCKED
),
ranked AS (
    SELECT c.*,
           row_number() OVER (PARTITION BY c.gp ORDER BY c.priority, c.scheduled_at, c.id) AS rn_g,
           row_number() OVER (PARTITION BY c.rp ORDER BY c.priority, c.scheduled_at, c.id) AS rn_r
    FROM candidates AS c
),
picked AS (
    SELECT r.id, r.rp
    FROM ranked AS r
    LEFT JOIN running AS g ON g.p = r.gp
    LEFT JOIN started AS s ON s.p = r.rp
    WHERE (%(g_allowed)s::int IS NULL OR r.rn_g + coalesce(g.n, 0) <= %(g_allowed)s::int)
      AND (%(r_allowed)s::int IS NULL OR r.rn_r + coalesce(s.n, 0) <= %(r_allowed)s::int)
    ORDER BY r.priority, r.scheduled_at, r.id
    LIMIT (SELECT n FROM budget)
),
-- The picked rows become this node's executions, by primary key (a LIMIT taken from a CTE
-- is not something the planner can size).
claimed AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'executing',
        attempt = j.attempt + 1,
        attempted_at = (SELECT ts FROM clock),
        attempted_by = ARRAY[%(node_name)s::text, %(node_id)s::text],
        node_id = %(node_id)s
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked)) AND j.state = 'available'  -- the live side only
    RETURNING j.*
),
logged AS (
    INSERT INTO {prefix}.lysmore_rate_log (queue, partition, started_at, job_id)
    SELECT %(queue)s, picked.rp, (SELECT ts FROM clock), picked.id
    FROM picked
    WHERE %(r_allowed)s::int IS NOT NULL AND picked.id IN (SELECT id FROM claimed)
),
trimmed AS (
    DELETE FROM {prefix}.lysmore_rate_log AS r
    USING clock
    WHERE %(r_allowed)s::int IS NOT NULL AND r.queue = %(queue)s
      AND r.started_at <= clock.ts - make_interval(secs => %(r_period)s)
)
SELECT
-- include: claimed_columns
FROM claimed ORDER BY priority, scheduled_at, id

-- name: get
SELECT * FROM {prefix}.lysmore_jobs WHERE id = ANY(%(id)s::bigint[]) ORDER BY id

-- name: insert
-- Insert many jobs in one statement from one JSON array (one object per job), and wake the
-- queues that got available work. Returns only what the database decided for each job.
WITH input AS (
    SELECT *
    FROM ROWS FROM (
             jsonb_to_recordset(%(rows)s::jsonb)
             AS (worker text, queue text, args jsonb, meta jsonb, tags text[], priority smallint,
                 max_attempts integer, scheduled_at timestamptz, schedule_in float8, held boolean,
                 unique_key text, workflow_id uuid, workflow_name text, workflow_step text,
                 workflow_deps text[])
         ) WITH ORDINALITY AS v(worker, queue, args, meta, tags, priority, max_attempts,
                                scheduled_at, schedule_in, held, unique_key, workflow_id,
                                workflow_name, workflow_step, workflow_deps, ord)
),
inserted AS (
    INSERT INTO {prefix}.lysmore_jobs_live
        (state, queue, worker, args, meta, tags, priority, max_attempts, scheduled_at,
         unique_key, workflow_id, workflow_name, workflow_step, workflow_deps)
    SELECT CASE WHEN t.held THEN 'held'
                WHEN t.at > now() THEN 'scheduled'
                ELSE 'available' END::{prefix}.lysmore_job_state,
           t.queue, t.worker, t.args, t.meta, coalesce(t.tags, ARRAY[]::text[]), t.priority,
           t.max_attempts, t.at, t.unique_key, t.workflow_id, t.workflow_name, t.workflow_step,
           coalesce(t.workflow_deps, ARRAY[]::text[])
    FROM (SELECT v.*,
                 coalesce(v.scheduled_at, now() + make_interval(secs => coalesce(v.schedule_in, 0))) AS at
          FROM input AS v) AS t
    ORDER BY t.ord
    RETURNING id, state, queue, inserted_at, scheduled_at
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') AS q
)
SELECT inserted.id, inserted.state::text, inserted.inserted_at, inserted.scheduled_at
FROM inserted, notified
ORDER BY inserted.id

-- name: insert_one
-- Insert one job that is in no workflow and not unique: the path of every single insert, so it
-- is plain parameters (prepared once per connection) rather than a JSON array to unpack. Like
-- every insert of new jobs, it names the live side: a new job is available, scheduled or held, and
-- naming the partition spares routing the row through the parent (about 15 us a statement).
WITH inserted AS (
    INSERT INTO {prefix}.lysmore_jobs_live
        (state, queue, worker, args, meta, tags, priority, max_attempts, scheduled_at)
    SELECT CASE WHEN t.at > now() THEN 'scheduled' ELSE 'available' END::{prefix}.lysmore_job_state,
           %(queue)s, %(worker)s, %(args)s::jsonb, %(meta)s::jsonb, %(tags)s::text[], %(priority)s::smallint,
           %(max_attempts)s::integer, t.at
    FROM (SELECT coalesce(%(scheduled_at)s::timestamptz,
                          now() + make_interval(secs => coalesce(%(schedule_in)s::float8, 0))) AS at) AS t
    RETURNING id, state, queue, inserted_at, scheduled_at
)
SELECT id, state::text, inserted_at, scheduled_at,
       CASE WHEN state = 'available'
            THEN pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', queue)::text) END
FROM inserted

-- name: insert_unique
-- Insert one unique job, or find the one holding its key (lysmore_insert_unique, migration 6):
-- the job's row, and whether it was inserted.
SELECT (u.job).*, u.inserted
FROM {prefix}.lysmore_insert_unique(
    %(queue)s, %(worker)s, %(args)s::jsonb, %(meta)s::jsonb, %(tags)s::text[], %(priority)s::smallint,
    %(max_attempts)s::integer, %(scheduled_at)s::timestamptz, %(schedule_in)s::float8, %(unique_key)s,
    %(unique_states)s::{prefix}.lysmore_job_state[], %(period)s::float8, %(replace)s
) AS u

-- name: lost
-- Of the jobs this node runs, those whose row no longer says so, with the row's state now
-- (cancelled, or moved on by a rescue; NULL when it was deleted).
SELECT v.id, j.state::text AS state
FROM unnest(%(id)s::bigint[], %(attempt)s::int[]) AS v(id, attempt)
LEFT JOIN {prefix}.lysmore_jobs AS j ON j.id = v.id
WHERE j.id IS NULL
   OR NOT (j.attempt = v.attempt AND j.node_id = %(node_id)s AND j.state = 'executing')

-- name: prune
-- Delete one bounded batch of finished jobs older than max_age; call again until it returns less.
WITH doomed AS (
    SELECT id
    FROM {prefix}.lysmore_jobs
    WHERE state IN ({final_states})
      AND coalesce(completed_at, cancelled_at, discarded_at, inserted_at)
          < now() - make_interval(secs => %(max_age)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
deleted AS (
    DELETE FROM {prefix}.lysmore_jobs AS j USING doomed
    WHERE j.id = doomed.id AND j.state IN ({final_states})
    RETURNING j.id, j.unique_key
),
-- include: keys_freed
SELECT count(*) FROM deleted

-- name: refused
-- The rows of outcomes an ack did not apply, as they are now (no row: deleted), so each refusal
-- can say why: rescued, cancelled, deleted, or already applied by an earlier try of the same ack
-- (same state, attempt and node, and the same last error entry when the outcome wrote one).
SELECT v.id, j.state::text AS state, j.attempt, j.node_id, j.errors -> -1 ->> 'error' AS last_error
FROM unnest(%(id)s::bigint[]) AS v(id)
LEFT JOIN {prefix}.lysmore_jobs AS j ON j.id = v.id

-- name: release
-- Give jobs this node still runs back to the queue, with the attempt they used restored.
WITH released AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'available',
        attempt = greatest(j.attempt - 1, 0),
        node_id = NULL
    FROM unnest(%(id)s::bigint[], %(attempt)s::int[]) AS v(id, attempt)
    WHERE j.id = v.id AND j.attempt = v.attempt AND j.node_id = %(node_id)s AND j.state = 'executing'
    RETURNING j.id, j.queue
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM released) AS q
)
SELECT released.id FROM released, notified

-- name: rescue
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
    RETURNING j.id, j.queue, j.state, CASE WHEN lost.expired THEN lost.node_name END AS node_name
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM rescued WHERE state = 'available') AS q
)
SELECT rescued.id, rescued.state::text, rescued.node_name FROM rescued, notified

-- name: reserve_ids
-- Reserve ids for a COPY of new jobs, and read the transaction's clock for their timestamps.
-- The sequence is named as a literal, resolved once when the statement is parsed (named through
-- pg_get_serial_sequence(), it was looked up again for every id: 50 ms of 20,000, against 8).
SELECT now() AS now,
       array_agg(nextval('{prefix}.lysmore_job_ids')) AS ids
FROM generate_series(1, %(n)s)

-- name: retry
-- Put jobs back to available now, giving an exhausted job one more attempt; wake their queues.
-- A workflow step whose dependencies have not all completed is held instead: it never runs
-- before them (the workflow's resolution promotes it, or cancels it again if one failed).
WITH picked AS (
    SELECT j.id,
           j.workflow_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM {prefix}.lysmore_jobs AS u
               WHERE u.workflow_id = j.workflow_id AND u.workflow_step = ANY(j.workflow_deps)
                 AND NOT (u.state = 'completed'
                          OR (u.state = 'cancelled' AND coalesce((j.meta #>> '{{workflow,ignore_cancelled}}')::boolean, false))
                          OR (u.state = 'discarded' AND coalesce((j.meta #>> '{{workflow,ignore_discarded}}')::boolean, false)))
           ) AS ready
    FROM {prefix}.lysmore_jobs AS j
    WHERE j.id = ANY(%(id)s::bigint[]) AND j.state = ANY(%(from)s::{prefix}.lysmore_job_state[])
),
retried AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = CASE WHEN p.ready THEN 'available' ELSE 'held' END::{prefix}.lysmore_job_state,
        scheduled_at = now(),
        max_attempts = greatest(j.max_attempts, j.attempt + 1),
        completed_at = NULL,
        cancelled_at = NULL,
        discarded_at = NULL
    FROM picked AS p
    WHERE j.id = p.id
    RETURNING j.id, j.queue, j.state
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM retried WHERE state = 'available') AS q
)
SELECT retried.id FROM retried, notified

-- name: stage
-- Make due scheduled and retryable jobs available, and wake their queues.
WITH due AS (
    SELECT id
    FROM {prefix}.lysmore_jobs
    WHERE state IN ({due_states}) AND scheduled_at <= now()
    ORDER BY scheduled_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
staged AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'available'
    FROM due
    WHERE j.id = due.id AND j.state IN ({due_states})
    RETURNING j.queue
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM staged) AS q
)
SELECT (SELECT count(*) FROM staged) AS staged, notified.n AS queues FROM notified

-- name: stage_queue_now
-- Make every scheduled and retryable job of one queue available now (drain_queue with_scheduled).
UPDATE {prefix}.lysmore_jobs
SET state = 'available', scheduled_at = now()
WHERE queue = %(queue)s AND state IN ({due_states})

-- name: live_side
-- The live side's row counts as the statistics system has them: rows, dead row versions, rows
-- changed since it was last analysed.
SELECT n_live_tup, n_dead_tup, n_mod_since_analyze
FROM pg_stat_user_tables
WHERE relid = to_regclass(%(table)s)

-- name: vacuum_live
-- Reclaim the live side's dead row versions and refresh its statistics; skipped when something
-- holds a conflicting lock (a running autovacuum of it, say).
VACUUM (SKIP_LOCKED, ANALYZE) {prefix}.lysmore_jobs_live

-- name: analyze_live
ANALYZE (SKIP_LOCKED) {prefix}.lysmore_jobs_live
