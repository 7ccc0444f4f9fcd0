-- get_queue_health: the queue as an operator watches it, per job type and status.
--
-- Live jobs (pending, processing) are all counted; finished ones (completed, failed,
-- cancelled) only when they finished within p_window, read through
-- queue_jobs_completed_at_idx (0009), so the cost follows the live backlog and the
-- window's traffic, not the retention. Per row: how long the oldest due pending job has
-- waited, the age of the oldest processing job's last heartbeat (its claim when it never
-- beat), how many processing jobs are stalled (no heartbeat within p_stall_timeout:
-- reset_stalled_jobs would re-queue them now), and jobs failed for good in the last hour.
-- Reads without locking. What `notify-sql stats`, the console and /metrics show.
CREATE FUNCTION @schema@.get_queue_health(
  p_stall_timeout interval DEFAULT '5 minutes',
  p_window interval DEFAULT '24 hours')
RETURNS TABLE (
  job_type text, status text, job_count bigint, oldest_pending_age interval,
  oldest_heartbeat_age interval, stalled_jobs bigint, failed_last_hour bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_interval('p_stall_timeout', p_stall_timeout);
  PERFORM check_interval('p_window', p_window);
  RETURN QUERY
  -- Three branches, each matching one partial index (0001, 0009), so none scans the
  -- table: pending jobs through queue_jobs_claim_idx, processing ones through
  -- queue_jobs_processing_started_idx, finished ones through queue_jobs_completed_at_idx.
  SELECT j.job_type, j.status, count(*),
         now() - min(j.scheduled_for) FILTER (WHERE j.scheduled_for <= now()),
         NULL::interval, 0::bigint, 0::bigint
  FROM queue_jobs j
  WHERE j.status = 'pending'
  GROUP BY j.job_type, j.status
  UNION ALL
  SELECT j.job_type, j.status, count(*), NULL::interval,
         now() - min(coalesce(j.heartbeat_at, j.started_at)),
         count(*) FILTER (WHERE coalesce(j.heartbeat_at, j.started_at) < now() - p_stall_timeout),
         0::bigint
  FROM queue_jobs j
  WHERE j.status = 'processing' AND j.started_at IS NOT NULL
  GROUP BY j.job_type, j.status
  UNION ALL
  SELECT j.job_type, j.status, count(*), NULL::interval, NULL::interval, 0::bigint,
         count(*) FILTER (WHERE j.status = 'failed' AND j.completed_at >= now() - interval '1 hour')
  FROM queue_jobs j
  WHERE j.completed_at IS NOT NULL AND j.completed_at >= now() - p_window
    AND j.status IN ('completed', 'failed', 'cancelled')
  GROUP BY j.job_type, j.status
  ORDER BY 1, 2;
END;
$$;

COMMENT ON FUNCTION @schema@.get_queue_health(interval, interval) IS
  'Per job type and status: live jobs all counted, finished ones within p_window; oldest due pending age, oldest heartbeat age, stalled processing jobs (no heartbeat within p_stall_timeout), final failures in the last hour. 22023 on an interval outside (0, 100 years].';

GRANT EXECUTE ON FUNCTION @schema@.get_queue_health(interval, interval) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.get_queue_health(interval, interval) TO notify_sql_monitor;
