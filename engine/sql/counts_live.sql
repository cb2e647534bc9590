-- Exact counts of the states that stay small and have partial indexes.
SELECT queue, 'executing' AS state, count(*) AS n
FROM {prefix}.lysmore_jobs WHERE state = 'executing' GROUP BY queue
