-- cancel_brief_jobs_for_date: cancels a user's live daily-brief jobs for one date.
--
-- Cancels, in one statement, the pending/processing `generate_daily_brief` jobs of
-- p_user_id whose metadata->>'briefDate' equals p_brief_date (YYYY-MM-DD), except
-- p_exclude_job_id (the job being kept). Used before enqueueing a fresh brief, so at
-- most one brief per user and date survives. Holders of cancelled jobs are fenced.
-- cancelled_job_ids are the queue_job_id values (the text ids apps see).
CREATE FUNCTION @schema@.cancel_brief_jobs_for_date(p_user_id uuid, p_brief_date text, p_exclude_job_id uuid DEFAULT NULL)
RETURNS TABLE (cancelled_count integer, cancelled_job_ids text[])
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_required('p_user_id', p_user_id);
  -- A real calendar date, judged without a cast that could raise: the day must exist
  -- in its month (2025-02-30 does not) and year 0 does not exist.
  PERFORM check_condition('p_brief_date',
    CASE WHEN p_brief_date ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$'
              AND left(p_brief_date, 4) <> '0000'
         THEN substr(p_brief_date, 9, 2)::integer <= extract(day FROM
                make_date(left(p_brief_date, 4)::integer, substr(p_brief_date, 6, 2)::integer, 1)
                + interval '1 month - 1 day')
    END,
    'must be a date written YYYY-MM-DD');

  RETURN QUERY
  WITH cancelled AS (
    UPDATE queue_jobs j
    SET status = 'cancelled', completed_at = now(), updated_at = now()
    WHERE j.user_id = p_user_id
      AND j.job_type = 'generate_daily_brief'
      AND j.status IN ('pending', 'processing')
      AND j.metadata ->> 'briefDate' = p_brief_date
      AND j.id IS DISTINCT FROM p_exclude_job_id
    RETURNING j.queue_job_id
  )
  SELECT count(*)::integer, coalesce(array_agg(c.queue_job_id ORDER BY c.queue_job_id), '{}')
  FROM cancelled c;
END;
$$;

COMMENT ON FUNCTION @schema@.cancel_brief_jobs_for_date(uuid, text, uuid) IS
  'Cancels the user''s pending/processing generate_daily_brief jobs whose metadata briefDate equals p_brief_date (except p_exclude_job_id); returns the count and their queue_job_ids. 22023 on a NULL user or a date not written YYYY-MM-DD.';

GRANT EXECUTE ON FUNCTION @schema@.cancel_brief_jobs_for_date(uuid, text, uuid) TO service_role;
