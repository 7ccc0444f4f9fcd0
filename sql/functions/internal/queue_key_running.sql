-- queue_key_running: how many of a limit key's jobs count against its concurrency cap.
--
-- The key's `processing` jobs (a scan of the small partial index over processing keyed
-- jobs), plus those among p_claimed: jobs the running claim has already picked and
-- locked but not yet marked processing (claim_pending_jobs' second pass), which
-- would otherwise be missed. Read under the key's queue_limits row lock.
CREATE FUNCTION @schema@.queue_key_running(p_limit_key text, p_claimed uuid[])
RETURNS integer
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT (SELECT count(*) FROM queue_jobs j WHERE j.status = 'processing' AND j.limit_key = p_limit_key)::integer
       + (SELECT count(*) FROM queue_jobs j WHERE j.id = ANY (p_claimed) AND j.limit_key = p_limit_key)::integer;
$$;

COMMENT ON FUNCTION @schema@.queue_key_running(text, uuid[]) IS
  'Internal: the key''s processing jobs plus those among p_claimed (picked by the running claim, not yet marked processing).';

GRANT EXECUTE ON FUNCTION @schema@.queue_key_running(text, uuid[]) TO service_role;
