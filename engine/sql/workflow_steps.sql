SELECT * FROM {prefix}.lysmore_jobs WHERE workflow_id = %(workflow_id)s ORDER BY id
