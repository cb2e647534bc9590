-- The steps of one workflow that are in one of the given states.
SELECT id FROM {prefix}.lysmore_jobs
WHERE workflow_id = %(workflow_id)s AND state = ANY(%(states)s::{prefix}.lysmore_job_state[])
ORDER BY id
