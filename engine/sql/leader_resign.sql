-- Give the lease up at once (on stop), keeping the epoch so the next term is a new one.
UPDATE {prefix}.lysmore_leader
SET expires_at = now()
WHERE name = 'leader' AND node_id = %(node_id)s AND epoch = %(epoch)s
