-- Planner's view of the jobs table: its row estimate and the joint (queue, state) frequencies
-- from the extended statistics (values come in column order: state, then queue); no scan.
SELECT c.reltuples::bigint AS total, m.values[2] AS queue, m.values[1] AS state, m.frequency
FROM pg_class AS c
JOIN pg_namespace AS ns ON ns.oid = c.relnamespace
LEFT JOIN pg_statistic_ext AS s ON s.stxnamespace = ns.oid AND s.stxname = 'lysmore_jobs_queue_state'
LEFT JOIN pg_statistic_ext_data AS d ON d.stxoid = s.oid
LEFT JOIN LATERAL pg_mcv_list_items(d.stxdmcv) AS m ON true
WHERE ns.nspname = %(prefix)s AND c.relname = 'lysmore_jobs'
