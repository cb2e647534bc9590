-- Rows of one queue this node is recorded as executing, started a while ago (for reconciling).
SELECT id, attempt
FROM {prefix}.lysmore_jobs
WHERE state = 'executing' AND node_id = %(node_id)s AND queue = %(queue)s
  AND attempted_at < now() - make_interval(secs => %(older_than)s)
