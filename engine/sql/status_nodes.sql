SELECT n.id, n.name, n.host, n.pid, n.started_at,
       extract(epoch FROM now() - n.heartbeat_at)::float8 AS heartbeat_age,
       (l.node_id = n.id AND l.expires_at > now()) IS TRUE AS leader,
       coalesce(json_agg(json_build_object('queue', p.queue, 'limit', p.local_limit,
                                           'paused', p.paused, 'running', p.running)
                         ORDER BY p.queue) FILTER (WHERE p.queue IS NOT NULL), '[]') AS queues
FROM {prefix}.lysmore_nodes AS n
LEFT JOIN {prefix}.lysmore_leader AS l ON l.name = 'leader'
LEFT JOIN {prefix}.lysmore_producers AS p ON p.node_id = n.id
GROUP BY n.id, l.node_id, l.expires_at
ORDER BY n.name
