-- retry_queue_job: gives a job that failed for good one more chance, in place.
--
-- A `failed` job goes back to `pending`, due now, with the same id, type, user,
-- metadata (so its correlation id and trace stay one), priority, limit key and dedup
-- key; its token, completion time and result are cleared, its last error_message is
-- kept for the record until the next outcome. Attempt budget (what Oban's retry_job
-- and River's JobRetry do): `attempts` is kept, since it is the job's true history,
-- and max_attempts becomes greatest(max_attempts, attempts + 1): a job that used its
-- whole budget runs exactly once more (and fails for good again if that run fails), a
-- job failed early with p_retry => false gets the rest of its budget back. Resetting
-- attempts instead would hide from operators how often it already ran.
--
-- Only `failed` jobs: a `cancelled` one was stopped on purpose (by an operator, or by
-- the application, e.g. cancel_brief_jobs_for_date), and reviving it could send what
-- somebody decided not to send; enqueue a new job for that. False, nothing changed,
-- when the job does not exist, is not failed (a concurrent retry already won: the row
-- lock serialises them and the second sees `pending`), or a live job already holds its
-- dedup key (that job is the retry). Idle workers are woken as on enqueue. 22023 on a
-- NULL id.
CREATE FUNCTION @schema@.retry_queue_job(p_job_id uuid)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_job_type text;
BEGIN
  PERFORM check_required('p_job_id', p_job_id);
  BEGIN
    UPDATE queue_jobs
    SET status = 'pending', scheduled_for = now(), max_attempts = greatest(max_attempts, attempts + 1),
        processing_token = NULL, started_at = NULL, heartbeat_at = NULL, completed_at = NULL,
        result = NULL, updated_at = now()
    WHERE id = p_job_id AND status = 'failed'
    RETURNING job_type INTO v_job_type;
  EXCEPTION WHEN unique_violation THEN  -- queue_jobs_dedup_key_live_idx: a live duplicate
    RETURN false;
  END;
  IF v_job_type IS NULL THEN
    RETURN false;
  END IF;
  PERFORM queue_wake_workers(ARRAY[v_job_type]);
  RETURN true;
END;
$$;

COMMENT ON FUNCTION @schema@.retry_queue_job(uuid) IS
  'Puts a failed job back to pending, due now, same id (attempts kept, max_attempts raised to at least attempts + 1, so it runs at least once more); false when the job is absent, not failed, or a live job holds its dedup key. 22023 on a NULL id.';

GRANT EXECUTE ON FUNCTION @schema@.retry_queue_job(uuid) TO service_role;
