-- Give up the key of a unique job inserted longer ago than the period (by the database clock),
-- so that the INSERT that follows in the same transaction can take it.
UPDATE {prefix}.lysmore_jobs
SET unique_key = NULL
WHERE unique_key = %(unique_key)s
  AND %(period)s::float8 IS NOT NULL
  AND inserted_at <= now() - make_interval(secs => %(period)s::float8)
