-- release_queue_jobs: hands claimed but unstarted jobs back to the queue.
--
-- For a worker shutting down gracefully: each (id, token) pair still held goes back to
-- `pending` at its original scheduled_for, token cleared; attempts is unchanged (it
-- counts failed attempts, and the job never ran). Fenced like complete_queue_jobs: a stale
-- pair changes nothing. Returns the ids released.
--
-- Plan pinned: hot path, so plans are generic and cached (force_generic_plan), with
-- sequential scans, hash and merge joins off: the cached plan is always a nested loop of
-- primary-key lookups over the input arrays, whatever the statistics were when the
-- session planned it.
CREATE FUNCTION @schema@.release_queue_jobs(p_job_ids uuid[], p_processing_tokens uuid[])
RETURNS uuid[]
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_released uuid[];
BEGIN
  PERFORM check_job_batch(p_job_ids, p_processing_tokens);

  WITH released AS (
    UPDATE queue_jobs j
    SET status = 'pending', processing_token = NULL, started_at = NULL, heartbeat_at = NULL,
        updated_at = now()
    FROM unnest(p_job_ids, p_processing_tokens) AS r(id, token)
    WHERE j.id = r.id AND j.status = 'processing' AND j.processing_token = r.token
    RETURNING j.id
  )
  SELECT coalesce(array_agg(id), '{}') INTO v_released FROM released;
  RETURN v_released;
END;
$$;

COMMENT ON FUNCTION @schema@.release_queue_jobs(uuid[], uuid[]) IS
  'Returns each still-held (id, token) job to pending without counting the attempt; returns the ids released. 22023 on NULLs, mismatched lengths or more than 1000 jobs.';

GRANT EXECUTE ON FUNCTION @schema@.release_queue_jobs(uuid[], uuid[]) TO service_role;
