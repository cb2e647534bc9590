-- Migration 8: the fetch of a queue under a plain global limit (no partitions, no rate limit) as a
-- function, planned once a session with a generic plan, as migration 7 did for the plain fetch:
-- sent from the client it was planned on every call (a fetch of 10: 1.78 ms, 1.42 ms with a
-- generic plan). It runs where the statement ran, after the queue's lock and the ack of the slots
-- it frees, in the same transaction. The statement is fetch_global of sql/jobs.sql before this
-- migration, but for the parameters.

CREATE FUNCTION {prefix}.lysmore_fetch_global(
    p_queue text, p_demand int, p_node_id uuid, p_node_name text, p_allowed int, p_node_ttl float8
)
RETURNS SETOF {prefix}.lysmore_jobs
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    WITH running AS (
        SELECT count(*) AS n, count(*) FILTER (WHERE node_id = p_node_id) AS mine
        FROM {prefix}.lysmore_jobs
        WHERE state = 'executing' AND queue = p_queue
    ),
    peers AS (
        -- The other live, unpaused nodes of the queue, and how much room they have.
        SELECT count(*) + 1 AS nodes,
               coalesce(sum(greatest(p.local_limit - p.running, 0)), 0) AS room
        FROM {prefix}.lysmore_producers AS p
        JOIN {prefix}.lysmore_nodes AS n ON n.id = p.node_id
        WHERE p.queue = p_queue AND NOT p.paused AND p.node_id <> p_node_id
          AND n.heartbeat_at > now() - make_interval(secs => p_node_ttl)
    ),
    budget AS (
        -- This node's fair share, or more when the other nodes have no room to take the rest.
        SELECT least(p_demand,
                     greatest(0, p_allowed - r.n)::int,
                     greatest(ceil(p_allowed::numeric / peers.nodes)::int - r.mine,
                              greatest(0, p_allowed - r.n) - peers.room)::int) AS n
        FROM running AS r, peers
    ),
    picked AS (
        SELECT id
        FROM {prefix}.lysmore_jobs
        WHERE state = 'available' AND queue = p_queue
        ORDER BY priority, scheduled_at, id
        LIMIT (SELECT greatest(n, 0) FROM budget)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'executing',
        attempt = j.attempt + 1,
        attempted_at = clock_timestamp(),
        attempted_by = ARRAY[p_node_name, p_node_id::text],
        node_id = p_node_id
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked)) AND j.state = 'available'
    RETURNING j.*;
END
$$;
