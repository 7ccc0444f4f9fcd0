-- queue_keyed_bump: announces that a keyed job may be able to start sooner.
--
-- One increment of this backend's stripe of queue_keyed_generation, in the caller's
-- transaction (so it becomes visible exactly when the change it announces commits).
-- Every claim's "no keyed job can start before T" hint is void from then on
-- (claim_pending_jobs, queue_keyed_hint). The row stays locked until commit: two
-- writers on the same stripe (pid mod 16) take turns at commit.
--
-- PL/pgSQL, not SQL, on purpose: it runs on every keyed enqueue, and PL/pgSQL keeps the
-- UPDATE's plan for the session, where a non-inlined SQL function (a SET clause
-- prevents inlining) parses and plans its body again on every call before PG 18: that
-- doubled the CPU of a keyed add_queue_job.
CREATE FUNCTION @schema@.queue_keyed_bump()
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  UPDATE queue_keyed_generation g SET n = g.n + 1 WHERE g.slot = pg_backend_pid() % 16;
END;
$$;

COMMENT ON FUNCTION @schema@.queue_keyed_bump() IS
  'Internal: bumps queue_keyed_generation (this backend''s stripe) in the caller''s transaction; voids every session''s keyed-claim hint at commit.';

GRANT EXECUTE ON FUNCTION @schema@.queue_keyed_bump() TO service_role;
