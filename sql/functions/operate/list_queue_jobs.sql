-- list_queue_jobs: one page of jobs for the console's /jobs, newest first.
--
-- Keyset pagination on the primary key: job ids are time-ordered (their first 48 bits
-- are the creation time in milliseconds, 0001), so `id < p_before_id ORDER BY id DESC`
-- walks the primary key backwards from the cursor and page 1,000 costs what page 1
-- does (no OFFSET, no extra index on the hot table). Filters: status, job type, user,
-- creation time range; p_q finds a job by id, queue_job_id, job type, user id or the
-- correlation id its metadata carries (exact matches). NULL means "any". Plans are
-- made per call (force_custom_plan), so an absent filter costs nothing.
CREATE FUNCTION @schema@.list_queue_jobs(
  p_status text DEFAULT NULL,
  p_job_type text DEFAULT NULL,
  p_user_id uuid DEFAULT NULL,
  p_from timestamptz DEFAULT NULL,
  p_to timestamptz DEFAULT NULL,
  p_q text DEFAULT NULL,
  p_before_id uuid DEFAULT NULL,
  p_limit integer DEFAULT 50)
RETURNS TABLE (
  id uuid, queue_job_id text, job_type text, status text, user_id uuid, priority integer,
  attempts integer, max_attempts integer, created_at timestamptz, scheduled_for timestamptz,
  started_at timestamptz, heartbeat_at timestamptz, completed_at timestamptz,
  error_message text, correlation_id text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
  v_q text := nullif(btrim(p_q), '');
  v_q_uuid uuid;
BEGIN
  PERFORM check_text('p_status', p_status, 20, false);
  PERFORM check_text('p_job_type', p_job_type, 200, false);
  PERFORM check_text('p_q', p_q, 200, false);
  PERFORM check_batch_size('p_limit', p_limit, 500);
  IF v_q ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
    v_q_uuid := v_q::uuid;
  END IF;
  RETURN QUERY
  SELECT j.id, j.queue_job_id, j.job_type, j.status, j.user_id, j.priority, j.attempts,
         j.max_attempts, j.created_at, j.scheduled_for, j.started_at, j.heartbeat_at,
         j.completed_at, j.error_message, j.metadata ->> 'correlation_id'
  FROM queue_jobs j
  WHERE (p_status IS NULL OR j.status = p_status)
    AND (p_job_type IS NULL OR j.job_type = p_job_type)
    AND (p_user_id IS NULL OR j.user_id = p_user_id)
    AND (p_from IS NULL OR j.created_at >= p_from)
    AND (p_to IS NULL OR j.created_at < p_to)
    AND (p_before_id IS NULL OR j.id < p_before_id)
    AND (v_q IS NULL
         OR j.id = v_q_uuid OR j.user_id = v_q_uuid
         OR j.queue_job_id = v_q OR j.job_type = v_q
         OR j.metadata ->> 'correlation_id' = v_q)
  ORDER BY j.id DESC
  LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION @schema@.list_queue_jobs(text, text, uuid, timestamptz, timestamptz, text, uuid, integer) IS
  'One page of jobs, newest first, filtered (NULL: any) and searched (p_q: id, queue_job_id, job type, user id, correlation id); pass the last id of a page as p_before_id for the next. 22023 on over-long text or a limit outside 1..500.';

GRANT EXECUTE ON FUNCTION @schema@.list_queue_jobs(text, text, uuid, timestamptz, timestamptz, text, uuid, integer) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.list_queue_jobs(text, text, uuid, timestamptz, timestamptz, text, uuid, integer) TO notify_sql_monitor;
