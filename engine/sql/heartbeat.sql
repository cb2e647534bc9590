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
