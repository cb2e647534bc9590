SELECT * FROM {prefix}.lysmore_jobs WHERE id = ANY(%(id)s::bigint[]) ORDER BY id
