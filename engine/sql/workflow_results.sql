SELECT workflow_step, result FROM {prefix}.lysmore_jobs
WHERE workflow_id = %(workflow_id)s AND workflow_step = ANY(%(steps)s::text[]) AND state = 'completed'
