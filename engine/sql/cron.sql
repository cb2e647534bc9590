-- Statements on cron runs: one job per entry and instant.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.

-- name: claim
-- Claim one (entry, instant) for the current leader term; nothing back if it already ran or
-- this node no longer holds a live term.
INSERT INTO {prefix}.lysmore_cron_runs (name, instant)
SELECT %(name)s, %(instant)s
WHERE EXISTS (SELECT 1 FROM {prefix}.lysmore_leader
              WHERE node_id = %(node_id)s AND epoch = %(epoch)s AND expires_at > now())
ON CONFLICT (name, instant) DO NOTHING
RETURNING name

-- name: last
SELECT max(instant) FROM {prefix}.lysmore_cron_runs WHERE name = %(name)s

-- name: link
UPDATE {prefix}.lysmore_cron_runs SET job_id = %(job_id)s WHERE name = %(name)s AND instant = %(instant)s
