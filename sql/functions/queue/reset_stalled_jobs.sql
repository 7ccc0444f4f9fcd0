-- reset_stalled_jobs: rescues jobs whose worker stopped heartbeating.
--
-- A `processing` job whose last sign of life is older than p_stall_timeout is
-- re-queued, due at once, token cleared. Sign of life: updated_at, which the claim,
-- heartbeat_queue_job and a plain `UPDATE queue_jobs SET updated_at = now()` (the seed
-- platform's worker heartbeat) all set; it is in no index, so such a heartbeat stays a
-- HOT update. The stall counts as a failed attempt (attempts + 1), by the same rule as
-- fail_queue_job: re-queued while attempts + 1 < max_attempts, else `failed`, so a job
-- whose worker keeps crashing ends failed after max_attempts runs. Clearing the token
-- is what fences the old worker: if it is still alive, its complete / fail / heartbeat
-- return false.
--
-- p_stall_timeout is an interval; PostgREST and named SQL calls may pass it as text
-- ('300 seconds'), converted to the declared type. p_include_job_types (NULL: all) and
-- p_exclude_job_types (NULL: none) scope the rescue by job type, as the seed platform
-- calls it; p_batch_size stays second so positional callers keep working.
--
-- Bounded: at most p_batch_size jobs per call (picked in a MATERIALIZED CTE with SKIP
-- LOCKED, so it never waits on a worker finishing the same job); call again while it
-- returns p_batch_size. Since updated_at >= started_at, the candidates are found by a
-- range scan of the small partial index over processing jobs.
CREATE FUNCTION @schema@.reset_stalled_jobs(p_stall_timeout interval DEFAULT '5 minutes', p_batch_size integer DEFAULT 1000, p_include_job_types text[] DEFAULT NULL, p_exclude_job_types text[] DEFAULT NULL)
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
  IF cardinality(p_include_job_types) > 1000 OR array_position(p_include_job_types, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_include_job_types: at most 1000 job types, without NULLs';
  END IF;
  IF cardinality(p_exclude_job_types) > 1000 OR array_position(p_exclude_job_types, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_exclude_job_types: at most 1000 job types, without NULLs';
  END IF;

  WITH stalled AS MATERIALIZED (
    SELECT j.id
    FROM queue_jobs j
    WHERE j.status = 'processing'
      AND j.started_at < now() - p_stall_timeout
      AND j.updated_at < now() - p_stall_timeout
      AND (p_include_job_types IS NULL OR j.job_type = ANY (p_include_job_types))
      AND (p_exclude_job_types IS NULL OR j.job_type <> ALL (p_exclude_job_types))
    ORDER BY j.started_at
    LIMIT p_batch_size
    FOR UPDATE SKIP LOCKED
  ), reset AS (
    UPDATE queue_jobs j
    SET status = CASE WHEN j.attempts + 1 < j.max_attempts THEN 'pending' ELSE 'failed' END,
        attempts = j.attempts + 1,
        scheduled_for = CASE WHEN j.attempts + 1 < j.max_attempts THEN now() ELSE j.scheduled_for END,
        completed_at = CASE WHEN j.attempts + 1 < j.max_attempts THEN NULL ELSE now() END,
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

COMMENT ON FUNCTION @schema@.reset_stalled_jobs(interval, integer, text[], text[]) IS
  'Re-queues (or fails, when out of attempts: the stall counts as a failed attempt) at most p_batch_size processing jobs of the included / not excluded types with no sign of life (updated_at: claim, heartbeat_queue_job or an UPDATE of updated_at) within p_stall_timeout, fencing out their old tokens; returns how many. 22023 on a timeout outside (0, 100 years], a batch size outside 1..100000, or type lists over 1000 or with NULLs.';

GRANT EXECUTE ON FUNCTION @schema@.reset_stalled_jobs(interval, integer, text[], text[]) TO service_role;
