-- Lysmore schema, version 12: the dashboard's filter indexes on the finished side only.
--
-- Version 6 kept them on the partitioned table, so the live side carried a copy of each: indexes
-- that take an entry only for scheduled, retryable and held jobs, yet every statement that
-- changes a live row opens, locks and checks them (their predicates are evaluated for each row a
-- fetch claims). A fetch of ten locked 36 relations, 19 of them past PostgreSQL's 16 fast-path
-- lock slots. One node at concurrency 10 (tools/perf/drain.py, 20,000 no-op jobs, three runs
-- each): 5,400-6,000 jobs/s before, 6,100-6,500 after, PostgreSQL's CPU a job 10-18% less.
--
-- Seven move. Filters over waiting jobs (scheduled, retryable, held) now read the live side by its
-- state index, as they already did for available and executing ones; the live side is as large as
-- the backlog. The error text index stays on both sides: computing the text of every waiting job's
-- errors would cost a search of the live side tens of milliseconds (40 ms for 8,000 retryable
-- jobs), and keeping it cost no measurable throughput. The new predicates name the finished
-- states, as the dashboard's searches of that side do: the planner drops a condition an index's
-- predicate implies, so a worker's or a node's newest jobs are read from the index alone, with no
-- visit to the table to check their state.
--
-- Building them reads the finished side once (about ten seconds a million jobs, writes waiting);
-- the old ones go after, so no moment is without them.
CREATE INDEX lysmore_jobs_f_worker_idx ON {prefix}.lysmore_jobs_finished (worker, id)
    WHERE state IN ('completed', 'discarded', 'cancelled');
CREATE INDEX lysmore_jobs_f_node_idx ON {prefix}.lysmore_jobs_finished ((attempted_by[1]), id)
    WHERE attempted_by IS NOT NULL AND state IN ('completed', 'discarded', 'cancelled');
CREATE INDEX lysmore_jobs_f_tags_idx ON {prefix}.lysmore_jobs_finished USING gin (tags)
    WHERE tags <> '{{}}' AND state IN ('completed', 'discarded', 'cancelled');
CREATE INDEX lysmore_jobs_f_args_idx ON {prefix}.lysmore_jobs_finished USING gin (args)
    WHERE args <> '{{}}' AND state IN ('completed', 'discarded', 'cancelled');
CREATE INDEX lysmore_jobs_f_meta_idx ON {prefix}.lysmore_jobs_finished USING gin (meta)
    WHERE meta <> '{{}}' AND state IN ('completed', 'discarded', 'cancelled');
CREATE INDEX lysmore_jobs_f_attempt_idx ON {prefix}.lysmore_jobs_finished (attempt)
    WHERE attempt > 1 AND state IN ('completed', 'discarded', 'cancelled');
CREATE INDEX lysmore_jobs_f_priority_idx ON {prefix}.lysmore_jobs_finished (priority)
    WHERE priority > 0 AND state IN ('completed', 'discarded', 'cancelled');

DROP INDEX {prefix}.lysmore_jobs_worker_idx, {prefix}.lysmore_jobs_node_idx, {prefix}.lysmore_jobs_tags_idx,
    {prefix}.lysmore_jobs_args_idx, {prefix}.lysmore_jobs_meta_idx, {prefix}.lysmore_jobs_attempt_idx,
    {prefix}.lysmore_jobs_priority_idx;

ALTER INDEX {prefix}.lysmore_jobs_f_worker_idx RENAME TO lysmore_jobs_worker_idx;
ALTER INDEX {prefix}.lysmore_jobs_f_node_idx RENAME TO lysmore_jobs_node_idx;
ALTER INDEX {prefix}.lysmore_jobs_f_tags_idx RENAME TO lysmore_jobs_tags_idx;
ALTER INDEX {prefix}.lysmore_jobs_f_args_idx RENAME TO lysmore_jobs_args_idx;
ALTER INDEX {prefix}.lysmore_jobs_f_meta_idx RENAME TO lysmore_jobs_meta_idx;
ALTER INDEX {prefix}.lysmore_jobs_f_attempt_idx RENAME TO lysmore_jobs_attempt_idx;
ALTER INDEX {prefix}.lysmore_jobs_f_priority_idx RENAME TO lysmore_jobs_priority_idx;
