-- Persisted control for one queue as it applies to one node: the node's own row wins over '*'.
SELECT node, paused, local_limit, global_limit, rate_limit
FROM {prefix}.lysmore_queue_settings
WHERE queue = %(queue)s AND node IN ('*', %(node_name)s)
