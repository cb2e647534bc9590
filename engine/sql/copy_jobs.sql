COPY {prefix}.lysmore_jobs (id, queue, worker, args, meta, tags, priority, max_attempts) FROM STDIN
