-- fail_queue_jobs: records failed attempts of many claimed jobs in one statement.
--
-- Element i of each array describes one job; each job is fenced by its own token, so a
-- stale pair changes nothing and is simply absent from the result. A job with p_retry
-- and attempts < max_attempts goes back to `pending`, scheduled after
-- queue_retry_delay(attempts) (exponential backoff with jitter, token cleared);
-- otherwise it is `failed` for good (completed_at set). Returns the ids that changed.
--
-- Plan pinned: hot path, so plans are generic and cached (force_generic_plan), with
-- sequential scans, hash and merge joins off: the cached plan is always a nested loop of
-- primary-key lookups over the input arrays, whatever the statistics were when the
-- session planned it.
CREATE FUNCTION @schema@.fail_queue_jobs(p_job_ids uuid[], p_processing_tokens uuid[], p_error_messages text[], p_retry boolean DEFAULT true)
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
BEGIN
  PERFORM check_job_batch(p_job_ids, p_processing_tokens);
  IF p_error_messages IS NULL OR cardinality(p_error_messages) <> cardinality(p_job_ids) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_error_messages: must have one element per job id';
  END IF;
  IF p_retry IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_retry: must not be NULL';
  END IF;

  WITH failed AS (
    UPDATE queue_jobs j
    SET status = CASE WHEN p_retry AND j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END,
        scheduled_for = CASE WHEN p_retry AND j.attempts < j.max_attempts
                             THEN now() + queue_retry_delay(j.attempts) ELSE j.scheduled_for END,
        completed_at = CASE WHEN p_retry AND j.attempts < j.max_attempts THEN NULL ELSE now() END,
        processing_token = CASE WHEN p_retry AND j.attempts < j.max_attempts THEN NULL ELSE j.processing_token END,
        error_message = f.error_message,
        updated_at = now()
    FROM unnest(p_job_ids, p_processing_tokens, p_error_messages) AS f(id, token, error_message)
    WHERE j.id = f.id AND j.status = 'processing' AND j.processing_token = f.token
    RETURNING j.id
  )
  SELECT coalesce(array_agg(id), '{}') INTO v_changed FROM failed;
  RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION @schema@.fail_queue_jobs(uuid[], uuid[], text[], boolean) IS
  'Fails one attempt of each (id, token) pair still held: re-queued with backoff while p_retry and attempts remain, else failed. Returns the ids changed; 22023 on NULLs, mismatched lengths or more than 1000 jobs.';

GRANT EXECUTE ON FUNCTION @schema@.fail_queue_jobs(uuid[], uuid[], text[], boolean) TO service_role;
