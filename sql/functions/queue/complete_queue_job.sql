-- complete_queue_job: marks a claimed job completed, fenced by its processing_token.
--
-- Fencing: the UPDATE matches only while the job is still `processing` under the token
-- the caller's claim returned. A stale token (the job was reset as stalled and claimed
-- again, cancelled, or already finished) matches nothing: false, nothing changes. So a
-- job is completed at most once, by its current holder.
CREATE FUNCTION @schema@.complete_queue_job(p_job_id uuid, p_result jsonb DEFAULT NULL, p_processing_token uuid DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_required('p_job_id', p_job_id);
  PERFORM check_required('p_processing_token', p_processing_token);
  PERFORM check_jsonb('p_result', p_result, 1048576, false, false);  -- docs/bounds.md

  UPDATE queue_jobs
  SET status = 'completed', completed_at = now(), result = p_result, updated_at = now()
  WHERE id = p_job_id AND status = 'processing' AND processing_token = p_processing_token;
  RETURN FOUND;
END;
$$;

COMMENT ON FUNCTION @schema@.complete_queue_job(uuid, jsonb, uuid) IS
  'Completes a processing job if p_processing_token is its current token; false (no change) otherwise. 22023 on a NULL id or token, or a result over 1 MiB.';

GRANT EXECUTE ON FUNCTION @schema@.complete_queue_job(uuid, jsonb, uuid) TO service_role;
