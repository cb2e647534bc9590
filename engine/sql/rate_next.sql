-- Seconds until the oldest start in a rate window leaves it (when the next slot opens).
SELECT extract(epoch FROM min(started_at) + make_interval(secs => %(r_period)s) - clock_timestamp())
FROM {prefix}.lysmore_rate_log
WHERE queue = %(queue)s AND started_at > clock_timestamp() - make_interval(secs => %(r_period)s)
