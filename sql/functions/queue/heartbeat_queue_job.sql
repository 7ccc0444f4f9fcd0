-- heartbeat_queue_job: extends the lease of a long-running job.
--
-- reset_stalled_jobs measures staleness from the last heartbeat (or the claim when
-- there was none), so a worker that heartbeats more often than the stall timeout keeps
-- its job. Fenced by the token: false once the job was reset, cancelled or finished,
-- which tells the worker to stop working on it. Touches only unindexed columns, so the
-- update is HOT and cheap.
CREATE FUNCTION @schema@.heartbeat_queue_job(p_job_id uuid, p_processing_token uuid)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_required('p_job_id', p_job_id);
  PERFORM check_required('p_processing_token', p_processing_token);

  UPDATE queue_jobs
  SET heartbeat_at = now(), updated_at = now()
  WHERE id = p_job_id AND status = 'processing' AND processing_token = p_processing_token;
  RETURN FOUND;
END;
$$;

COMMENT ON FUNCTION @schema@.heartbeat_queue_job(uuid, uuid) IS
  'Records a heartbeat for a processing job held with p_processing_token; false if the token is no longer current. 22023 on a NULL id or token.';

GRANT EXECUTE ON FUNCTION @schema@.heartbeat_queue_job(uuid, uuid) TO service_role;
