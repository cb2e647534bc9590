-- Migration 8: execution times in the per-minute rollups, and the rollups per worker.
--
-- Each rollup row gains a histogram of execution times: how many executions ended in each of 48
-- log-spaced buckets (engine/_timings.py holds the layout). Bucket counts add up across nodes
-- and minutes, so p50/p95 over an hour or a day are read from their sum. Rows written before
-- this migration have none (NULL): their minutes count outcomes but no times.
--
-- Adding a column with no default changes only the catalogue: a populated table is not
-- rewritten, and the rollup statement's lock on it is held for no longer than that.
ALTER TABLE {prefix}.lysmore_stats_minutely ADD COLUMN exec_buckets integer[];

-- The same rollups per worker and queue: the charts of one worker. Each node adds its rows
-- about once a second, in the statement that adds the per-queue ones.
CREATE TABLE {prefix}.lysmore_stats_workers (
    worker       text NOT NULL,
    queue        text NOT NULL,
    minute       timestamptz NOT NULL,
    completed    integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    discarded    integer NOT NULL DEFAULT 0,
    cancelled    integer NOT NULL DEFAULT 0,
    snoozed      integer NOT NULL DEFAULT 0,
    exec_buckets integer[],
    PRIMARY KEY (worker, queue, minute)
);
CREATE INDEX lysmore_stats_workers_minute_idx ON {prefix}.lysmore_stats_workers (minute);

-- Two histograms added bucket by bucket (NULL adds nothing; a shorter one counts as zeros).
CREATE FUNCTION {prefix}.lysmore_add_buckets(a integer[], b integer[])
RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL THEN b
        WHEN b IS NULL THEN a
        ELSE ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0)
                   FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i) ORDER BY i)
    END
$$;

-- The bucket-wise sum of many rows' histograms (NULL when none had any).
CREATE AGGREGATE {prefix}.lysmore_sum_buckets(integer[]) (
    SFUNC = {prefix}.lysmore_add_buckets,
    STYPE = integer[],
    PARALLEL = SAFE
);
