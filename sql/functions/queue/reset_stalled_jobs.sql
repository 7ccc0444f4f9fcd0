-- reset_stalled_jobs: rescues jobs whose worker stopped heartbeating.
--
-- A `processing` job whose last heartbeat (or claim, when it never heartbeat) is older
-- than p_stall_timeout goes back to `pending`, due at once, token cleared; a job that
-- has used all its attempts is `failed` instead. Clearing the token is what fences the
-- old worker: if it is still alive, its complete / fail / heartbeat return false.
-- Bounded: at most p_batch_size jobs per call (picked in a MATERIALIZED CTE with SKIP
-- LOCKED, so it never waits on a worker finishing the same job); call again while it
-- returns p_batch_size. Since heartbeat_at >= started_at, the candidates are found by a
-- range scan of the small partial index over processing jobs.
CREATE FUNCTION @schema@.reset_stalled_jobs(p_stall_timeout interval DEFAULT '5 minutes', p_batch_size integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_reset integer;
BEGIN
  PERFORM check_interval('p_stall_timeout', p_stall_timeout);
  PERFORM check_batch_size('p_batch_size', p_batch_size, 100000);

  WITH stalled AS MATERIALIZED (
    SELECT j.id
    FROM queue_jobs j
    WHERE j.status = 'processing'
      AND j.started_at < now() - p_stall_timeout
      AND coalesce(j.heartbeat_at, j.started_at) < now() - p_stall_timeout
    ORDER BY j.started_at
    LIMIT p_batch_size
    FOR UPDATE SKIP LOCKED
  ), reset AS (
    UPDATE queue_jobs j
    SET status = CASE WHEN j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END,
        scheduled_for = CASE WHEN j.attempts < j.max_attempts THEN now() ELSE j.scheduled_for END,
        completed_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE now() END,
        processing_token = NULL,
        heartbeat_at = NULL,
        error_message = format('stalled: no heartbeat for %s', p_stall_timeout),
        updated_at = now()
    FROM stalled
    WHERE j.id = stalled.id AND j.status = 'processing'
    RETURNING j.id
  )
  SELECT count(*) INTO v_reset FROM reset;
  RETURN v_reset;
END;
$$;

COMMENT ON FUNCTION @schema@.reset_stalled_jobs(interval, integer) IS
  'Re-queues (or fails, when out of attempts) at most p_batch_size processing jobs with no heartbeat within p_stall_timeout, fencing out their old tokens; returns how many. 22023 on a timeout outside (0, 100 years] or a batch size outside 1..100000.';

GRANT EXECUTE ON FUNCTION @schema@.reset_stalled_jobs(interval, integer) TO service_role;
