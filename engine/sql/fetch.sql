-- Claim up to %(demand)s available jobs of one queue for this node, in one statement.
WITH picked AS (
    SELECT id
    FROM {prefix}.lysmore_jobs
    WHERE state = 'available' AND queue = %(queue)s
    ORDER BY priority, scheduled_at, id
    LIMIT %(demand)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'executing',
        attempt = j.attempt + 1,
        attempted_at = now(),
        attempted_by = ARRAY[%(node_name)s::text, %(node_id)s::text],
        node_id = %(node_id)s
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked))  -- by primary key, whatever the plan guesses
    RETURNING j.*
)
SELECT * FROM claimed ORDER BY priority, scheduled_at, id
