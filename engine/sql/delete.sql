-- Delete jobs that are not executing.
DELETE FROM {prefix}.lysmore_jobs
WHERE id = ANY(%(id)s::bigint[]) AND state = ANY(%(from)s::{prefix}.lysmore_job_state[])
RETURNING id
