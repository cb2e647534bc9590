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
