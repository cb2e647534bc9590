-- Claim jobs of a queue with a global and/or rate limit, under fetch_lock. Counts and the start
-- time come from clock_timestamp() taken after the lock, so each holder sees every earlier
-- holder's starts: no interleaving of nodes can exceed a limit.
WITH clock AS (
    SELECT clock_timestamp() AS ts
),
running AS (
    SELECT {prefix}.lysmore_partition(j.worker, j.args, %(g_worker)s, %(g_args)s, %(g_keys)s::text[]) AS p,
           count(*) AS n,
           count(*) FILTER (WHERE j.node_id = %(node_id)s) AS mine
    FROM {prefix}.lysmore_jobs AS j
    WHERE j.state = 'executing' AND j.queue = %(queue)s AND %(g_allowed)s::int IS NOT NULL
    GROUP BY 1
),
started AS (
    SELECT r.partition AS p, count(*) AS n
    FROM {prefix}.lysmore_rate_log AS r, clock
    WHERE r.queue = %(queue)s AND %(r_allowed)s::int IS NOT NULL
      AND r.started_at > clock.ts - make_interval(secs => %(r_period)s)
    GROUP BY 1
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
    -- An unpartitioned global limit is shared fairly: take at most this node's share, or more
    -- when the other nodes have no room to take the rest.
    SELECT CASE WHEN %(g_allowed)s::int IS NULL OR %(g_partitioned)s THEN %(demand)s::int
                ELSE least(%(demand)s::int,
                           greatest(0, %(g_allowed)s::int - t.n)::int,
                           greatest(ceil(%(g_allowed)s::numeric / peers.nodes)::int - t.mine,
                                    greatest(0, %(g_allowed)s::int - t.n) - peers.room)::int)
           END AS n
    FROM peers,
         (SELECT coalesce(sum(n), 0) AS n, coalesce(sum(mine), 0) AS mine FROM running) AS t
),
candidates AS (
    SELECT j.id, j.priority, j.scheduled_at, k.gp, k.rp
    FROM {prefix}.lysmore_jobs AS j,
         LATERAL (SELECT {prefix}.lysmore_partition(j.worker, j.args, %(g_worker)s, %(g_args)s, %(g_keys)s::text[]) AS gp,
                         {prefix}.lysmore_partition(j.worker, j.args, %(r_worker)s, %(r_args)s, %(r_keys)s::text[]) AS rp) AS k
    WHERE j.state = 'available' AND j.queue = %(queue)s
      AND k.gp NOT IN (SELECT p FROM running WHERE n >= %(g_allowed)s::int)
      AND k.rp NOT IN (SELECT p FROM started WHERE n >= %(r_allowed)s::int)
    ORDER BY j.priority, j.scheduled_at, j.id
    LIMIT (SELECT n FROM budget) * 4 + 8
    FOR UPDATE OF j SKIP LOCKED
),
ranked AS (
    SELECT c.*,
           row_number() OVER (PARTITION BY c.gp ORDER BY c.priority, c.scheduled_at, c.id) AS rn_g,
           row_number() OVER (PARTITION BY c.rp ORDER BY c.priority, c.scheduled_at, c.id) AS rn_r
    FROM candidates AS c
),
picked AS (
    SELECT r.id, r.rp
    FROM ranked AS r
    LEFT JOIN running AS g ON g.p = r.gp
    LEFT JOIN started AS s ON s.p = r.rp
    WHERE (%(g_allowed)s::int IS NULL OR r.rn_g + coalesce(g.n, 0) <= %(g_allowed)s::int)
      AND (%(r_allowed)s::int IS NULL OR r.rn_r + coalesce(s.n, 0) <= %(r_allowed)s::int)
    ORDER BY r.priority, r.scheduled_at, r.id
    LIMIT (SELECT n FROM budget)
),
claimed AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'executing',
        attempt = j.attempt + 1,
        attempted_at = (SELECT ts FROM clock),
        attempted_by = ARRAY[%(node_name)s::text, %(node_id)s::text],
        node_id = %(node_id)s
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked))  -- by primary key: the LIMIT is not plannable
    RETURNING j.*
),
logged AS (
    INSERT INTO {prefix}.lysmore_rate_log (queue, partition, started_at, job_id)
    SELECT %(queue)s, picked.rp, (SELECT ts FROM clock), picked.id
    FROM picked
    WHERE %(r_allowed)s::int IS NOT NULL AND picked.id IN (SELECT id FROM claimed)
),
trimmed AS (
    DELETE FROM {prefix}.lysmore_rate_log AS r
    USING clock
    WHERE %(r_allowed)s::int IS NOT NULL AND r.queue = %(queue)s
      AND r.started_at <= clock.ts - make_interval(secs => %(r_period)s)
)
SELECT * FROM claimed ORDER BY priority, scheduled_at, id
