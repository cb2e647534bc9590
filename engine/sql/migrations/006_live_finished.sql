-- Lysmore schema, version 6: live jobs apart from finished ones.
--
-- The jobs table becomes a table partitioned by state: `lysmore_jobs_live` holds the jobs that
-- can still run (available, scheduled, executing, retryable, held), `lysmore_jobs_finished` the
-- ones that are done (completed, discarded, cancelled). Statements still name `lysmore_jobs`;
-- PostgreSQL reads only the side a state condition allows, and moves a row to the other side
-- when its state crosses over (a delete there and an insert here, in the same statement).
--
-- Why: a busy system keeps a day of finished jobs, millions of rows beside the few live ones.
-- In one table every fetch, stage and ack works among them: their index entries, their dead row
-- versions until a vacuum comes. Now the hot path touches a table as small as the backlog, with
-- only the indexes the hot path needs; the dashboard's filter indexes hold finished and waiting
-- jobs only (their predicates leave out available and executing jobs, as in version 5).
--
-- What changes with it:
-- - A partitioned table's unique index must include the partition key, so a unique job's key is
--   arbitrated in `lysmore_unique_keys` (key -> the job holding it) by lysmore_insert_unique().
-- - The primary key is (id, state); ids still come from one sequence, so an id is one job.
-- - An UPDATE that races another moving the same row across gets SQLSTATE 40001 instead of
--   following it; the engine's statements retry on it (each is a compare-and-set).
--
-- Upgrading copies every job into the new table inside this migration's transaction: every
-- statement on the jobs table waits until it commits (10 s for a million jobs on the 2-core
-- development machine), and nothing changes state or is lost (tests/engine/test_migrate_populated.py).

ALTER TABLE {prefix}.lysmore_jobs RENAME TO lysmore_jobs_v5;
ALTER INDEX {prefix}.lysmore_jobs_pkey RENAME TO lysmore_jobs_v5_pkey;
DROP TRIGGER lysmore_release_unique_key ON {prefix}.lysmore_jobs_v5;
DROP STATISTICS {prefix}.lysmore_jobs_queue_state;
DROP STATISTICS {prefix}.lysmore_jobs_error_text;

CREATE SEQUENCE {prefix}.lysmore_job_ids AS bigint;
SELECT setval('{prefix}.lysmore_job_ids', greatest(used, 1), used > 0)
FROM (SELECT greatest(coalesce((SELECT max(id) FROM {prefix}.lysmore_jobs_v5), 0),
                      coalesce(pg_sequence_last_value(pg_get_serial_sequence('{prefix}.lysmore_jobs_v5', 'id')), 0))
             AS used) AS ids;

CREATE TABLE {prefix}.lysmore_jobs (
    id             bigint NOT NULL DEFAULT nextval('{prefix}.lysmore_job_ids'),
    state          {prefix}.lysmore_job_state NOT NULL DEFAULT 'available',
    queue          text NOT NULL,
    worker         text NOT NULL,
    args           jsonb NOT NULL DEFAULT '{{}}',
    meta           jsonb NOT NULL DEFAULT '{{}}',
    tags           text[] NOT NULL DEFAULT ARRAY[]::text[],
    priority       smallint NOT NULL DEFAULT 0,
    attempt        integer NOT NULL DEFAULT 0,
    max_attempts   integer NOT NULL DEFAULT 20,
    errors         jsonb NOT NULL DEFAULT '[]',
    result         jsonb,
    inserted_at    timestamptz NOT NULL DEFAULT now(),
    scheduled_at   timestamptz NOT NULL DEFAULT now(),
    attempted_at   timestamptz,
    completed_at   timestamptz,
    cancelled_at   timestamptz,
    discarded_at   timestamptz,
    attempted_by   text[],
    node_id        uuid,
    unique_key     text,
    workflow_id    uuid,
    workflow_name  text,
    workflow_step  text,
    workflow_deps  text[] NOT NULL DEFAULT ARRAY[]::text[],
    unique_states  {prefix}.lysmore_job_state[],
    CONSTRAINT lysmore_jobs_priority_check CHECK (priority BETWEEN 0 AND 9),
    CONSTRAINT lysmore_jobs_attempt_check CHECK (attempt >= 0),
    CONSTRAINT lysmore_jobs_max_attempts_check CHECK (max_attempts > 0),
    CONSTRAINT lysmore_jobs_queue_ok CHECK (char_length(queue) BETWEEN 1 AND 128),
    CONSTRAINT lysmore_jobs_worker_ok CHECK (char_length(worker) BETWEEN 1 AND 255),
    CONSTRAINT lysmore_jobs_pkey PRIMARY KEY (id, state)
) PARTITION BY LIST (state);
ALTER SEQUENCE {prefix}.lysmore_job_ids OWNED BY {prefix}.lysmore_jobs.id;

