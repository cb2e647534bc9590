-- Forget persisted control of one queue: for one node name, or every row when node is NULL.
WITH gone AS (
    DELETE FROM {prefix}.lysmore_queue_settings
    WHERE queue = %(queue)s AND (%(node)s::text IS NULL OR node = %(node)s::text)
    RETURNING queue
)
SELECT pg_notify(%(channel)s, json_build_object('kind', 'control', 'queue', %(queue)s::text,
                                                'node', coalesce(%(node)s::text, '*'))::text)
FROM (SELECT DISTINCT queue FROM gone) AS g
