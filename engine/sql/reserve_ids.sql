-- Reserve ids for a COPY of new jobs, and read the transaction's clock for their timestamps.
SELECT now() AS now,
       array_agg(nextval(pg_get_serial_sequence(%(table)s, 'id'))) AS ids
FROM generate_series(1, %(n)s)
