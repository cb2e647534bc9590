-- Lysmore schema, version 5: indexes behind the dashboard's job filters.
--
-- The dashboard lists jobs newest first and filters them by worker, node, tag, args, meta, error
-- text, attempt, priority and age; without these a filter that matches few jobs reads the whole
-- table. Every UPDATE of a job (stage, fetch, ack) changes its state, so it is never a HOT update
-- and adds an entry to every index of the table. So the filter indexes skip the jobs that are
-- available or executing: a job passes through both on every attempt and stays in neither, so
-- each index gets one entry per attempt (when it ends) instead of three (insert, fetch, ack).
-- Those jobs are found by the state index instead (the dashboard asks for them separately); they
-- are as many as the backlog and the running jobs. Some indexes are narrower still, holding only
-- what is rare (tags, meta, retries, non-zero priority, errors). Measured with `lysmore bench`
-- (20,000 no-op jobs, three runs each, medians) the set costs about 8% of processing throughput
-- and nothing measurable of bulk insert; the same indexes over every state cost 17% and 15%.
-- Building them takes a share lock on the jobs table (writes wait), about ten seconds per million
-- jobs.

-- worker: ordered by id within a worker, so `worker = $1 ORDER BY id DESC` reads only the rows it
-- shows, and the distinct workers can be listed by skipping through it.
CREATE INDEX lysmore_jobs_worker_idx ON {prefix}.lysmore_jobs (worker, id)
    WHERE state NOT IN ('available', 'executing');

-- node: the node of the last attempt (attempted_by[1]), newest first.
CREATE INDEX lysmore_jobs_node_idx ON {prefix}.lysmore_jobs ((attempted_by[1]), id)
    WHERE attempted_by IS NOT NULL AND state NOT IN ('available', 'executing');

-- tag: most jobs carry none.
CREATE INDEX lysmore_jobs_tags_idx ON {prefix}.lysmore_jobs USING gin (tags)
    WHERE tags <> '{{}}' AND state NOT IN ('available', 'executing');

-- args.KEY:value is containment (@>), args.KEY:* is key existence (?): the default jsonb_ops
-- serves both (jsonb_path_ops is smaller but cannot answer ?). Jobs without args match neither.
CREATE INDEX lysmore_jobs_args_idx ON {prefix}.lysmore_jobs USING gin (args)
    WHERE args <> '{{}}' AND state NOT IN ('available', 'executing');

-- meta.KEY: the same, and most jobs have no meta.
CREATE INDEX lysmore_jobs_meta_idx ON {prefix}.lysmore_jobs USING gin (meta)
    WHERE meta <> '{{}}' AND state NOT IN ('available', 'executing');

-- attempt:>N and priority:N, for the values that are rare: retried jobs and non-zero priorities.
CREATE INDEX lysmore_jobs_attempt_idx ON {prefix}.lysmore_jobs (attempt)
    WHERE attempt > 1 AND state NOT IN ('available', 'executing');
CREATE INDEX lysmore_jobs_priority_idx ON {prefix}.lysmore_jobs (priority)
    WHERE priority > 0 AND state NOT IN ('available', 'executing');

-- age: jobs are inserted in time order, so block ranges suffice, at next to no upkeep.
CREATE INDEX lysmore_jobs_inserted_brin ON {prefix}.lysmore_jobs USING brin (inserted_at)
    WITH (autosummarize = on);

-- A span of ids as a few block ranges, to intersect with the indexes above when the dashboard
-- searches older jobs a span at a time (ids follow insertion, so they follow the heap). Next to
-- nothing to keep up.
CREATE INDEX lysmore_jobs_id_brin ON {prefix}.lysmore_jobs USING brin (id) WITH (autosummarize = on);

-- error:"text" searches the messages and tracebacks of a job's attempts: this function gives them
-- as one JSON array text (NULL for a job without errors). It is a single expression, so the
-- planner inlines it, in queries and in the index below alike.
CREATE FUNCTION {prefix}.lysmore_error_text(errors jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN errors <> '[]' THEN
        (jsonb_path_query_array(errors, 'lax $[*].error')
         || jsonb_path_query_array(errors, 'lax $[*].traceback')
         || jsonb_path_query_array(errors, 'lax $[*] ? (@.type() == "string")'))::text
    END
$$;

-- The planner's statistics of that text, so that it can tell a common error from a rare one.
CREATE STATISTICS {prefix}.lysmore_jobs_error_text ON ({prefix}.lysmore_error_text(errors))
    FROM {prefix}.lysmore_jobs;

-- A trigram index over that text, for the jobs that have errors, when pg_trgm can be had: it
-- ships with PostgreSQL and is trusted (a database owner may create it). It goes to schema
-- public, never into a prefix's schema, so dropping one instance cannot take another's index with
-- it; where it already exists it is used wherever it is. Without it the filter still works, by
-- reading the jobs that have errors. The filter matches in the "C" collation (case folds ASCII
-- letters only), which makes checking each candidate several times cheaper on long tracebacks.
DO $$
DECLARE
    home text;
BEGIN
    SELECT n.nspname INTO home
    FROM pg_extension AS x JOIN pg_namespace AS n ON n.oid = x.extnamespace
    WHERE x.extname = 'pg_trgm';
    IF home IS NULL THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'lysmore: pg_trgm not installed (%), error filters will not be indexed', SQLERRM;
        END;
        -- Also finds it when a concurrent migration of another prefix created it first.
        SELECT n.nspname INTO home
        FROM pg_extension AS x JOIN pg_namespace AS n ON n.oid = x.extnamespace
        WHERE x.extname = 'pg_trgm';
    END IF;
    IF home IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX lysmore_jobs_errors_idx ON {prefix}.lysmore_jobs'
            ' USING gin (({prefix}.lysmore_error_text(errors) COLLATE "C") %I.gin_trgm_ops)'
            ' WHERE {prefix}.lysmore_error_text(errors) IS NOT NULL'
            ' AND state NOT IN (''available'', ''executing'')', home);
    END IF;
END
$$;
