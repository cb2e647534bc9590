-- The rows of outcomes an ack did not apply, as they are now (no row: deleted), so each refusal
-- can say why: rescued, cancelled, deleted, or already applied by an earlier try of the same ack
-- (same state, attempt and node, and the same last error entry when the outcome wrote one).
SELECT v.id, j.state::text AS state, j.attempt, j.node_id, j.errors -> -1 ->> 'error' AS last_error
FROM unnest(%(id)s::bigint[]) AS v(id)
LEFT JOIN {prefix}.lysmore_jobs AS j ON j.id = v.id
