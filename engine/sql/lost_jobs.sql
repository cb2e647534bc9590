-- Of the jobs this node runs, those whose row no longer says so (cancelled, rescued, deleted).
SELECT v.id
FROM unnest(%(id)s::bigint[], %(attempt)s::int[]) AS v(id, attempt)
LEFT JOIN {prefix}.lysmore_jobs AS j
       ON j.id = v.id AND j.attempt = v.attempt AND j.node_id = %(node_id)s AND j.state = 'executing'
WHERE j.id IS NULL
