UPDATE {prefix}.lysmore_cron_runs SET job_id = %(job_id)s WHERE name = %(name)s AND instant = %(instant)s
