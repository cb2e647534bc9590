-- name: insert
-- One notification as a channel handled it; first and last seen are ages on the reporter's
-- clock, turned into times on the database's.
INSERT INTO {prefix}.lysmore_notifications
    (group_key, kind, worker, queue, error_type, message, node, job_id, channel, status, count,
     first_seen, last_seen, error)
VALUES (%(group_key)s, %(kind)s, %(worker)s, %(queue)s, %(error_type)s, %(message)s, %(node)s,
        %(job_id)s, %(channel)s, %(status)s, %(count)s,
        now() - make_interval(secs => %(first_age)s), now() - make_interval(secs => %(last_age)s),
        %(error)s)

-- name: recent
-- The newest notifications, newest first.
SELECT id, at, group_key, kind, worker, queue, error_type, message, node, job_id, channel, status,
       count, first_seen, last_seen, error
FROM {prefix}.lysmore_notifications
ORDER BY id DESC
LIMIT %(limit)s
