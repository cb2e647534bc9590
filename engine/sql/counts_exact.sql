SELECT queue, state::text, count(*) AS n FROM {prefix}.lysmore_jobs GROUP BY queue, state
