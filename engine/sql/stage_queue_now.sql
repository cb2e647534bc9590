-- Make every scheduled and retryable job of one queue available now (drain_queue with_scheduled).
UPDATE {prefix}.lysmore_jobs
SET state = 'available', scheduled_at = now()
WHERE queue = %(queue)s AND state IN ('scheduled', 'retryable')
