-- fail_queue_jobs: records failed attempts of many claimed jobs in one statement.
--
-- Element i of each array describes one job; each job is fenced by its own token, so a
-- stale pair changes nothing and is simply absent from the result. The failure counts
-- the attempt (attempts + 1). With p_retry and attempts + 1 < max_attempts (the seed
-- platform's rule: a max_attempts = 3 job runs three times) the job goes back to
-- `pending`, scheduled after queue_retry_delay(attempts + 1) (exponential backoff with
-- jitter, token cleared); otherwise it is `failed` for good (completed_at set).
--
-- Provider feedback: p_retry_after_seconds (a provider's "429, retry after N"; last,
-- with a default, so existing named calls are unchanged) re-queues the jobs (unless
-- p_retry is false) due after that many seconds WITHOUT counting the attempt, and
-- pauses each job's limit key for as long (pause_queue_limit), so the key's other jobs
-- wait too and no attempt is burnt. Returns the ids that changed.
--
-- Plan pinned: hot path, so plans are generic and cached (force_generic_plan), with
-- sequential scans, hash and merge joins off: the cached plan is always a nested loop of
-- primary-key lookups over the input arrays, whatever the statistics were when the
-- session planned it.
CREATE FUNCTION @schema@.fail_queue_jobs(p_job_ids uuid[], p_processing_tokens uuid[], p_error_messages text[], p_retry boolean DEFAULT true, p_retry_after_seconds numeric DEFAULT NULL)
RETURNS uuid[]
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
  v_changed uuid[];
  v_keys text[];
  v_wait interval;
BEGIN
  PERFORM check_job_batch(p_job_ids, p_processing_tokens);
  IF p_error_messages IS NULL OR cardinality(p_error_messages) <> cardinality(p_job_ids) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_error_messages: must have one element per job id';
  END IF;
  IF p_retry IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_retry: must not be NULL';
  END IF;
  IF p_retry_after_seconds <= 0 OR p_retry_after_seconds > 2592000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_retry_after_seconds: must be NULL or between 0 (exclusive) and 2592000 (30 days)';
  END IF;
  -- After the checks: a huge or NaN value must be refused, not overflow here.
  IF p_retry THEN
    v_wait := make_interval(secs => p_retry_after_seconds::double precision);
  END IF;

  WITH failed AS (
    UPDATE queue_jobs j
    SET status = CASE WHEN v_wait IS NOT NULL OR (p_retry AND j.attempts + 1 < j.max_attempts)
                      THEN 'pending' ELSE 'failed' END,
        attempts = CASE WHEN v_wait IS NOT NULL THEN j.attempts ELSE j.attempts + 1 END,
        scheduled_for = CASE WHEN v_wait IS NOT NULL THEN now() + v_wait
                             WHEN p_retry AND j.attempts + 1 < j.max_attempts
                             THEN now() + queue_retry_delay(j.attempts + 1) ELSE j.scheduled_for END,
        completed_at = CASE WHEN v_wait IS NOT NULL OR (p_retry AND j.attempts + 1 < j.max_attempts)
                            THEN NULL ELSE now() END,
        processing_token = CASE WHEN v_wait IS NOT NULL OR (p_retry AND j.attempts + 1 < j.max_attempts)
                                THEN NULL ELSE j.processing_token END,
        error_message = f.error_message,
        updated_at = now()
    FROM unnest(p_job_ids, p_processing_tokens, p_error_messages) AS f(id, token, error_message)
    WHERE j.id = f.id AND j.status = 'processing' AND j.processing_token = f.token
    RETURNING j.id, j.limit_key
  )
  SELECT coalesce(array_agg(id), '{}'), array_agg(DISTINCT limit_key) FILTER (WHERE limit_key IS NOT NULL)
  INTO v_changed, v_keys
  FROM failed;

  IF v_wait IS NOT NULL AND v_keys IS NOT NULL THEN
    PERFORM queue_pause_keys(v_keys, now() + v_wait);
  END IF;
  RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION @schema@.fail_queue_jobs(uuid[], uuid[], text[], boolean, numeric) IS
  'Fails one attempt of each (id, token) pair still held: re-queued with backoff while p_retry and attempts + 1 < max_attempts, else failed; with p_retry_after_seconds re-queued after that delay without counting the attempt, and the jobs'' limit keys paused as long. Returns the ids changed; 22023 on NULLs, mismatched lengths, more than 1000 jobs or a retry-after outside (0, 30 days].';

GRANT EXECUTE ON FUNCTION @schema@.fail_queue_jobs(uuid[], uuid[], text[], boolean, numeric) TO service_role;
