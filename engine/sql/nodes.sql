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
-- Every registered node with its lease and leadership at the given now (NULL: the database's now()).
-- A node is live while its heartbeat is younger than node_ttl: the lease the lifeline honours.
SELECT n.id, n.name, n.host, n.pid, n.started_at, n.heartbeat_at,
       extract(epoch FROM coalesce(%(now)s::timestamptz, now()) - n.heartbeat_at)::float8 AS heartbeat_age,
       n.heartbeat_at > coalesce(%(now)s::timestamptz, now()) - make_interval(secs => %(node_ttl)s) AS live,
       (l.node_id = n.id AND l.expires_at > coalesce(%(now)s::timestamptz, now())) IS TRUE AS leader
FROM {prefix}.lysmore_nodes AS n
LEFT JOIN {prefix}.lysmore_leader AS l ON l.name = 'leader'
ORDER BY n.name, n.started_at, n.id

-- name: summary
-- Live nodes and the current leader's name at the given now (NULL: the database's now()).
SELECT (SELECT count(*) FROM {prefix}.lysmore_nodes
        WHERE heartbeat_at > coalesce(%(now)s::timestamptz, now()) - make_interval(secs => %(node_ttl)s)) AS live,
       (SELECT node_name FROM {prefix}.lysmore_leader
        WHERE expires_at > coalesce(%(now)s::timestamptz, now()) ORDER BY name LIMIT 1) AS leader
