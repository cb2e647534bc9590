-- Statements on queues: per-node producers, persisted settings, limits' locks and windows.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.

-- name: control_state
-- What each live node's producer of one queue currently runs with (for acknowledging control).
SELECT n.name, p.paused, p.local_limit
FROM {prefix}.lysmore_producers AS p
JOIN {prefix}.lysmore_nodes AS n ON n.id = p.node_id
WHERE p.queue = %(queue)s
  AND n.heartbeat_at > now() - make_interval(secs => %(node_ttl)s)
  AND (%(node)s::text = '*' OR n.name = %(node)s::text)
ORDER BY n.name

-- name: lock
-- Serialise limited fetches of one queue across nodes until this transaction ends.
SELECT pg_advisory_xact_lock(hashtext('lysmore.fetch'), hashtext(%(key)s))

-- name: notify
-- Wake the producers of these queues (delivered at commit).
SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q)::text))
FROM unnest(%(queue)s::text[]) AS q

-- name: producer_upsert
-- Record (or update) what this node runs one queue with.
INSERT INTO {prefix}.lysmore_producers AS p (node_id, queue, local_limit, paused, running, meta)
VALUES (%(node_id)s, %(queue)s, %(local_limit)s, %(paused)s, %(running)s, %(meta)s)
ON CONFLICT (node_id, queue) DO UPDATE
SET local_limit = excluded.local_limit,
    paused = excluded.paused,
    running = excluded.running,
    meta = excluded.meta,
    updated_at = now()

-- name: producers
-- What each node reports it runs each queue with, and whether the node is live at the given now
-- (NULL: the database's now()); only live nodes with live_only, only one queue with queue.
SELECT p.queue, p.node_id, n.name AS node, n.host, p.local_limit, p.paused, p.running, p.meta,
       n.heartbeat_at,
       n.heartbeat_at > coalesce(%(now)s::timestamptz, now()) - make_interval(secs => %(node_ttl)s) AS live
FROM {prefix}.lysmore_producers AS p
JOIN {prefix}.lysmore_nodes AS n ON n.id = p.node_id
WHERE (%(queue)s::text IS NULL OR p.queue = %(queue)s::text)
  AND (NOT %(live_only)s
       OR n.heartbeat_at > coalesce(%(now)s::timestamptz, now()) - make_interval(secs => %(node_ttl)s))
ORDER BY p.queue, n.name, n.started_at

-- name: rate_next
-- Seconds until the oldest start in a rate window leaves it (when the next slot opens).
SELECT extract(epoch FROM min(started_at) + make_interval(secs => %(r_period)s) - clock_timestamp())
FROM {prefix}.lysmore_rate_log
WHERE queue = %(queue)s AND started_at > clock_timestamp() - make_interval(secs => %(r_period)s)

-- name: settings_all
-- Every persisted control row (of one queue, with queue).
SELECT queue, node, paused, local_limit, global_limit, rate_limit
FROM {prefix}.lysmore_queue_settings
WHERE %(queue)s::text IS NULL OR queue = %(queue)s::text

-- name: settings_reset
-- Forget persisted control of one queue: for one node name, or every row when node is NULL.
WITH gone AS (
    DELETE FROM {prefix}.lysmore_queue_settings
    WHERE queue = %(queue)s AND (%(node)s::text IS NULL OR node = %(node)s::text)
    RETURNING queue
)
SELECT pg_notify(%(channel)s, json_build_object('kind', 'control', 'queue', %(queue)s::text,
                                                'node', coalesce(%(node)s::text, '*'))::text)
FROM (SELECT DISTINCT queue FROM gone) AS g

-- name: settings_write
-- Persist pause/resume/scale for one queue on one node name, or on every node ('*'); a change
-- for every node clears what single nodes had set for the same field.
WITH cleared AS (
    UPDATE {prefix}.lysmore_queue_settings
    SET paused = CASE WHEN %(paused)s::boolean IS NULL THEN paused END,
        local_limit = CASE WHEN %(local_limit)s::integer IS NULL THEN local_limit END,
        global_limit = CASE WHEN %(global_limit)s::jsonb IS NULL THEN global_limit END,
        rate_limit = CASE WHEN %(rate_limit)s::jsonb IS NULL THEN rate_limit END,
        updated_at = now()
    WHERE queue = %(queue)s AND node <> '*' AND %(node)s::text = '*'
),
written AS (
    INSERT INTO {prefix}.lysmore_queue_settings AS s
        (queue, node, paused, local_limit, global_limit, rate_limit)
    VALUES (%(queue)s, %(node)s, %(paused)s, %(local_limit)s, %(global_limit)s, %(rate_limit)s)
    ON CONFLICT (queue, node) DO UPDATE
    SET paused = coalesce(excluded.paused, s.paused),
        local_limit = coalesce(excluded.local_limit, s.local_limit),
        global_limit = coalesce(excluded.global_limit, s.global_limit),
        rate_limit = coalesce(excluded.rate_limit, s.rate_limit),
        updated_at = now()
    RETURNING queue
)
SELECT pg_notify(%(channel)s, json_build_object('kind', 'control', 'queue', %(queue)s::text,
                                                'node', %(node)s::text)::text)
FROM written
