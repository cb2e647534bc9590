-- Insert many jobs in one statement (arrays in, one row each), and wake the queues that got work.
WITH input AS (
    SELECT *
    FROM unnest(
        %(worker)s::text[], %(queue)s::text[], %(args)s::jsonb[], %(meta)s::jsonb[],
        %(tags)s::jsonb[], %(priority)s::smallint[], %(max_attempts)s::int[],
        %(scheduled_at)s::timestamptz[], %(schedule_in)s::float8[], %(held)s::bool[],
        %(unique_key)s::text[], %(workflow_id)s::uuid[], %(workflow_name)s::text[],
        %(workflow_step)s::text[], %(workflow_deps)s::jsonb[]
    ) WITH ORDINALITY AS v(worker, queue, args, meta, tags, priority, max_attempts,
                           scheduled_at, schedule_in, held, unique_key, workflow_id,
                           workflow_name, workflow_step, workflow_deps, ord)
),
timed AS (
    SELECT v.*,
           coalesce(v.scheduled_at, now() + make_interval(secs => coalesce(v.schedule_in, 0))) AS at
    FROM input AS v
),
inserted AS (
    INSERT INTO {prefix}.lysmore_jobs
        (state, queue, worker, args, meta, tags, priority, max_attempts, scheduled_at,
         unique_key, workflow_id, workflow_name, workflow_step, workflow_deps)
    SELECT CASE WHEN t.held THEN 'held'
                WHEN t.at > now() THEN 'scheduled'
                ELSE 'available' END::{prefix}.lysmore_job_state,
           t.queue, t.worker, t.args, t.meta,
           CASE WHEN t.tags = '[]'::jsonb THEN ARRAY[]::text[]
                ELSE ARRAY(SELECT jsonb_array_elements_text(t.tags)) END,
           t.priority, t.max_attempts, t.at, t.unique_key, t.workflow_id, t.workflow_name,
           t.workflow_step,
           CASE WHEN t.workflow_deps = '[]'::jsonb THEN ARRAY[]::text[]
                ELSE ARRAY(SELECT jsonb_array_elements_text(t.workflow_deps)) END
    FROM timed AS t
    ORDER BY t.ord
    RETURNING *
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') AS q
)
SELECT inserted.* FROM inserted, notified ORDER BY inserted.id
