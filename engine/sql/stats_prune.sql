-- Drop rollup minutes and cron run records past their retention.
WITH minutes AS (
    DELETE FROM {prefix}.lysmore_stats_minutely
    WHERE minute < now() - make_interval(secs => %(stats_retention)s)
)
DELETE FROM {prefix}.lysmore_cron_runs
WHERE instant < now() - make_interval(secs => %(cron_retention)s)
