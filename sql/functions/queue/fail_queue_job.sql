-- fail_queue_job: records a failed attempt of a claimed job, fenced by its token.
--
-- The failure counts the attempt. With p_retry and attempts + 1 < max_attempts (the
-- seed platform's rule, so a max_attempts = 3 job runs three times) the job goes back
-- to `pending`, scheduled after queue_retry_delay (exponential backoff with jitter);
-- otherwise it is `failed` for good. p_retry_after_seconds (a provider's "too many
-- requests, retry after N"; added last with a default so existing named calls keep
-- working) re-queues it after that delay without counting the attempt and pauses its
-- limit key as long. A stale token matches nothing: false, nothing changes. The
-- single-job form of fail_queue_jobs, which holds the logic.
CREATE FUNCTION @schema@.fail_queue_job(p_job_id uuid, p_error_message text, p_retry boolean DEFAULT true, p_processing_token uuid DEFAULT NULL, p_retry_after_seconds numeric DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_job_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_job_id: must not be NULL';
  END IF;
  IF p_processing_token IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_processing_token: must not be NULL (pass the token claim_pending_jobs returned)';
  END IF;
  RETURN cardinality(fail_queue_jobs(ARRAY[p_job_id], ARRAY[p_processing_token], ARRAY[p_error_message],
                                     p_retry, p_retry_after_seconds)) = 1;
END;
$$;

COMMENT ON FUNCTION @schema@.fail_queue_job(uuid, text, boolean, uuid, numeric) IS
  'Fails an attempt of a processing job held with p_processing_token: re-queued with backoff while p_retry and attempts + 1 < max_attempts, else failed; with p_retry_after_seconds re-queued after that delay without counting the attempt, its limit key paused as long. False (no change) for a stale token; 22023 on a NULL id, retry flag or token, or a retry-after outside (0, 30 days].';

GRANT EXECUTE ON FUNCTION @schema@.fail_queue_job(uuid, text, boolean, uuid, numeric) TO service_role;
