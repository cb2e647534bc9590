-- Lysmore schema, version 9: cron entries as the leader runs them, and their pause.

-- One row per cron entry (by its key: the name, or expression|worker|timezone). The leader writes
-- its crontab here when it takes office, so readers (the dashboard) see the entries without
-- asking a node; entries no longer in the leader's crontab stay, marked inactive, so a pause
-- set on them survives a deploy that drops and brings back an entry.
CREATE TABLE {prefix}.lysmore_cron_entries (
    name         text PRIMARY KEY,
    expression   text NOT NULL,
    timezone     text NOT NULL,
    worker       text NOT NULL,
    queue        text NOT NULL,
    args         jsonb NOT NULL DEFAULT '{{}}',
    active       boolean NOT NULL DEFAULT true,
    paused       boolean NOT NULL DEFAULT false,
    paused_at    timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    recorded_by  text
);

-- A run claimed while its entry was paused: recorded (so it is not run later, and the entry's
-- newest instant moves on) but no job was inserted for it.
ALTER TABLE {prefix}.lysmore_cron_runs ADD COLUMN paused boolean NOT NULL DEFAULT false;
