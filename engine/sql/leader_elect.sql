-- Take or renew the leadership lease. A new term (epoch + 1) starts only when the lease of the
-- holder has run out; the holder renewing in time keeps its epoch. No row back: not leader.
INSERT INTO {prefix}.lysmore_leader AS l (name, node_id, node_name, epoch, elected_at, expires_at)
VALUES ('leader', %(node_id)s, %(node_name)s, 1, now(), now() + make_interval(secs => %(lease)s))
ON CONFLICT (name) DO UPDATE
SET node_id = excluded.node_id,
    node_name = excluded.node_name,
    epoch = CASE WHEN l.node_id = excluded.node_id AND l.expires_at > now()
                 THEN l.epoch ELSE l.epoch + 1 END,
    elected_at = CASE WHEN l.node_id = excluded.node_id AND l.expires_at > now()
                      THEN l.elected_at ELSE now() END,
    expires_at = excluded.expires_at
WHERE l.expires_at <= now() OR l.node_id = excluded.node_id
RETURNING epoch
