-- Migration 7: the job path's statements (fetch, the fetch under a plain global limit, ack, the
-- narrow ack) as functions, so that each session plans them once.
--
-- Sent from the client, these statements were planned again on every call: a prepared
-- statement gets a custom plan for its first five runs and keeps getting one while its generic
-- plan looks dearer, and a generic plan with `LIMIT $n` is costed for a tenth of the table.
-- Planning over the two sides of the jobs table and their indexes took longer than running the
-- fetch (a fetch of 10: about 1.8 ms, 1.1 ms with a generic plan). In PL/pgSQL each statement's
-- plan is kept for the session, and `plan_cache_mode` makes it the generic one from the first
-- call. It holds behind a transaction pooler too, where the client prepares nothing.
--
-- The statements are those of sql/jobs.sql before this migration, but for the parameters (and the
-- global fetch, which now counts its budget first and then claims through lysmore_fetch). A later
-- change to them is a new migration that replaces these functions.

-- Claim up to p_demand available jobs of one queue for this node; they start at p_started_at
-- (default: now()).
CREATE FUNCTION {prefix}.lysmore_fetch(
    p_queue text, p_demand int, p_node_id uuid, p_node_name text, p_started_at timestamptz DEFAULT NULL
)
RETURNS SETOF {prefix}.lysmore_jobs
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT id
        FROM {prefix}.lysmore_jobs
        WHERE state = 'available' AND queue = p_queue
        ORDER BY priority, scheduled_at, id
        LIMIT p_demand
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {prefix}.lysmore_jobs AS j
    SET state = 'executing',
        attempt = j.attempt + 1,
        attempted_at = coalesce(p_started_at, now()),
        attempted_by = ARRAY[p_node_name, p_node_id::text],
        node_id = p_node_id
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked)) AND j.state = 'available'
    RETURNING j.*;
END
$$;

-- The fetch of a queue under a plain global limit (no partitions, no rate limit): this node's fair
-- share of the free slots, or more when the other nodes have no room to take the rest. It runs
-- after the queue's lock (and the ack of the slots it frees, in the same transaction), so no other
-- fetch of the queue claims between its count and its claim; the jobs start now, after the lock.
CREATE FUNCTION {prefix}.lysmore_fetch_global(
    p_queue text, p_demand int, p_node_id uuid, p_node_name text, p_allowed int, p_node_ttl float8
)
RETURNS SETOF {prefix}.lysmore_jobs
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    budget int;
BEGIN
    WITH running AS (
        SELECT count(*) AS n, count(*) FILTER (WHERE node_id = p_node_id) AS mine
        FROM {prefix}.lysmore_jobs
        WHERE state = 'executing' AND queue = p_queue
    ),
    peers AS (
        -- The other live, unpaused nodes of the queue, and how much room they have.
        SELECT count(*) + 1 AS nodes,
               coalesce(sum(greatest(p.local_limit - p.running, 0)), 0) AS room
        FROM {prefix}.lysmore_producers AS p
        JOIN {prefix}.lysmore_nodes AS n ON n.id = p.node_id
        WHERE p.queue = p_queue AND NOT p.paused AND p.node_id <> p_node_id
          AND n.heartbeat_at > now() - make_interval(secs => p_node_ttl)
    )
    SELECT least(p_demand,
                 greatest(0, p_allowed - r.n)::int,
                 greatest(ceil(p_allowed::numeric / peers.nodes)::int - r.mine,
                          greatest(0, p_allowed - r.n) - peers.room)::int)
    INTO budget
    FROM running AS r, peers;
    RETURN QUERY
    SELECT * FROM {prefix}.lysmore_fetch(p_queue, greatest(budget, 0), p_node_id, p_node_name, clock_timestamp());
END
$$;

-- Outcomes of many executions, compare-and-set: a row changes only while it is still executing
-- this attempt on this node. Slots freed in the queues named in p_wake are announced. Returns
-- the ids it applied.
CREATE FUNCTION {prefix}.lysmore_ack(
    p_id bigint[], p_attempt int[], p_state text[], p_delay float8[], p_extra_attempts int[],
    p_error text[], p_result text[], p_meta text[], p_node_id uuid, p_wake text[], p_channel text
)
RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    WITH acked AS (
        UPDATE {prefix}.lysmore_jobs AS j
        SET state = v.state::{prefix}.lysmore_job_state,
            completed_at = CASE WHEN v.state = 'completed' THEN now() ELSE j.completed_at END,
            discarded_at = CASE WHEN v.state = 'discarded' THEN now() ELSE j.discarded_at END,
            cancelled_at = CASE WHEN v.state = 'cancelled' THEN now() ELSE j.cancelled_at END,
            scheduled_at = CASE WHEN v.state IN ('scheduled', 'retryable')
                                THEN now() + make_interval(secs => v.delay)
                                ELSE j.scheduled_at END,
            max_attempts = j.max_attempts + v.extra_attempts,
            errors = CASE WHEN v.error IS NULL THEN j.errors
                          ELSE j.errors || jsonb_build_array(v.error || jsonb_build_object('at', now())) END,
            result = CASE WHEN v.state = 'completed' THEN v.result ELSE j.result END,
            meta = CASE WHEN v.meta IS NULL THEN j.meta ELSE j.meta || v.meta END
        FROM unnest(
            p_id, p_attempt, p_state, p_delay, p_extra_attempts,
            p_error::jsonb[], p_result::jsonb[], p_meta::jsonb[]
        ) AS v(id, attempt, state, delay, extra_attempts, error, result, meta)
        WHERE j.id = v.id
          AND j.attempt = v.attempt
          AND j.node_id = p_node_id
          AND j.state = 'executing'
        RETURNING j.id, j.queue
    ),
    woken AS (
        SELECT count(pg_notify(p_channel, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
        FROM (SELECT DISTINCT queue FROM acked WHERE queue = ANY(p_wake)) AS q
    )
    SELECT acked.id FROM acked, woken;
END
$$;

-- The ack of a batch whose every outcome is `completed` with no result or meta to write: the
-- common case, with no JSON to read or rebuild (same rules as lysmore_ack).
CREATE FUNCTION {prefix}.lysmore_ack_completed(
    p_id bigint[], p_attempt int[], p_node_id uuid, p_wake text[], p_channel text
)
RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    WITH acked AS (
        UPDATE {prefix}.lysmore_jobs AS j
        SET state = 'completed', completed_at = now()
        FROM unnest(p_id, p_attempt) AS v(id, attempt)
        WHERE j.id = v.id
          AND j.attempt = v.attempt
          AND j.node_id = p_node_id
          AND j.state = 'executing'
        RETURNING j.id, j.queue
    ),
    woken AS (
        SELECT count(pg_notify(p_channel, json_build_object('kind', 'insert', 'queue', q.queue)::text)) AS n
        FROM (SELECT DISTINCT queue FROM acked WHERE queue = ANY(p_wake)) AS q
    )
    SELECT acked.id FROM acked, woken;
END
$$;
