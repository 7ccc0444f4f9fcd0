-- cancel_job_with_reason: cancels one job and records why.
--
-- A pending job is cancelled; a processing one only with p_allow_processing (its holder
-- is then fenced: complete / fail / heartbeat return false). A finished job is left as
-- it is (false), so a cancel racing a completion never rewrites the outcome. The reason
-- is kept in error_message.
CREATE FUNCTION @schema@.cancel_job_with_reason(p_job_id uuid, p_reason text, p_allow_processing boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_required('p_job_id', p_job_id);
  PERFORM check_condition('p_reason', p_reason <> '', 'must be a non-empty string');
  PERFORM check_text('p_reason', p_reason, 1024);  -- docs/bounds.md
  PERFORM check_required('p_allow_processing', p_allow_processing);

  UPDATE queue_jobs
  SET status = 'cancelled', error_message = p_reason, completed_at = now(), updated_at = now()
  WHERE id = p_job_id
    AND (status = 'pending' OR (p_allow_processing AND status = 'processing'));
  RETURN FOUND;
END;
$$;

COMMENT ON FUNCTION @schema@.cancel_job_with_reason(uuid, text, boolean) IS
  'Cancels a pending job (or a processing one when p_allow_processing), storing p_reason in error_message; false when the job is absent, finished, or processing without permission. 22023 on a NULL id or an empty or over-long (1024) reason.';

GRANT EXECUTE ON FUNCTION @schema@.cancel_job_with_reason(uuid, text, boolean) TO service_role;
