-- Give jobs this node still runs back to the queue, with the attempt they used restored.
WITH released AS (
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'available',
        attempt = greatest(j.attempt - 1, 0),
        node_id = NULL
    FROM unnest(%(id)s::bigint[], %(attempt)s::int[]) AS v(id, attempt)
    WHERE j.id = v.id AND j.attempt = v.attempt AND j.node_id = %(node_id)s AND j.state = 'executing'
    RETURNING j.id, j.queue
),
notified AS (
    SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
    FROM (SELECT DISTINCT queue FROM released) AS q
)
SELECT released.id FROM released, notified
