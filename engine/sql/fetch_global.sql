-- Claim jobs of a queue with an unpartitioned global limit (and no rate limit), under
-- fetch_lock: the common case of fetch_limited.sql, without partition keys.
WITH running AS (
    SELECT count(*) AS n, count(*) FILTER (WHERE node_id = %(node_id)s) AS mine
    FROM {prefix}.lysmore_jobs
    WHERE state = 'executing' AND queue = %(queue)s
),
peers AS (
    SELECT count(*) + 1 AS nodes,
           coalesce(sum(greatest(p.local_limit - p.running, 0)), 0) AS room
    FROM {prefix}.lysmore_producers AS p
    JOIN {prefix}.lysmore_nodes AS n ON n.id = p.node_id
    WHERE p.queue = %(queue)s AND NOT p.paused AND p.node_id <> %(node_id)s
      AND n.heartbeat_at > now() - make_interval(secs => %(node_ttl)s)
),
budget AS (
    -- This node's fair share, or more when the other nodes have no room to take the rest.
    SELECT least(%(demand)s::int,
                 greatest(0, %(g_allowed)s::int - r.n)::int,
                 greatest(ceil(%(g_allowed)s::numeric / peers.nodes)::int - r.mine,
                          greatest(0, %(g_allowed)s::int - r.n) - peers.room)::int) AS n
    FROM running AS r, peers
),
picked AS (
    SELECT id
    FROM {prefix}.lysmore_jobs
    WHERE state = 'available' AND queue = %(queue)s
    ORDER BY priority, scheduled_at, id
    LIMIT (SELECT greatest(n, 0) FROM budget)
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'executing',
        attempt = j.attempt + 1,
        attempted_at = clock_timestamp(),
        attempted_by = ARRAY[%(node_name)s::text, %(node_id)s::text],
        node_id = %(node_id)s
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked))  -- by primary key: the planner cannot size the LIMIT
    RETURNING j.*
)
SELECT * FROM claimed ORDER BY priority, scheduled_at, id
