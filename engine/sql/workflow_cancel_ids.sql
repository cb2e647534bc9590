SELECT id FROM {prefix}.lysmore_jobs
WHERE workflow_id = %(workflow_id)s AND state IN ('available', 'scheduled', 'retryable', 'held', 'executing')