CREATE TABLE {prefix}.lysmore_jobs_live PARTITION OF {prefix}.lysmore_jobs
    FOR VALUES IN ('available', 'scheduled', 'executing', 'retryable', 'held');
CREATE TABLE {prefix}.lysmore_jobs_finished PARTITION OF {prefix}.lysmore_jobs
    FOR VALUES IN ('completed', 'discarded', 'cancelled');

INSERT INTO {prefix}.lysmore_jobs
    (id, state, queue, worker, args, meta, tags, priority, attempt, max_attempts, errors, result,
     inserted_at, scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
     node_id, unique_key, workflow_id, workflow_name, workflow_step, workflow_deps, unique_states)
SELECT id, state, queue, worker, args, meta, tags, priority, attempt, max_attempts, errors, result,
       inserted_at, scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
       node_id, unique_key, workflow_id, workflow_name, workflow_step, workflow_deps, unique_states
FROM {prefix}.lysmore_jobs_v5;

-- The key each unique job holds (its period counts from the job's inserted_at).
CREATE TABLE {prefix}.lysmore_unique_keys (
    key     text PRIMARY KEY,
    job_id  bigint NOT NULL
);
INSERT INTO {prefix}.lysmore_unique_keys (key, job_id)
SELECT unique_key, id FROM {prefix}.lysmore_jobs_v5 WHERE unique_key IS NOT NULL;

DROP TABLE {prefix}.lysmore_jobs_v5;

-- The hot path's indexes, on the live side only.
CREATE INDEX lysmore_jobs_fetch_idx ON {prefix}.lysmore_jobs_live (queue, priority, scheduled_at, id)
    WHERE state = 'available';
CREATE INDEX lysmore_jobs_stage_idx ON {prefix}.lysmore_jobs_live (scheduled_at, id)
    WHERE state IN ('scheduled', 'retryable');
CREATE INDEX lysmore_jobs_executing_idx ON {prefix}.lysmore_jobs_live (node_id, queue)
    WHERE state = 'executing';
CREATE INDEX lysmore_jobs_held_idx ON {prefix}.lysmore_jobs_live (workflow_id)
    WHERE state = 'held';

-- Both sides: listing by state, workflows' steps.
CREATE INDEX lysmore_jobs_state_idx ON {prefix}.lysmore_jobs (state, queue, id);
CREATE INDEX lysmore_jobs_workflow_idx ON {prefix}.lysmore_jobs (workflow_id, workflow_step)
    WHERE workflow_id IS NOT NULL;

-- The dashboard's filters (version 5, same predicates): finished and waiting jobs.
CREATE INDEX lysmore_jobs_worker_idx ON {prefix}.lysmore_jobs (worker, id)
    WHERE state NOT IN ('available', 'executing');
CREATE INDEX lysmore_jobs_node_idx ON {prefix}.lysmore_jobs ((attempted_by[1]), id)
    WHERE attempted_by IS NOT NULL AND state NOT IN ('available', 'executing');
CREATE INDEX lysmore_jobs_tags_idx ON {prefix}.lysmore_jobs USING gin (tags)
    WHERE tags <> '{{}}' AND state NOT IN ('available', 'executing');
CREATE INDEX lysmore_jobs_args_idx ON {prefix}.lysmore_jobs USING gin (args)
    WHERE args <> '{{}}' AND state NOT IN ('available', 'executing');
CREATE INDEX lysmore_jobs_meta_idx ON {prefix}.lysmore_jobs USING gin (meta)
    WHERE meta <> '{{}}' AND state NOT IN ('available', 'executing');
CREATE INDEX lysmore_jobs_attempt_idx ON {prefix}.lysmore_jobs (attempt)
    WHERE attempt > 1 AND state NOT IN ('available', 'executing');
CREATE INDEX lysmore_jobs_priority_idx ON {prefix}.lysmore_jobs (priority)
    WHERE priority > 0 AND state NOT IN ('available', 'executing');
-- Block ranges of age and id, for searching history a span at a time: the finished side only
-- (the live side is as small as the backlog, and every insert and claim would add to them).
CREATE INDEX lysmore_jobs_inserted_brin ON {prefix}.lysmore_jobs_finished USING brin (inserted_at)
    WITH (autosummarize = on);
CREATE INDEX lysmore_jobs_id_brin ON {prefix}.lysmore_jobs_finished USING brin (id) WITH (autosummarize = on);
DO $$
DECLARE
    home text;
BEGIN
    -- pg_trgm, where version 5 found or created it; without it error filters read the jobs
    -- that have errors, as before.
    SELECT n.nspname INTO home
    FROM pg_extension AS x JOIN pg_namespace AS n ON n.oid = x.extnamespace
    WHERE x.extname = 'pg_trgm';
    IF home IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX lysmore_jobs_errors_idx ON {prefix}.lysmore_jobs'
            ' USING gin (({prefix}.lysmore_error_text(errors) COLLATE "C") %I.gin_trgm_ops)'
            ' WHERE {prefix}.lysmore_error_text(errors) IS NOT NULL'
            ' AND state NOT IN (''available'', ''executing'')', home);
    END IF;
