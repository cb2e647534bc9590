-- A node announces itself for this boot.
INSERT INTO {prefix}.lysmore_nodes (id, name, host, pid, meta)
VALUES (%(node_id)s, %(name)s, %(host)s, %(pid)s, %(meta)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
