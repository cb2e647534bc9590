SELECT max(instant) FROM {prefix}.lysmore_cron_runs WHERE name = %(name)s
