-- Statements on nodes: registration, heartbeats (their lease), status, leadership.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.

-- name: delete
DELETE FROM {prefix}.lysmore_nodes WHERE id = %(node_id)s

-- name: heartbeat
-- Renew this node's lease and report how busy each of its queues is; alive = 0 means the row
-- is gone (a lifeline took the node for dead) and the node must register again.
WITH beat AS (
    UPDATE {prefix}.lysmore_nodes SET heartbeat_at = now() WHERE id = %(node_id)s RETURNING id
),
busy AS (
    UPDATE {prefix}.lysmore_producers AS p
    SET running = v.running, updated_at = now()
    FROM unnest(%(queue)s::text[], %(running)s::int[]) AS v(queue, running), beat
    WHERE p.node_id = beat.id AND p.queue = v.queue
)
SELECT count(*) AS alive FROM beat

-- name: leader_elect
-- Take or renew the leadership lease. A new term (epoch + 1) starts only when the lease of the
-- holder has run out; the holder renewing in time keeps its epoch. No row back: not leader.
INSERT INTO {prefix}.lysmore_leader AS l (name, node_id, node_name, epoch, elected_at, expires_at)
VALUES ('leader', %(node_id)s, %(node_name)s, 1, now(), now() + make_interval(secs => %(lease)s))
ON CONFLICT (name) DO UPDATE
SET node_id = excluded.node_id,
    node_name = excluded.node_name,
    epoch = CASE WHEN l.node_id = excluded.node_id AND l.expires_at > now()
                 THEN l.epoch ELSE l.epoch + 1 END,
    elected_at = CASE WHEN l.node_id = excluded.node_id AND l.expires_at > now()
                      THEN l.elected_at ELSE now() END,
    expires_at = excluded.expires_at
WHERE l.expires_at <= now() OR l.node_id = excluded.node_id
RETURNING epoch

-- name: leader_resign
-- Give the lease up at once (on stop), keeping the epoch so the next term is a new one.
UPDATE {prefix}.lysmore_leader
SET expires_at = now()
WHERE name = 'leader' AND node_id = %(node_id)s AND epoch = %(epoch)s

-- name: reap
-- Forget nodes dead for a while whose jobs were all rescued (their producers go with them).
DELETE FROM {prefix}.lysmore_nodes AS n
WHERE n.heartbeat_at < now() - make_interval(secs => %(forget_after)s)
  AND NOT EXISTS (SELECT 1 FROM {prefix}.lysmore_jobs AS j
                  WHERE j.state = 'executing' AND j.node_id = n.id)
RETURNING n.name

-- name: register
-- A node announces itself for this boot.
INSERT INTO {prefix}.lysmore_nodes (id, name, host, pid, meta)
VALUES (%(node_id)s, %(name)s, %(host)s, %(pid)s, %(meta)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()

-- name: status
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
