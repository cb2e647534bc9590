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
    INSERT INTO {prefix}.lysmore_jobs
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
