-- Insert one unique job; the unique index decides. On a conflict the existing job comes back
-- (inserted = false), with the fields named in replace[its state] replaced.
INSERT INTO {prefix}.lysmore_jobs AS j
    (state, queue, worker, args, meta, tags, priority, max_attempts, scheduled_at,
     unique_key, unique_states)
SELECT CASE WHEN s.at > now() THEN 'scheduled' ELSE 'available' END::{prefix}.lysmore_job_state,
       %(queue)s, %(worker)s, %(args)s, %(meta)s, %(tags)s::text[], %(priority)s, %(max_attempts)s,
       s.at, %(unique_key)s, %(unique_states)s::{prefix}.lysmore_job_state[]
FROM (SELECT coalesce(%(scheduled_at)s::timestamptz,
                      now() + make_interval(secs => coalesce(%(schedule_in)s::float8, 0))) AS at) AS s
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO UPDATE
SET args = CASE WHEN %(replace)s::jsonb -> j.state::text ? 'args' THEN excluded.args ELSE j.args END,
    meta = CASE WHEN %(replace)s::jsonb -> j.state::text ? 'meta' THEN excluded.meta ELSE j.meta END,
    tags = CASE WHEN %(replace)s::jsonb -> j.state::text ? 'tags' THEN excluded.tags ELSE j.tags END,
    priority = CASE WHEN %(replace)s::jsonb -> j.state::text ? 'priority' THEN excluded.priority ELSE j.priority END,
    max_attempts = CASE WHEN %(replace)s::jsonb -> j.state::text ? 'max_attempts'
                        THEN greatest(excluded.max_attempts, j.attempt + 1) ELSE j.max_attempts END,
    scheduled_at = CASE WHEN %(replace)s::jsonb -> j.state::text ? 'scheduled_at'
                        THEN excluded.scheduled_at ELSE j.scheduled_at END,
    state = CASE WHEN %(replace)s::jsonb -> j.state::text ? 'scheduled_at'
                      AND j.state IN ('scheduled', 'available')
                 THEN (CASE WHEN excluded.scheduled_at > now() THEN 'scheduled' ELSE 'available' END)::{prefix}.lysmore_job_state
                 ELSE j.state END
RETURNING j.*, (xmax = 0) AS inserted
