-- Claim one (entry, instant) for the current leader term; nothing back if it already ran or
-- this node no longer holds a live term.
INSERT INTO {prefix}.lysmore_cron_runs (name, instant)
SELECT %(name)s, %(instant)s
WHERE EXISTS (SELECT 1 FROM {prefix}.lysmore_leader
              WHERE node_id = %(node_id)s AND epoch = %(epoch)s AND expires_at > now())
ON CONFLICT (name, instant) DO NOTHING
RETURNING name
