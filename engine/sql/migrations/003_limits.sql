-- Lysmore schema, version 3: global and rate limits.

-- The partition a job belongs to for a partitioned limit: its worker and/or its args (all of
-- them, or only the named keys). Never NULL, so it can be compared and grouped.
CREATE FUNCTION {prefix}.lysmore_partition(
    worker text, args jsonb, by_worker boolean, by_args boolean, keys text[]
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT concat_ws('|',
        CASE WHEN by_worker THEN worker END,
        CASE WHEN by_args AND keys IS NULL THEN args::text
             WHEN by_args THEN (SELECT jsonb_agg(args -> k ORDER BY o)::text
                                FROM unnest(keys) WITH ORDINALITY AS x(k, o))
        END)
$$;

-- One row per job started in a rate-limited queue, kept for one period: an exact sliding window.
CREATE TABLE {prefix}.lysmore_rate_log (
    queue       text NOT NULL,
    partition   text NOT NULL,
    started_at  timestamptz NOT NULL,
    job_id      bigint
);
CREATE INDEX lysmore_rate_log_idx ON {prefix}.lysmore_rate_log (queue, started_at);
