-- Record (or update) what this node runs one queue with.
INSERT INTO {prefix}.lysmore_producers AS p (node_id, queue, local_limit, paused, running, meta)
VALUES (%(node_id)s, %(queue)s, %(local_limit)s, %(paused)s, %(running)s, %(meta)s)
ON CONFLICT (node_id, queue) DO UPDATE
SET local_limit = excluded.local_limit,
    paused = excluded.paused,
    running = excluded.running,
    meta = excluded.meta,
    updated_at = now()
