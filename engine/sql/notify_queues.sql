-- Wake the producers of these queues (delivered at commit).
SELECT count(pg_notify(%(channel)s, json_build_object('kind', 'insert', 'queue', q)::text))
FROM unnest(%(queue)s::text[]) AS q
