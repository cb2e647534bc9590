SELECT DISTINCT workflow_id FROM {prefix}.lysmore_jobs
WHERE id = ANY(%(id)s::bigint[]) AND workflow_id IS NOT NULL