END
$$;

-- The joint statistics of versions 2 and 5, on each side: the planner estimates a scan of a
-- side from that side's own statistics.
CREATE STATISTICS {prefix}.lysmore_jobs_live_queue_state (mcv) ON queue, state FROM {prefix}.lysmore_jobs_live;
CREATE STATISTICS {prefix}.lysmore_jobs_finished_queue_state (mcv) ON queue, state
    FROM {prefix}.lysmore_jobs_finished;
CREATE STATISTICS {prefix}.lysmore_jobs_live_error_text ON ({prefix}.lysmore_error_text(errors))
    FROM {prefix}.lysmore_jobs_live;
CREATE STATISTICS {prefix}.lysmore_jobs_finished_error_text ON ({prefix}.lysmore_error_text(errors))
    FROM {prefix}.lysmore_jobs_finished;

-- A unique job leaving its unique states gives its key up for good (version 4), now also in
-- the keys table, so a newer job can take it.
CREATE OR REPLACE FUNCTION {prefix}.lysmore_release_unique_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (NEW.state = ANY(NEW.unique_states)) THEN
        DELETE FROM {prefix}.lysmore_unique_keys WHERE key = OLD.unique_key AND job_id = OLD.id;
        NEW.unique_key := NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER lysmore_release_unique_key
    BEFORE UPDATE OF state ON {prefix}.lysmore_jobs
    FOR EACH ROW
    WHEN (NEW.unique_key IS NOT NULL)
    EXECUTE FUNCTION {prefix}.lysmore_release_unique_key();

