-- Serialise limited fetches of one queue across nodes until this transaction ends.
SELECT pg_advisory_xact_lock(hashtext('lysmore.fetch'), hashtext(%(key)s))
