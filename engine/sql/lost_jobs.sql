-- Of the jobs this node runs, those whose row no longer says so, with the row's state now
-- (cancelled, or moved on by a rescue; NULL when it was deleted).
SELECT v.id, j.state::text AS state
FROM unnest(%(id)s::bigint[], %(attempt)s::int[]) AS v(id, attempt)
LEFT JOIN {prefix}.lysmore_jobs AS j ON j.id = v.id
WHERE j.id IS NULL
   OR NOT (j.attempt = v.attempt AND j.node_id = %(node_id)s AND j.state = 'executing')