-- Insert one unique job, or find the job holding its key. Returns that job's row as it is now
-- and whether it was inserted. The key's row in lysmore_unique_keys is the lock: a concurrent
-- insert of the same key waits for this transaction, then finds the job. A key is free when no
-- row holds it, when the job it names no longer holds it (gone, or left its unique states), or
-- when the period since that job's inserted_at is over (by the database clock). On a conflict,
-- `replace` (state -> fields) says what of the new job replaces the holder's, as in version 4:
-- args, meta, tags, priority, max_attempts, scheduled_at (which also moves a scheduled or
-- available holder between those two states, the engine's RESCHEDULABLE).
-- Each statement in it reads a fresh snapshot (READ COMMITTED), so the holder committed by a
-- concurrent insert is seen once its key row is.
CREATE FUNCTION {prefix}.lysmore_insert_unique(
    p_queue text, p_worker text, p_args jsonb, p_meta jsonb, p_tags text[], p_priority smallint,
    p_max_attempts integer, p_scheduled_at timestamptz, p_schedule_in float8, p_unique_key text,
    p_unique_states {prefix}.lysmore_job_state[], p_period float8, p_replace jsonb,
    OUT job {prefix}.lysmore_jobs, OUT inserted boolean
)
LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := coalesce(p_scheduled_at, now() + make_interval(secs => coalesce(p_schedule_in, 0)));
    new_id bigint;
    holder bigint;
    since timestamptz;
    held_state {prefix}.lysmore_job_state;
    fields jsonb;
BEGIN
    LOOP
        new_id := nextval('{prefix}.lysmore_job_ids');
        INSERT INTO {prefix}.lysmore_unique_keys AS k (key, job_id) VALUES (p_unique_key, new_id)
        ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN
            SELECT k.job_id INTO holder
            FROM {prefix}.lysmore_unique_keys AS k WHERE k.key = p_unique_key FOR UPDATE;
            IF NOT FOUND THEN
                CONTINUE;  -- given up meanwhile: try again
            END IF;
            SELECT j.state, j.inserted_at INTO held_state, since
            FROM {prefix}.lysmore_jobs AS j WHERE j.id = holder AND j.unique_key = p_unique_key;
            IF FOUND AND (p_period IS NULL OR since > now() - make_interval(secs => p_period)) THEN
                fields := coalesce(p_replace -> held_state::text, '[]');
                IF fields <> '[]' THEN
                    UPDATE {prefix}.lysmore_jobs AS j
                    SET args = CASE WHEN fields ? 'args' THEN p_args ELSE j.args END,
                        meta = CASE WHEN fields ? 'meta' THEN p_meta ELSE j.meta END,
                        tags = CASE WHEN fields ? 'tags' THEN p_tags ELSE j.tags END,
                        priority = CASE WHEN fields ? 'priority' THEN p_priority ELSE j.priority END,
                        max_attempts = CASE WHEN fields ? 'max_attempts'
                                            THEN greatest(p_max_attempts, j.attempt + 1) ELSE j.max_attempts END,
                        scheduled_at = CASE WHEN fields ? 'scheduled_at' THEN at ELSE j.scheduled_at END,
                        state = CASE WHEN fields ? 'scheduled_at' AND j.state IN ('scheduled', 'available')
                                     THEN (CASE WHEN at > now() THEN 'scheduled' ELSE 'available' END)::{prefix}.lysmore_job_state
                                     ELSE j.state END
                    WHERE j.id = holder;
                END IF;
                SELECT * INTO job FROM {prefix}.lysmore_jobs WHERE id = holder;
                inserted := false;
                RETURN;
            END IF;
            -- Free: the holder is gone, let it go, or its period is over. Take the key over.
            UPDATE {prefix}.lysmore_jobs SET unique_key = NULL WHERE id = holder AND unique_key = p_unique_key;
            UPDATE {prefix}.lysmore_unique_keys SET job_id = new_id
            WHERE key = p_unique_key;
        END IF;
        INSERT INTO {prefix}.lysmore_jobs
            (id, state, queue, worker, args, meta, tags, priority, max_attempts, scheduled_at,
             unique_key, unique_states)
        VALUES (new_id, (CASE WHEN at > now() THEN 'scheduled' ELSE 'available' END)::{prefix}.lysmore_job_state,
                p_queue, p_worker, p_args, p_meta, p_tags, p_priority, p_max_attempts, at,
                p_unique_key, p_unique_states)
        RETURNING * INTO job;
        inserted := true;
        RETURN;
    END LOOP;
END
$$;
