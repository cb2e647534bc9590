-- Lysmore schema, version 10: notifications the error reporter sent (or held back), for the dashboard.

-- One row per notification and channel: a group (kind:worker:error type) of job failures,
-- discards, stale acks or lost nodes, how many happenings it stood for, and whether the channel
-- took it (sent), refused it (failed, with the masked error) or the rate limit held it back.
-- Pruned with the per-minute rollups (stats_retention).
CREATE TABLE {prefix}.lysmore_notifications (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    group_key   text NOT NULL,
    kind        text NOT NULL,
    worker      text NOT NULL,
    queue       text NOT NULL,
    error_type  text NOT NULL,
    message     text NOT NULL,
    node        text NOT NULL,
    job_id      bigint,
    channel     text NOT NULL,
    status      text NOT NULL CHECK (status IN ('sent', 'failed', 'rate_limited')),
    count       integer NOT NULL CHECK (count >= 1),
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    error       text
);

CREATE INDEX lysmore_notifications_at ON {prefix}.lysmore_notifications (at);
