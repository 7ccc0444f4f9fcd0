-- cancel_jobs_atomic: cancels a user's live jobs of one type in one statement.
--
-- Every matching job (same user and type, status in p_allowed_statuses, metadata
-- containing p_metadata_filter when given) becomes `cancelled` atomically; the rows
-- are returned as they are now. A worker still holding a cancelled job is fenced: its
-- complete / fail / heartbeat find the job no longer `processing` and return false.
-- Only live statuses (pending, processing) can be cancelled: a finished job's outcome
-- is never rewritten.
CREATE FUNCTION @schema@.cancel_jobs_atomic(p_user_id uuid, p_job_type text, p_metadata_filter jsonb DEFAULT NULL, p_allowed_statuses text[] DEFAULT ARRAY['pending', 'processing'])
RETURNS TABLE (id uuid, queue_job_id text, job_type text, status text)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_user_id: must not be NULL';
  END IF;
  IF p_job_type IS NULL OR p_job_type = '' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_job_type: must be a non-empty string';
  END IF;
  IF p_metadata_filter IS NOT NULL AND jsonb_typeof(p_metadata_filter) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_metadata_filter: must be NULL or a JSON object';
  END IF;
  IF p_allowed_statuses IS NULL OR cardinality(p_allowed_statuses) = 0
     OR NOT p_allowed_statuses <@ ARRAY['pending', 'processing'] THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_allowed_statuses: must be a non-empty subset of {pending,processing}';
  END IF;

  RETURN QUERY
  UPDATE queue_jobs j
  SET status = 'cancelled', completed_at = now(), updated_at = now()
  WHERE j.user_id = p_user_id
    AND j.job_type = p_job_type
    AND j.status IN ('pending', 'processing')
    AND j.status = ANY (p_allowed_statuses)
    AND (p_metadata_filter IS NULL OR j.metadata @> p_metadata_filter)
  RETURNING j.id, j.queue_job_id, j.job_type, j.status;
END;
$$;

COMMENT ON FUNCTION @schema@.cancel_jobs_atomic(uuid, text, jsonb, text[]) IS
  'Cancels, in one statement, the user''s jobs of p_job_type whose status is in p_allowed_statuses and whose metadata contains p_metadata_filter; returns them. 22023 on a NULL user, empty type, non-object filter, or statuses outside {pending,processing}.';

GRANT EXECUTE ON FUNCTION @schema@.cancel_jobs_atomic(uuid, text, jsonb, text[]) TO service_role;
