-- Lysmore schema, version 2: per-minute outcome rollups and cron runs.

-- Completed / failed (will retry) / discarded / cancelled / snoozed per queue and minute,
-- written with each batch of acks; the stats plugin prunes old minutes.
CREATE TABLE {prefix}.lysmore_stats_minutely (
    queue      text NOT NULL,
    minute     timestamptz NOT NULL,
    completed  integer NOT NULL DEFAULT 0,
    failed     integer NOT NULL DEFAULT 0,
    discarded  integer NOT NULL DEFAULT 0,
    cancelled  integer NOT NULL DEFAULT 0,
    snoozed    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, minute)
);
CREATE INDEX lysmore_stats_minutely_minute_idx ON {prefix}.lysmore_stats_minutely (minute);

-- One row per cron entry and scheduled instant: the primary key makes a run happen once.
CREATE TABLE {prefix}.lysmore_cron_runs (
    name        text NOT NULL,
    instant     timestamptz NOT NULL,
    job_id      bigint,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, instant)
);

-- Joint statistics of (queue, state), so counts can be estimated from the planner's sample when
-- the jobs table is too large to count.
CREATE STATISTICS {prefix}.lysmore_jobs_queue_state (mcv) ON queue, state FROM {prefix}.lysmore_jobs;
