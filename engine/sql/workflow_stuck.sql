-- Workflows with a held step whose dependencies have all finished: resolution was missed
-- (a crash between ack and resolve, a rescue, a deletion). The sweeper resolves them.
SELECT DISTINCT d.workflow_id
FROM {prefix}.lysmore_jobs AS d
WHERE d.state = 'held'
  AND NOT EXISTS (
      SELECT 1 FROM {prefix}.lysmore_jobs AS u
      WHERE u.workflow_id = d.workflow_id AND u.workflow_step = ANY(d.workflow_deps)
        AND u.state NOT IN ('completed', 'cancelled', 'discarded'))
LIMIT %(limit)s
