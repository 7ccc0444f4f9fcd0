-- queue_stats: what an operator looks at first: counts per job type and status.
--
-- One row per (job_type, status) present. oldest_created_at is the creation time of the
-- oldest job in the group; max_wait is, for pending jobs already due, how long the one
-- waiting longest has been due (NULL for other statuses or when none is due): a
-- growing max_wait means workers are not keeping up. Reads without locking (a plain
-- scan of the table; run it on demand, not in a tight loop).
CREATE FUNCTION @schema@.queue_stats()
RETURNS TABLE (job_type text, status text, job_count bigint, oldest_created_at timestamptz, max_wait interval)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT j.job_type, j.status, count(*), min(j.created_at),
         CASE WHEN j.status = 'pending'
              THEN now() - min(j.scheduled_for) FILTER (WHERE j.scheduled_for <= now()) END
  FROM queue_jobs j
  GROUP BY j.job_type, j.status
  ORDER BY j.job_type, j.status;
$$;

COMMENT ON FUNCTION @schema@.queue_stats() IS
  'Job counts per job_type and status, with the oldest creation time and, for pending jobs, how long the oldest due one has waited.';

GRANT EXECUTE ON FUNCTION @schema@.queue_stats() TO service_role;
