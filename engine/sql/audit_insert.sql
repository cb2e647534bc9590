INSERT INTO {prefix}.lysmore_audit (actor, action, targets, filter, outcome, detail)
VALUES (%(actor)s, %(action)s, %(targets)s, %(filter)s, %(outcome)s, %(detail)s)
RETURNING id
