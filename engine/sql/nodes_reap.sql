-- Forget nodes dead for a while whose jobs were all rescued (their producers go with them).
DELETE FROM {prefix}.lysmore_nodes AS n
WHERE n.heartbeat_at < now() - make_interval(secs => %(forget_after)s)
  AND NOT EXISTS (SELECT 1 FROM {prefix}.lysmore_jobs AS j
                  WHERE j.state = 'executing' AND j.node_id = n.id)
RETURNING n.name
