-- Statements on the audit log of dashboard actions.
-- Each statement follows its `-- name:` line; engine/_sql.py checks the names when it loads.

-- name: insert
INSERT INTO {prefix}.lysmore_audit (actor, action, targets, filter, outcome, detail)
VALUES (%(actor)s, %(action)s, %(targets)s, %(filter)s, %(outcome)s, %(detail)s)
RETURNING id
