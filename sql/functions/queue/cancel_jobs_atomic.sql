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
  PERFORM check_required('p_user_id', p_user_id);
  PERFORM check_condition('p_job_type', p_job_type <> '', 'must be a non-empty string');
  PERFORM check_text('p_job_type', p_job_type, 200);  -- docs/bounds.md
  PERFORM check_jsonb('p_metadata_filter', p_metadata_filter, 65536, false, false);
  PERFORM check_condition('p_metadata_filter',
    p_metadata_filter IS NULL OR jsonb_typeof(p_metadata_filter) = 'object',
    'must be NULL or a JSON object');
  PERFORM check_condition('p_allowed_statuses',
    cardinality(p_allowed_statuses) > 0 AND p_allowed_statuses <@ ARRAY['pending', 'processing'],
    'must be a non-empty subset of {pending,processing}');

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
  'Cancels, in one statement, the user''s jobs of p_job_type whose status is in p_allowed_statuses and whose metadata contains p_metadata_filter; returns them. 22023 on a NULL user, empty or over-long (200) type, non-object or over-64-KiB filter, or statuses outside {pending,processing}.';

GRANT EXECUTE ON FUNCTION @schema@.cancel_jobs_atomic(uuid, text, jsonb, text[]) TO service_role;
