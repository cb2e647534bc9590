-- Statements on cron runs: one job per entry and instant.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.

-- name: claim
-- Claim one (entry, instant) for the current leader term; nothing back if it already ran or
-- this node no longer holds a live term. The run is marked paused (and gets no job) when its
-- entry is paused now: read in this statement, so a pause committed before it always holds.
INSERT INTO {prefix}.lysmore_cron_runs (name, instant, paused)
SELECT %(name)s, %(instant)s,
       EXISTS (SELECT 1 FROM {prefix}.lysmore_cron_entries WHERE name = %(name)s AND paused)
WHERE EXISTS (SELECT 1 FROM {prefix}.lysmore_leader
              WHERE node_id = %(node_id)s AND epoch = %(epoch)s AND expires_at > now())
ON CONFLICT (name, instant) DO NOTHING
RETURNING paused

-- name: last
SELECT max(instant) FROM {prefix}.lysmore_cron_runs WHERE name = %(name)s

-- name: link
UPDATE {prefix}.lysmore_cron_runs SET job_id = %(job_id)s WHERE name = %(name)s AND instant = %(instant)s

-- name: record
-- The leader's crontab as it runs it: its entries upserted (a pause is kept), every other entry
-- marked inactive.
WITH given AS (
    SELECT * FROM jsonb_to_recordset(%(entries)s::jsonb)
        AS e(name text, expression text, timezone text, worker text, queue text, args jsonb)
),
upserted AS (
    INSERT INTO {prefix}.lysmore_cron_entries AS c
        (name, expression, timezone, worker, queue, args, active, recorded_at, recorded_by)
    SELECT name, expression, timezone, worker, queue, args, true, now(), %(node_name)s FROM given
    ON CONFLICT (name) DO UPDATE
    SET expression = excluded.expression,
        timezone = excluded.timezone,
        worker = excluded.worker,
        queue = excluded.queue,
        args = excluded.args,
        active = true,
        recorded_at = excluded.recorded_at,
        recorded_by = excluded.recorded_by
    RETURNING name
)
UPDATE {prefix}.lysmore_cron_entries
SET active = false
WHERE active AND name NOT IN (SELECT name FROM given)

-- name: pause
-- Pause or resume one entry; the row back only when it changed.
UPDATE {prefix}.lysmore_cron_entries
SET paused = %(paused)s, paused_at = CASE WHEN %(paused)s THEN now() END
WHERE name = %(name)s AND paused IS DISTINCT FROM %(paused)s
RETURNING name

-- name: names
SELECT name FROM {prefix}.lysmore_cron_entries ORDER BY name

-- name: entries
-- Every recorded entry with its newest run that inserted a job.
SELECT e.name, e.expression, e.timezone, e.worker, e.queue, e.args, e.active, e.paused, e.paused_at,
       e.recorded_at, e.recorded_by,
       (SELECT max(r.instant) FROM {prefix}.lysmore_cron_runs AS r
        WHERE r.name = e.name AND r.job_id IS NOT NULL) AS last_run
FROM {prefix}.lysmore_cron_entries AS e
ORDER BY e.active DESC, e.name

-- name: recent
-- The newest runs that inserted a job, up to `runs` per entry, with the job's state now (NULL
-- once the job was pruned or deleted).
SELECT e.name, r.instant, r.job_id, j.state::text
FROM {prefix}.lysmore_cron_entries AS e
CROSS JOIN LATERAL (
    SELECT instant, job_id FROM {prefix}.lysmore_cron_runs
    WHERE name = e.name AND job_id IS NOT NULL
    ORDER BY instant DESC
    LIMIT %(runs)s
) AS r
LEFT JOIN {prefix}.lysmore_jobs AS j ON j.id = r.job_id
ORDER BY e.name, r.instant DESC
