-- delete_old_completed_queue_jobs: deletes up to p_batch_size completed jobs that
-- completed more than p_retention_days days ago, oldest first (the seed platform's
-- name, arguments and result); call it again until deleted_count is 0.
--
-- Only `completed` jobs go (failed and cancelled ones stay for inspection), optionally
-- only of p_job_types, and never one an SMS message still names (sms_messages
-- .queue_job_id). Rows another transaction holds are skipped (SKIP LOCKED), so it never
-- waits on a worker. p_retention_days = 0 deletes nothing (the platform's rule: 0 turns
-- retention off). One row: how many, and the oldest / newest completed_at deleted
-- (NULL when none). Bad input (NULL or negative retention, batch outside 1..10000, a
-- job-type list that is empty, holds NULL or has over 100 entries) raises 22023.
CREATE FUNCTION @schema@.delete_old_completed_queue_jobs(
  p_retention_days integer DEFAULT 30,
  p_batch_size integer DEFAULT 500,
  p_job_types text[] DEFAULT NULL
)
RETURNS TABLE (
  deleted_count integer,
  oldest_deleted_completed_at timestamptz,
  newest_deleted_completed_at timestamptz
)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_retention_days IS NULL OR p_retention_days NOT BETWEEN 0 AND 36500 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_retention_days: must be between 0 and 36500, got %s',
                       coalesce(p_retention_days::text, 'NULL'));
  END IF;
  PERFORM check_batch_size('p_batch_size', p_batch_size, 10000);
  IF cardinality(p_job_types) = 0 OR cardinality(p_job_types) > 100
     OR array_position(p_job_types, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_job_types: must list 1 to 100 job types, none NULL (NULL means all)';
  END IF;

  RETURN QUERY
  WITH doomed AS MATERIALIZED (
    SELECT q.id
    FROM queue_jobs q
    WHERE p_retention_days > 0
      AND q.status = 'completed'
      AND q.completed_at < now() - make_interval(days => p_retention_days)
      AND (p_job_types IS NULL OR q.job_type = ANY (p_job_types))
      AND NOT EXISTS (SELECT FROM sms_messages s WHERE s.queue_job_id = q.id)
    ORDER BY q.completed_at, q.id
    LIMIT p_batch_size
    FOR UPDATE SKIP LOCKED
  ),
  deleted AS (
    DELETE FROM queue_jobs q USING doomed d WHERE q.id = d.id RETURNING q.completed_at
  )
  SELECT count(*)::integer, min(x.completed_at), max(x.completed_at) FROM deleted x;
END;
$$;

COMMENT ON FUNCTION @schema@.delete_old_completed_queue_jobs(integer, integer, text[]) IS 'Deletes up to p_batch_size completed jobs (optionally of p_job_types) older than p_retention_days days (0: none), oldest first, skipping locked rows and jobs an SMS message names; one row: deleted_count, oldest and newest completed_at deleted. Raises 22023 naming the parameter on bad input.';

GRANT EXECUTE ON FUNCTION @schema@.delete_old_completed_queue_jobs(integer, integer, text[]) TO service_role;
