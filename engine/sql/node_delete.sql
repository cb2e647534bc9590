DELETE FROM {prefix}.lysmore_nodes WHERE id = %(node_id)s
