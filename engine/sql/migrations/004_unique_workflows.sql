-- Lysmore schema, version 4: unique jobs and workflow resolution.

-- The states in which a unique job keeps its key; leaving them gives the key up for good, so a
-- job coming back (retried, snoozed, staged, rescued) never collides with a newer one.
ALTER TABLE {prefix}.lysmore_jobs ADD COLUMN unique_states {prefix}.lysmore_job_state[];

CREATE FUNCTION {prefix}.lysmore_release_unique_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (NEW.state = ANY(NEW.unique_states)) THEN
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

-- Held steps by workflow, for resolving them when an upstream step finishes.
CREATE INDEX lysmore_jobs_held_idx ON {prefix}.lysmore_jobs (workflow_id)
    WHERE state = 'held';
