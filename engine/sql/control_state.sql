-- What each live node's producer of one queue currently runs with (for acknowledging control).
SELECT n.name, p.paused, p.local_limit
FROM {prefix}.lysmore_producers AS p
JOIN {prefix}.lysmore_nodes AS n ON n.id = p.node_id
WHERE p.queue = %(queue)s
  AND n.heartbeat_at > now() - make_interval(secs => %(node_ttl)s)
  AND (%(node)s::text = '*' OR n.name = %(node)s::text)
ORDER BY n.name
