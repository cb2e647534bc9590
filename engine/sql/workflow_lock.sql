-- Serialise resolution of these workflows until the transaction ends; always in id order, and
-- always before touching any of their rows, so two resolvers never deadlock.
SELECT count(pg_advisory_xact_lock(hashtext('lysmore.workflow'), hashtext(w.id::text)))
FROM (SELECT DISTINCT id FROM unnest(%(ids)s::uuid[]) AS u(id) ORDER BY id) AS w
